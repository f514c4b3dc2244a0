package domain_test

import (
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
)

func TestParseSort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want domain.Sort
		str  string
	}{
		{"", domain.Sort{Field: domain.SortID}, "id"},
		{"id", domain.Sort{Field: domain.SortID}, "id"},
		{"-id", domain.Sort{Field: domain.SortID, Desc: true}, "-id"},
		{"email", domain.Sort{Field: domain.SortEmail}, "email"},
		{"-email", domain.Sort{Field: domain.SortEmail, Desc: true}, "-email"},
		{"last_name", domain.Sort{Field: domain.SortLastName}, "last_name"},
		{"-last_name", domain.Sort{Field: domain.SortLastName, Desc: true}, "-last_name"},
		{"created_at", domain.Sort{Field: domain.SortCreatedAt}, "created_at"},
		{"-created_at", domain.Sort{Field: domain.SortCreatedAt, Desc: true}, "-created_at"},
	}
	for _, tt := range tests {
		got, err := domain.ParseSort(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSort(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		if got.String() != tt.str {
			t.Errorf("ParseSort(%q).String() = %q, want %q", tt.in, got.String(), tt.str)
		}
		if again, err := domain.ParseSort(got.String()); err != nil || again != got {
			t.Errorf("ParseSort(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
	for _, in := range []string{"-", "--id", "+id", "ID", "Email", " id", "id ", "id,email", "first_name", "name", "updated_at", "_id", "id-"} {
		got, err := domain.ParseSort(in)
		if err == nil {
			t.Errorf("ParseSort(%q) = %+v, want an error", in, got)
			continue
		}
		wantFields(t, err, "sort")
	}
}

func TestSortKeyOf(t *testing.T) {
	t.Parallel()
	s := storedUser()
	s.ID, s.LastName, s.Email, s.CreatedAt = 41, "ÖZTÜRK", "ayse@example.com", t0.Add(90*time.Minute)
	u := restore(t, s)
	tests := []struct {
		field domain.SortField
		want  domain.SortKey
	}{
		{domain.SortID, domain.SortKey{ID: 41}},
		{domain.SortEmail, domain.SortKey{ID: 41, Text: "ayse@example.com"}},
		{domain.SortLastName, domain.SortKey{ID: 41, Text: "öztürk"}}, // folded, as searched
		{domain.SortCreatedAt, domain.SortKey{ID: 41, Time: t0.Add(90 * time.Minute)}},
	}
	for _, tt := range tests {
		for _, desc := range []bool{false, true} {
			if got := (domain.Sort{Field: tt.field, Desc: desc}).KeyOf(u); got != tt.want {
				t.Errorf("KeyOf(%v, desc %v) = %+v, want %+v", tt.field, desc, got, tt.want)
			}
		}
	}
}
