package domain_test

import (
	"errors"
	"testing"

	"github.com/userservice/userservice/domain"
)

// counter is a SuperadminCount that records how often it was consulted.
type counter struct {
	n     int64
	err   error
	calls int
}

func (c *counter) count() (int64, error) {
	c.calls++
	return c.n, c.err
}

var errCount = errors.New("count failed: connection reset")

func TestChangeRole(t *testing.T) {
	t.Parallel()
	admin := domain.Actor{ID: 1, Role: domain.RoleAdmin}
	super := domain.Actor{ID: 2, Role: domain.RoleSuperadmin}
	tests := []struct {
		name      string
		actor     domain.Actor
		targetID  int64
		from, to  domain.Role
		count     counter
		wantErr   error // compared with errors.Is; nil: success
		wantKind  domain.Kind
		wantCalls int
		changed   bool // role changed and token version bumped
	}{
		{name: "user to admin", actor: admin, targetID: 9, from: domain.RoleUser, to: domain.RoleAdmin, changed: true},
		{name: "admin to user", actor: admin, targetID: 9, from: domain.RoleAdmin, to: domain.RoleUser, changed: true},
		{name: "promotion to superadmin does not count", actor: super, targetID: 9, from: domain.RoleAdmin, to: domain.RoleSuperadmin, changed: true},
		{name: "operator", actor: domain.Operator(), targetID: 9, from: domain.RoleUser, to: domain.RoleSuperadmin, changed: true},
		{name: "demoting a superadmin with another left", actor: super, targetID: 9, from: domain.RoleSuperadmin, to: domain.RoleAdmin,
			count: counter{n: 2}, wantCalls: 1, changed: true},
		{name: "demoting a superadmin to user with many left", actor: domain.Operator(), targetID: 9, from: domain.RoleSuperadmin, to: domain.RoleUser,
			count: counter{n: 1000}, wantCalls: 1, changed: true},
		{name: "demoting the last superadmin", actor: super, targetID: 9, from: domain.RoleSuperadmin, to: domain.RoleAdmin,
			count: counter{n: 1}, wantErr: domain.ErrLastSuperadmin, wantKind: domain.KindConflict, wantCalls: 1},
		{name: "operator cannot demote the last superadmin", actor: domain.Operator(), targetID: 9, from: domain.RoleSuperadmin, to: domain.RoleUser,
			count: counter{n: 1}, wantErr: domain.ErrLastSuperadmin, wantKind: domain.KindConflict, wantCalls: 1},
		{name: "count of zero", actor: super, targetID: 9, from: domain.RoleSuperadmin, to: domain.RoleUser,
			count: counter{n: 0}, wantErr: domain.ErrLastSuperadmin, wantKind: domain.KindConflict, wantCalls: 1},
		{name: "count error propagated", actor: super, targetID: 9, from: domain.RoleSuperadmin, to: domain.RoleAdmin,
			count: counter{n: 5, err: errCount}, wantErr: errCount, wantKind: domain.KindInternal, wantCalls: 1},
		{name: "own role", actor: admin, targetID: admin.ID, from: domain.RoleAdmin, to: domain.RoleUser,
			wantErr: domain.ErrOwnRoleChange, wantKind: domain.KindForbidden},
		{name: "own role even when unchanged", actor: super, targetID: super.ID, from: domain.RoleSuperadmin, to: domain.RoleSuperadmin,
			wantErr: domain.ErrOwnRoleChange, wantKind: domain.KindForbidden},
		{name: "own role as last superadmin", actor: super, targetID: super.ID, from: domain.RoleSuperadmin, to: domain.RoleUser,
			count: counter{n: 1}, wantErr: domain.ErrOwnRoleChange, wantKind: domain.KindForbidden},
		{name: "same role is a no-op", actor: admin, targetID: 9, from: domain.RoleUser, to: domain.RoleUser},
		{name: "same superadmin role does not count", actor: super, targetID: 9, from: domain.RoleSuperadmin, to: domain.RoleSuperadmin,
			count: counter{n: 1}},
		{name: "zero role", actor: super, targetID: 9, from: domain.RoleUser, to: domain.Role{}, wantKind: domain.KindInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := withRole(t, tt.targetID, tt.from)
			before := u.Stored()
			c := tt.count
			err := u.ChangeRole(tt.actor, tt.to, c.count, t1)

			if c.calls != tt.wantCalls {
				t.Errorf("superadmin count consulted %d times, want %d", c.calls, tt.wantCalls)
			}
			switch {
			case tt.wantErr == nil && tt.wantKind == domain.KindInternal:
				if err != nil {
					t.Fatalf("ChangeRole: %v", err)
				}
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("ChangeRole error = %v, want %v", err, tt.wantErr)
			case domain.KindOf(err) != tt.wantKind:
				t.Fatalf("ChangeRole error %v has kind %v, want %v", err, domain.KindOf(err), tt.wantKind)
			}
			if tt.wantKind == domain.KindInvalid {
				wantFields(t, err, "role")
			}

			want := before
			if tt.changed {
				want.Role = tt.to.String()
				want.TokenVersion++
				want.UpdatedAt = t1
			}
			if got := u.Stored(); got != want {
				t.Fatalf("after ChangeRole:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestCheckDelete(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		role      domain.Role
		count     counter
		wantErr   error
		wantCalls int
	}{
		{name: "user", role: domain.RoleUser, count: counter{n: 1}},
		{name: "admin", role: domain.RoleAdmin, count: counter{n: 0}},
		{name: "superadmin with another left", role: domain.RoleSuperadmin, count: counter{n: 2}, wantCalls: 1},
		{name: "last superadmin", role: domain.RoleSuperadmin, count: counter{n: 1}, wantErr: domain.ErrLastSuperadmin, wantCalls: 1},
		{name: "count error propagated", role: domain.RoleSuperadmin, count: counter{n: 3, err: errCount}, wantErr: errCount, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := withRole(t, 9, tt.role)
			before := u.Stored()
			c := tt.count
			err := u.CheckDelete(c.count)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("CheckDelete = %v, want %v", err, tt.wantErr)
			}
			if c.calls != tt.wantCalls {
				t.Fatalf("superadmin count consulted %d times, want %d", c.calls, tt.wantCalls)
			}
			if u.Stored() != before {
				t.Fatal("CheckDelete changed the user")
			}
		})
	}
}

func TestActor(t *testing.T) {
	t.Parallel()
	u := withRole(t, 5, domain.RoleUser)
	fresh, err := domain.NewUser(validParams(), t0) // id 0: not stored yet
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                 string
		actor                domain.Actor
		newcomer, operator   bool
		selfOfU, selfOfFresh bool
	}{
		{name: "operator", actor: domain.Operator(), operator: true},
		{name: "newcomer", actor: domain.Newcomer(), newcomer: true},
		{name: "the user", actor: domain.Actor{ID: 5, Role: domain.RoleUser}, selfOfU: true},
		{name: "another user", actor: domain.Actor{ID: 6, Role: domain.RoleSuperadmin}},
	}
	for _, tt := range tests {
		a := tt.actor
		if a.IsNewcomer() != tt.newcomer || a.IsOperator() != tt.operator || a.IsSelf(u) != tt.selfOfU ||
			a.IsSelf(fresh) != tt.selfOfFresh || a.IsSelf(nil) {
			t.Errorf("%s: newcomer %v, operator %v, self %v, self of unsaved %v", tt.name,
				a.IsNewcomer(), a.IsOperator(), a.IsSelf(u), a.IsSelf(fresh))
		}
	}
	if domain.Operator().Role != domain.RoleSuperadmin {
		t.Error("the operator does not act as superadmin")
	}
}
