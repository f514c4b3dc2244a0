package domain

import (
	"strings"
	"time"
)

// SortField is a column a page may be ordered by; every order ends with id,
// so keyset pagination has a total order.
type SortField int

// The sortable fields of the contract.
const (
	SortID SortField = iota
	SortEmail
	SortLastName
	SortCreatedAt
)

var sortNames = [...]string{SortID: "id", SortEmail: "email", SortLastName: "last_name", SortCreatedAt: "created_at"}

func (f SortField) String() string { return sortNames[f] }

// Sort is an order: a field, ascending unless Desc.
type Sort struct {
	Field SortField
	Desc  bool
}

// ParseSort accepts "", "id", "email", "last_name", "created_at", each with an
// optional leading "-" for descending. "" is id ascending.
func ParseSort(s string) (Sort, error) {
	if s == "" {
		return Sort{}, nil
	}
	var out Sort
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		out.Desc = true
		s = rest
	}
	for i, n := range sortNames {
		if s == n {
			out.Field = SortField(i)
			return out, nil
		}
	}
	return Sort{}, invalid("sort", "must be one of id, email, last_name, created_at, optionally prefixed with -")
}

func (s Sort) String() string {
	if s.Desc {
		return "-" + s.Field.String()
	}
	return s.Field.String()
}

// SortKey is a user's position in an order: the sorted value and the id that
// breaks ties. Keyset pagination continues strictly after a key.
type SortKey struct {
	ID   int64
	Text string    // SortEmail: the email; SortLastName: the folded last name
	Time time.Time // SortCreatedAt
}

// KeyOf returns u's key in order s.
func (s Sort) KeyOf(u *User) SortKey {
	k := SortKey{ID: u.id}
	switch s.Field {
	case SortEmail:
		k.Text = u.email.addr
	case SortLastName:
		k.Text = Fold(u.lastName)
	case SortCreatedAt:
		k.Time = u.createdAt
	}
	return k
}
