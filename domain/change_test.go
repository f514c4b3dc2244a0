package domain_test

import (
	"testing"

	"github.com/userservice/userservice/domain"
)

func TestChangeActions(t *testing.T) {
	t.Parallel()
	for _, a := range []domain.ChangeAction{
		domain.ActionCreated, domain.ActionUpdated, domain.ActionRoleChanged, domain.ActionPasswordChanged, domain.ActionDeleted,
	} {
		if got, err := domain.ParseChangeAction(string(a)); err != nil || got != a {
			t.Errorf("ParseChangeAction(%q) = %q, %v", a, got, err)
		}
	}
	for _, in := range []string{"", "Created", "create", "role-changed", "updated "} {
		if got, err := domain.ParseChangeAction(in); err == nil {
			t.Errorf("ParseChangeAction(%q) = %q, want an error", in, got)
		} else {
			wantFields(t, err, "action")
		}
	}
}

func TestChangeMatches(t *testing.T) {
	t.Parallel()
	admin := withRole(t, 9, domain.RoleAdmin)
	user := withRole(t, 9, domain.RoleUser)
	f, err := domain.ParseFilter(domain.FilterParams{Role: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		before, after *domain.User
		matches       bool
		shown         *domain.User
	}{
		{"created matching", nil, admin, true, admin},
		{"created not matching", nil, user, false, user},
		{"deleted matching", admin, nil, true, admin},
		{"deleted not matching", user, nil, false, user},
		{"moves into the filter", user, admin, true, admin},
		{"moves out of the filter", admin, user, true, user},
		{"stays inside", admin, admin, true, admin},
		{"stays outside", user, user, false, user},
		{"no state at all", nil, nil, false, nil},
	}
	for _, tt := range tests {
		c := domain.Change{Seq: 1, Action: domain.ActionUpdated, TargetID: 9, Before: tt.before, After: tt.after}
		if got := c.Matches(f); got != tt.matches {
			t.Errorf("%s: Matches = %v, want %v", tt.name, got, tt.matches)
		}
		if got := c.User(); got != tt.shown {
			t.Errorf("%s: User() = %p, want %p", tt.name, got, tt.shown)
		}
		if !c.Matches(domain.Filter{}) != (tt.before == nil && tt.after == nil) {
			t.Errorf("%s: the empty filter Matches = %v", tt.name, c.Matches(domain.Filter{}))
		}
	}
}
