package application

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// lockCountingRepo also counts the locked read each Update makes.
// beforeLock, when set, runs before that read (another writer getting in
// between the two reads).
type lockCountingRepo struct {
	*countingRepo
	locks      atomic.Int64
	beforeLock func()
}

func (r *lockCountingRepo) Update(ctx context.Context, id int64, actor domain.Actor, fn ports.UpdateFunc) (*domain.User, error) {
	if r.beforeLock != nil {
		r.beforeLock()
	}
	r.locks.Add(1)
	return r.UserRepository.Update(ctx, id, actor, fn)
}

// TestUpdateProfileReadsTwiceAndAsksOnce counts what PUT /users/{id} costs:
// the user read once before the slow work and once locked, and each
// permission the write needs asked once, unless the locked row's role is no
// longer the one the decision was made on.
func TestUpdateProfileReadsTwiceAndAsksOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name       string
		actorRole  domain.Role
		self       bool
		req        ports.UpdateUserRequest
		promote    bool // the target becomes a superadmin between the two reads
		wantErr    error
		wantPerms  []domain.Permission
		wantWrites int
	}{
		{name: "another's profile", actorRole: domain.RoleAdmin,
			req:       ports.UpdateUserRequest{Patch: domain.ProfilePatch{FirstName: ptr("Eve")}},
			wantPerms: []domain.Permission{domain.PermUsersUpdate}, wantWrites: 1},
		{name: "another's profile and password", actorRole: domain.RoleSuperadmin,
			req:       ports.UpdateUserRequest{Patch: domain.ProfilePatch{FirstName: ptr("Eve")}, Password: ptr("a new password")},
			wantPerms: []domain.Permission{domain.PermUsersUpdate, domain.PermUsersPasswordUpdate}, wantWrites: 1},
		{name: "own email, conditional", actorRole: domain.RoleUser, self: true,
			req: ports.UpdateUserRequest{Patch: domain.ProfilePatch{Email: ptr("new@example.com")},
				CurrentPassword: ptr("theirs-secret"), IfMatch: &ports.IfMatch{Versions: []int64{1}}},
			wantPerms: []domain.Permission{domain.PermUsersUpdate}, wantWrites: 1},
		{name: "role changed meanwhile", actorRole: domain.RoleAdmin, promote: true,
			req:     ports.UpdateUserRequest{Patch: domain.ProfilePatch{FirstName: ptr("Eve")}},
			wantErr: domain.ErrForbidden,
			// Allowed on the user read first, refused on the locked row.
			wantPerms: []domain.Permission{domain.PermUsersUpdate, domain.PermUsersUpdate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			repo := &lockCountingRepo{countingRepo: &countingRepo{UserRepository: f.repo}}
			users := NewUsers(Deps{Repo: repo, Authz: f.authz, Hasher: f.hasher, Clock: fixedClock{testNow}, CursorKey: testCursorKey})
			f.authz.set(shippedPolicy)
			target := f.seed(t, 2, domain.RoleUser, "theirs-secret")
			actor := actorOf(target)
			if !tt.self {
				actor = actorOf(f.seed(t, 1, tt.actorRole, "mine-secret"))
			}
			if tt.promote {
				repo.beforeLock = func() {
					if _, err := f.repo.Update(ctx, target.ID(), domain.Operator(), func(u *domain.User, n domain.SuperadminCount) (domain.ChangeAction, error) {
						return domain.ActionRoleChanged, u.ChangeRole(domain.Operator(), domain.RoleSuperadmin, n, testNow)
					}); err != nil {
						t.Error(err)
					}
				}
			}
			writesBefore := len(f.repo.recorded(t))

			_, err := users.UpdateProfile(ctx, actor, target.ID(), tt.req)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if n := repo.gets.Load() + repo.locks.Load(); n != 2 {
				t.Errorf("the user was read %d times, want 2 (once, then locked)", n)
			}
			var perms []domain.Permission
			for _, q := range f.authz.recorded() {
				perms = append(perms, q.Permission)
			}
			if !slices.Equal(perms, tt.wantPerms) {
				t.Errorf("the policy was asked %v, want %v", perms, tt.wantPerms)
			}
			writes := len(f.repo.recorded(t)) - writesBefore
			if tt.promote {
				writes-- // the promotion
			}
			if writes != tt.wantWrites {
				t.Errorf("%d writes, want %d", writes, tt.wantWrites)
			}
		})
	}
}
