package application

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// newAuditFixture stores five users (changes 1 to 5), then makes n
// changes: change 5+i to user i%5+1, a role change when i is a multiple of
// 3, else a rename. The audit reads them from the store's change log.
func newAuditFixture(t *testing.T, n int) (*Audit, *fakeAuthz) {
	t.Helper()
	f := newFixture(t)
	var users []*domain.User
	for i := range 5 {
		users = append(users, f.seed(t, i+1, domain.RoleUser, ""))
	}
	for i := 1; i <= n; i++ {
		u := users[i%5]
		_, err := f.repo.Update(context.Background(), u.ID(), domain.Operator(), func(u *domain.User, count domain.SuperadminCount) (domain.ChangeAction, error) {
			if i%3 == 0 {
				to := domain.RoleAdmin
				if u.Role() == to {
					to = domain.RoleUser
				}
				return domain.ActionRoleChanged, u.ChangeRole(domain.Operator(), to, count, testNow)
			}
			email := fmt.Sprintf("renamed%d@example.com", i)
			return domain.ActionUpdated, u.ApplyProfile(domain.ProfilePatch{Email: &email}, testNow)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	authz := &fakeAuthz{decide: shippedPolicy}
	return NewAudit(Deps{Changes: f.repo.store.ChangeLog(), Authz: authz, CursorKey: testCursorKey}), authz
}

func TestAuditIsForSuperadminsOnly(t *testing.T) {
	t.Parallel()
	a, authz := newAuditFixture(t, 3)
	for _, role := range []domain.Role{domain.RoleUser, domain.RoleAdmin} {
		if _, err := a.Audit(context.Background(), domain.Actor{ID: 9, Role: role}, ports.AuditRequest{}); !errors.Is(err, domain.ErrForbidden) {
			t.Errorf("%s: got %v, want ErrForbidden", role, err)
		}
	}
	if _, err := a.Audit(context.Background(), domain.Actor{ID: 9, Role: domain.RoleSuperadmin, PasswordChangeRequired: true}, ports.AuditRequest{}); !errors.Is(err, domain.ErrPasswordChange) {
		t.Errorf("forced password change: got %v", err)
	}
	calls := authz.recorded()
	if len(calls) != 2 || calls[0].Permission != domain.PermAuditRead {
		t.Fatalf("authorizer calls %+v", calls)
	}
}

func TestAuditPagesByCursorWithFilters(t *testing.T) {
	t.Parallel()
	a, _ := newAuditFixture(t, 25)
	ctx := context.Background()
	super := domain.Actor{ID: 1, Role: domain.RoleSuperadmin}
	target := int64(2)
	req := ports.AuditRequest{TargetID: &target, Size: 2}
	var seen []int64
	for page := 1; ; page++ {
		p, err := a.Audit(ctx, super, req)
		if err != nil {
			t.Fatal(err)
		}
		if p.Page != page || p.Total != 6 || !p.TotalExact || p.Pages != 3 {
			t.Fatalf("page %d envelope %+v", page, p)
		}
		for _, c := range p.Items {
			seen = append(seen, c.Seq)
		}
		if p.NextCursor == "" {
			break
		}
		req.Cursor = p.NextCursor
	}
	want := []int64{2, 6, 11, 16, 21, 26} // its creation, and i = 1, 6, 11, 16, 21
	if len(seen) != len(want) {
		t.Fatalf("seqs %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("seqs %v, want %v", seen, want)
		}
	}

	// A cursor is bound to its filters: reused with others it is refused.
	first, err := a.Audit(ctx, super, ports.AuditRequest{TargetID: &target, Size: 2})
	if err != nil {
		t.Fatal(err)
	}
	other := int64(3)
	if _, err := a.Audit(ctx, super, ports.AuditRequest{TargetID: &other, Size: 2, Cursor: first.NextCursor}); domain.KindOf(err) != domain.KindMalformed {
		t.Fatalf("cursor with other filters: got %v", err)
	}
	if _, err := a.Audit(ctx, super, ports.AuditRequest{Cursor: "garbage!"}); domain.KindOf(err) != domain.KindMalformed {
		t.Fatalf("garbage cursor: got %v", err)
	}
}

func TestAuditValidatesInput(t *testing.T) {
	t.Parallel()
	a, _ := newAuditFixture(t, 3)
	super := domain.Actor{ID: 1, Role: domain.RoleSuperadmin}
	_, err := a.Audit(context.Background(), super, ports.AuditRequest{Action: "exploded", Size: 101, Since: testNow, Until: testNow})
	e := domain.AsError(err)
	if e == nil || e.Kind != domain.KindInvalid || len(e.Fields) != 3 {
		t.Fatalf("got %v, want three invalid fields", err)
	}
	p, err := a.Audit(context.Background(), super, ports.AuditRequest{Action: "role_changed"})
	if err != nil || p.Total != 1 || len(p.Items) != 1 || p.Items[0].Action != domain.ActionRoleChanged {
		t.Fatalf("action filter: %+v, %v", p, err)
	}
}
