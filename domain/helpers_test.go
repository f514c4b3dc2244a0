package domain_test

import (
	"slices"
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
)

// t0 and t1 are fixed instants: tests never read the wall clock.
var (
	t0 = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 = t0.Add(time.Hour)
)

// fieldErrors returns the field errors carried by err, failing the test when
// err is not a KindInvalid *domain.Error.
func fieldErrors(t *testing.T, err error) []domain.FieldError {
	t.Helper()
	e := domain.AsError(err)
	if e == nil {
		t.Fatalf("error %v (%T) is not a *domain.Error", err, err)
	}
	if e.Kind != domain.KindInvalid {
		t.Fatalf("error %v has kind %v, want %v", err, e.Kind, domain.KindInvalid)
	}
	return e.Fields
}

// fieldNames lists the fields err reports, in order.
func fieldNames(t *testing.T, err error) []string {
	t.Helper()
	var names []string
	for _, f := range fieldErrors(t, err) {
		names = append(names, f.Field)
	}
	return names
}

// wantFields fails the test unless err reports exactly the given fields, in order.
func wantFields(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want invalid fields %v", want)
	}
	if got := fieldNames(t, err); !slices.Equal(got, want) {
		t.Fatalf("invalid fields = %v, want %v (error: %v)", got, want, err)
	}
}

// storedUser is a valid user as storage would hold it; tests adjust a copy.
func storedUser() domain.StoredUser {
	return domain.StoredUser{
		ID: 7, FirstName: "Zoë", LastName: "O'Doireidh", Email: "zoe@example.com",
		Gender: "Female", IPAddress: "192.0.2.7", Role: "user",
		PasswordHash: "$argon2id$hash", TokenVersion: 3, CreatedAt: t0, UpdatedAt: t0,
	}
}

// restore builds a user from s, failing the test if storage would refuse it.
func restore(t *testing.T, s domain.StoredUser) *domain.User {
	t.Helper()
	u, err := domain.RestoreUser(s)
	if err != nil {
		t.Fatalf("RestoreUser(%+v): %v", s, err)
	}
	return u
}

// withRole is storedUser with the given id and role.
func withRole(t *testing.T, id int64, role domain.Role) *domain.User {
	t.Helper()
	s := storedUser()
	s.ID, s.Role = id, role.String()
	return restore(t, s)
}
