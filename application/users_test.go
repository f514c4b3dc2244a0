package application

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// authzWant is the expected shape of an authorization question.
type authzWant struct {
	perm     domain.Permission
	targetID int64 // 0: no target
	newRole  domain.Role
}

func shapeOf(r ports.AuthzRequest) authzWant {
	w := authzWant{perm: r.Permission, newRole: r.NewRole}
	if r.Target != nil {
		w.targetID = r.Target.ID()
	}
	return w
}

func TestUseCasesAskTheAuthorizerAndHonourRefusal(t *testing.T) {
	t.Parallel()
	validUser := domain.NewUserParams{FirstName: "Bo", LastName: "Ek", Email: "bo@example.com", Gender: "male"}
	// Each case runs against a fixture with an admin (actor, id 1) and a
	// target user (id 2).
	cases := []struct {
		name string
		run  func(ctx context.Context, s *Users, actor domain.Actor) error
		want authzWant
	}{
		{"me", func(ctx context.Context, s *Users, a domain.Actor) error { _, err := s.Me(ctx, a); return err },
			authzWant{domain.PermUsersReadSelf, 1, domain.Role{}}},
		{"get", func(ctx context.Context, s *Users, a domain.Actor) error { _, err := s.Get(ctx, a, 2); return err },
			authzWant{domain.PermUsersRead, 2, domain.Role{}}},
		{"list", func(ctx context.Context, s *Users, a domain.Actor) error {
			_, err := s.List(ctx, a, ports.PageRequest{})
			return err
		}, authzWant{domain.PermUsersList, 0, domain.Role{}}},
		{"search", func(ctx context.Context, s *Users, a domain.Actor) error {
			_, err := s.Search(ctx, a, ports.PageRequest{Filter: domain.FilterParams{Email: "example"}})
			return err
		}, authzWant{domain.PermUsersSearch, 0, domain.Role{}}},
		{"create", func(ctx context.Context, s *Users, a domain.Actor) error {
			_, err := s.Create(ctx, a, ports.CreateUserRequest{User: validUser, Role: "admin", Password: "long enough"})
			return err
		}, authzWant{domain.PermUsersCreate, 0, domain.RoleAdmin}},
		{"create with default role", func(ctx context.Context, s *Users, a domain.Actor) error {
			_, err := s.Create(ctx, a, ports.CreateUserRequest{User: validUser, Password: "long enough"})
			return err
		}, authzWant{domain.PermUsersCreate, 0, domain.RoleUser}},
		{"update profile", func(ctx context.Context, s *Users, a domain.Actor) error {
			_, err := s.UpdateProfile(ctx, a, 2, ports.UpdateUserRequest{Patch: domain.ProfilePatch{FirstName: ptr("Eve")}})
			return err
		}, authzWant{domain.PermUsersUpdate, 2, domain.Role{}}},
		{"change role", func(ctx context.Context, s *Users, a domain.Actor) error {
			_, err := s.ChangeRole(ctx, a, 2, "admin")
			return err
		}, authzWant{domain.PermUsersRoleUpdate, 2, domain.RoleAdmin}},
		{"delete", func(ctx context.Context, s *Users, a domain.Actor) error { return s.Delete(ctx, a, 2) },
			authzWant{domain.PermUsersDelete, 2, domain.Role{}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t)
			actor := actorOf(f.seed(t, 1, domain.RoleAdmin, "secret-one"))
			f.seed(t, 2, domain.RoleUser, "secret-two")
			before := len(f.repo.recorded(t))

			f.authz.set(denyAll)
			err := tc.run(ctx, f.users, actor)
			if !errors.Is(err, domain.ErrForbidden) {
				t.Fatalf("refused: got %v, want ErrForbidden", err)
			}
			calls := f.authz.recorded()
			if len(calls) != 1 || shapeOf(calls[0]) != tc.want || calls[0].Actor != actor {
				t.Fatalf("refused: asked %+v, want one question %+v by %+v", calls, tc.want, actor)
			}
			if got := len(f.repo.recorded(t)); got != before {
				t.Fatalf("refused: %d writes happened", got-before)
			}
			if n := f.hashes(); n != 0 {
				t.Fatalf("refused: %d passwords hashed", n)
			}

			f.authz.set(nil)
			if err := tc.run(ctx, f.users, actor); err != nil {
				t.Fatalf("allowed: %v", err)
			}
			calls = f.authz.recorded()
			if len(calls) == 0 {
				t.Fatal("allowed: the authorizer was not asked")
			}
			for _, c := range calls {
				if shapeOf(c) != tc.want {
					t.Fatalf("allowed: asked %+v, want %+v", shapeOf(c), tc.want)
				}
			}
		})
	}
}

func TestWritesAreAuthorizedAgainstTheLockedRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	admin := actorOf(f.seed(t, 1, domain.RoleAdmin, "secret-one"))
	target := f.seed(t, 2, domain.RoleUser, "secret-two")
	f.authz.set(shippedPolicy)
	// The target is a plain user when read, and an admin by the time its
	// row is locked.
	repo := &promotingRepo{UserRepository: f.repo, id: target.ID()}
	s := NewUsers(Deps{Repo: repo, Authz: f.authz, Hasher: f.hasher, Clock: fixedClock{testNow}, CursorKey: testCursorKey})
	_, err := s.UpdateProfile(ctx, admin, target.ID(), ports.UpdateUserRequest{Patch: domain.ProfilePatch{FirstName: ptr("Eve")}})
	if !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("got %v, want ErrForbidden: an admin may not edit an admin", err)
	}
	if got := f.repo.stored(t, target.ID()).FirstName; got != "Ann" {
		t.Fatalf("first name changed to %q", got)
	}
}

// promotingRepo makes user id an admin just before running an Update, as a
// concurrent request committing in between would.
type promotingRepo struct {
	ports.UserRepository
	id int64
}

func (r *promotingRepo) Update(ctx context.Context, id int64, actor domain.Actor, fn ports.UpdateFunc) (*domain.User, error) {
	_, err := r.UserRepository.Update(ctx, r.id, domain.Operator(), func(u *domain.User, c domain.SuperadminCount) (domain.ChangeAction, error) {
		return domain.ActionRoleChanged, u.ChangeRole(domain.Operator(), domain.RoleAdmin, c, testNow)
	})
	if err != nil {
		return nil, err
	}
	return r.UserRepository.Update(ctx, id, actor, fn)
}
func TestMissingTargetIsNotFoundOnlyForThoseWhoCouldActOnIt(t *testing.T) {
	t.Parallel()
	const missing = 999
	cases := []struct {
		name string
		role domain.Role
		run  func(ctx context.Context, s *Users, a domain.Actor) error
		want error
	}{
		{"user reads", domain.RoleUser, func(ctx context.Context, s *Users, a domain.Actor) error {
			_, err := s.Get(ctx, a, missing)
			return err
		}, domain.ErrNotFound},
		{"user updates another", domain.RoleUser, func(ctx context.Context, s *Users, a domain.Actor) error {
			_, err := s.UpdateProfile(ctx, a, missing, ports.UpdateUserRequest{})
			return err
		}, domain.ErrForbidden},
		{"admin updates", domain.RoleAdmin, func(ctx context.Context, s *Users, a domain.Actor) error {
			_, err := s.UpdateProfile(ctx, a, missing, ports.UpdateUserRequest{})
			return err
		}, domain.ErrNotFound},
		{"superadmin updates", domain.RoleSuperadmin, func(ctx context.Context, s *Users, a domain.Actor) error {
			_, err := s.UpdateProfile(ctx, a, missing, ports.UpdateUserRequest{})
			return err
		}, domain.ErrNotFound},
		{"user changes a role", domain.RoleUser, func(ctx context.Context, s *Users, a domain.Actor) error {
			_, err := s.ChangeRole(ctx, a, missing, "user")
			return err
		}, domain.ErrForbidden},
		{"admin grants admin", domain.RoleAdmin, func(ctx context.Context, s *Users, a domain.Actor) error {
			_, err := s.ChangeRole(ctx, a, missing, "admin")
			return err
		}, domain.ErrNotFound},
		{"admin grants superadmin", domain.RoleAdmin, func(ctx context.Context, s *Users, a domain.Actor) error {
			_, err := s.ChangeRole(ctx, a, missing, "superadmin")
			return err
		}, domain.ErrForbidden},
		{"superadmin grants superadmin", domain.RoleSuperadmin, func(ctx context.Context, s *Users, a domain.Actor) error {
			_, err := s.ChangeRole(ctx, a, missing, "superadmin")
			return err
		}, domain.ErrNotFound},
		{"admin deletes", domain.RoleAdmin, func(ctx context.Context, s *Users, a domain.Actor) error {
			return s.Delete(ctx, a, missing)
		}, domain.ErrForbidden},
		{"superadmin deletes", domain.RoleSuperadmin, func(ctx context.Context, s *Users, a domain.Actor) error {
			return s.Delete(ctx, a, missing)
		}, domain.ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.authz.set(shippedPolicy)
			actor := actorOf(f.seed(t, 1, tc.role, "secret-one"))
			if err := tc.run(context.Background(), f.users, actor); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRoleAndDeletionInvariants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("nobody changes their own role", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		super := f.seed(t, 1, domain.RoleSuperadmin, "secret-one")
		f.seed(t, 2, domain.RoleSuperadmin, "secret-two")
		_, err := f.users.ChangeRole(ctx, actorOf(super), super.ID(), "admin")
		if !errors.Is(err, domain.ErrOwnRoleChange) {
			t.Fatalf("got %v, want ErrOwnRoleChange", err)
		}
	})
	t.Run("the last superadmin is not demoted", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		super := f.seed(t, 1, domain.RoleSuperadmin, "secret-one")
		_, err := f.users.ChangeRole(ctx, domain.Operator(), super.ID(), "admin")
		if !errors.Is(err, domain.ErrLastSuperadmin) {
			t.Fatalf("got %v, want ErrLastSuperadmin", err)
		}
		if got := f.repo.stored(t, super.ID()).Role; got != "superadmin" {
			t.Fatalf("role is %s", got)
		}
	})
	t.Run("the last superadmin is not deleted", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		super := f.seed(t, 1, domain.RoleSuperadmin, "secret-one")
		if err := f.users.Delete(ctx, actorOf(super), super.ID()); !errors.Is(err, domain.ErrLastSuperadmin) {
			t.Fatalf("got %v, want ErrLastSuperadmin", err)
		}
	})
	t.Run("a superadmin with a peer is demoted, tokens revoked", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		a := f.seed(t, 1, domain.RoleSuperadmin, "secret-one")
		b := f.seed(t, 2, domain.RoleSuperadmin, "secret-two")
		u, err := f.users.ChangeRole(ctx, actorOf(a), b.ID(), "user")
		if err != nil {
			t.Fatal(err)
		}
		if u.Role() != domain.RoleUser || u.TokenVersion() != b.TokenVersion()+1 {
			t.Fatalf("role %s, token version %d", u.Role(), u.TokenVersion())
		}
		last := f.repo.recorded(t)[len(f.repo.recorded(t))-1]
		if last != (recordedChange{domain.ActionRoleChanged, a.ID(), b.ID()}) {
			t.Fatalf("recorded %+v", last)
		}
		if err := f.users.Delete(ctx, actorOf(a), b.ID()); err != nil {
			t.Fatalf("delete: %v", err)
		}
	})
	t.Run("an unknown role is invalid", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		a := f.seed(t, 1, domain.RoleSuperadmin, "secret-one")
		b := f.seed(t, 2, domain.RoleUser, "secret-two")
		_, err := f.users.ChangeRole(ctx, actorOf(a), b.ID(), "root")
		if got := fieldsOf(t, err); !slices.Equal(got, []string{"role"}) {
			t.Fatalf("fields %v", got)
		}
	})
}

func TestCreateReportsEveryInvalidField(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bad := domain.NewUserParams{FirstName: "R2-D2", LastName: "", Email: "not-an-email", Gender: "robot", IPAddress: "999.1.1.1"}
	f := newFixture(t)
	super := actorOf(f.seed(t, 1, domain.RoleSuperadmin, "secret-one"))

	_, err := f.users.Create(ctx, super, ports.CreateUserRequest{User: bad, Role: "god", Password: "short"})
	want := []string{"email", "first_name", "gender", "ip_address", "last_name", "password", "role"}
	if got := fieldsOf(t, err); !slices.Equal(got, want) {
		t.Fatalf("create: fields %v, want %v", got, want)
	}
	_, err = f.auth.SignUp(ctx, ports.CreateUserRequest{User: bad, Role: "god", Password: "short"})
	if got := fieldsOf(t, err); !slices.Equal(got, want[:6]) {
		t.Fatalf("sign-up: fields %v, want %v (the role is ignored)", got, want[:6])
	}
	if n := f.hashes(); n != 0 {
		t.Fatalf("%d passwords hashed for invalid requests", n)
	}
	if n := len(f.repo.recorded(t)); n != 1 {
		t.Fatalf("%d writes, want only the seed", n)
	}
}

func TestCreateAndSignUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	super := actorOf(f.seed(t, 1, domain.RoleSuperadmin, "secret-one"))
	p := domain.NewUserParams{ID: 77, FirstName: "Zoë", LastName: "O'Doireidh", Email: "Zoe@Example.com", Gender: "FEMALE"}

	u, err := f.users.Create(ctx, super, ports.CreateUserRequest{User: p, Role: "admin", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	s := f.repo.stored(t, u.ID())
	if s.Role != "admin" || s.PasswordHash != "hash:correct horse" || s.Email != "zoe@example.com" || s.MustChangePassword || s.ID == 77 {
		t.Fatalf("stored %+v", s)
	}
	if _, err := f.users.Create(ctx, super, ports.CreateUserRequest{User: p, Password: "correct horse"}); !errors.Is(err, domain.ErrEmailTaken) {
		t.Fatalf("same email again: %v", err)
	}

	p.Email = "new@example.com"
	p.Role = domain.RoleSuperadmin
	f.authz.set(nil)
	u, err = f.auth.SignUp(ctx, ports.CreateUserRequest{User: p, Role: "superadmin", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	if u.Role() != domain.RoleUser {
		t.Fatalf("sign-up gave role %s", u.Role())
	}
	if calls := f.authz.recorded(); len(calls) != 0 {
		t.Fatalf("sign-up asked the authorizer: %+v", calls)
	}
}

func TestUpdateProfileCurrentPasswordRules(t *testing.T) {
	t.Parallel()
	const mine = "secret-one"
	cases := []struct {
		name    string
		self    bool // otherwise a superadmin edits the user
		req     ports.UpdateUserRequest
		want    error
		action  domain.ChangeAction // "" : nothing written
		revoked bool
	}{
		{name: "own email without current", self: true,
			req: ports.UpdateUserRequest{Patch: domain.ProfilePatch{Email: ptr("new@example.com")}}, want: domain.ErrPasswordRequired},
		{name: "own email with wrong current", self: true,
			req: ports.UpdateUserRequest{Patch: domain.ProfilePatch{Email: ptr("new@example.com")}, CurrentPassword: ptr("nope-nope")}, want: domain.ErrPasswordIncorrect},
		{name: "own email with current", self: true,
			req: ports.UpdateUserRequest{Patch: domain.ProfilePatch{Email: ptr("new@example.com")}, CurrentPassword: ptr(mine)}, action: domain.ActionUpdated},
		{name: "own unchanged email needs nothing", self: true,
			req: ports.UpdateUserRequest{Patch: domain.ProfilePatch{Email: ptr("USER2@example.com")}}},
		{name: "own name needs nothing", self: true,
			req: ports.UpdateUserRequest{Patch: domain.ProfilePatch{FirstName: ptr("Eve")}}, action: domain.ActionUpdated},
		{name: "own password without current", self: true,
			req: ports.UpdateUserRequest{Password: ptr("brand new one")}, want: domain.ErrPasswordRequired},
		{name: "own password with empty current", self: true,
			req: ports.UpdateUserRequest{Password: ptr("brand new one"), CurrentPassword: ptr("")}, want: domain.ErrPasswordRequired},
		{name: "own password with current", self: true,
			req: ports.UpdateUserRequest{Password: ptr("brand new one"), CurrentPassword: ptr(mine)}, action: domain.ActionPasswordChanged, revoked: true},
		{name: "own password and name", self: true,
			req:    ports.UpdateUserRequest{Patch: domain.ProfilePatch{FirstName: ptr("Eve")}, Password: ptr("brand new one"), CurrentPassword: ptr(mine)},
			action: domain.ActionUpdated, revoked: true},
		{name: "another's password by a superadmin",
			req: ports.UpdateUserRequest{Password: ptr("brand new one")}, action: domain.ActionPasswordChanged, revoked: true},
		{name: "another's email by a superadmin",
			req: ports.UpdateUserRequest{Patch: domain.ProfilePatch{Email: ptr("new@example.com")}}, action: domain.ActionUpdated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t)
			f.authz.set(shippedPolicy)
			super := f.seed(t, 1, domain.RoleSuperadmin, "secret-super")
			target := f.seed(t, 2, domain.RoleUser, mine)
			actor := actorOf(super)
			if tc.self {
				actor = actorOf(target)
			}
			writes := len(f.repo.recorded(t))
			u, err := f.users.UpdateProfile(ctx, actor, target.ID(), tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			got := f.repo.recorded(t)[writes:]
			switch {
			case tc.action == "" && len(got) != 0:
				t.Fatalf("wrote %+v, want nothing", got)
			case tc.action != "" && (len(got) != 1 || got[0].Action != tc.action):
				t.Fatalf("wrote %+v, want one %s", got, tc.action)
			}
			s := f.repo.stored(t, target.ID())
			if revoked := s.TokenVersion != target.TokenVersion(); revoked != tc.revoked {
				t.Fatalf("tokens revoked: %v, want %v", revoked, tc.revoked)
			}
			if tc.req.Password != nil && tc.want == nil && s.PasswordHash != "hash:"+*tc.req.Password {
				t.Fatalf("password hash %q", s.PasswordHash)
			}
			if tc.want == nil && u.Stored() != s {
				t.Fatalf("returned %+v, stored %+v", u.Stored(), s)
			}
		})
	}
}

func TestUpdateProfileReportsEveryInvalidField(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	super := f.seed(t, 1, domain.RoleSuperadmin, "secret-super")
	target := f.seed(t, 2, domain.RoleUser, "secret-two")
	_, err := f.users.UpdateProfile(context.Background(), actorOf(super), target.ID(), ports.UpdateUserRequest{
		Patch:    domain.ProfilePatch{FirstName: ptr(" "), Gender: ptr("x"), IPAddress: ptr("nope")},
		Password: ptr("short"),
	})
	want := []string{"first_name", "gender", "ip_address", "password"}
	if got := fieldsOf(t, err); !slices.Equal(got, want) {
		t.Fatalf("fields %v, want %v", got, want)
	}
	if n := f.hashes(); n != 0 {
		t.Fatalf("%d passwords hashed", n)
	}
}

func TestUpdateProfileIfMatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	super := actorOf(f.seed(t, 1, domain.RoleSuperadmin, "secret-super"))
	target := f.seed(t, 2, domain.RoleUser, "secret-two")
	current := target.Version()
	rename := func(name string, ifMatch *ports.IfMatch) (*domain.User, error) {
		return f.users.UpdateProfile(ctx, super, target.ID(), ports.UpdateUserRequest{
			Patch: domain.ProfilePatch{FirstName: ptr(name)}, IfMatch: ifMatch,
		})
	}
	if _, err := rename("Eve", &ports.IfMatch{}); !errors.Is(err, domain.ErrStale) {
		t.Fatalf("no version named: %v, want ErrStale", err)
	}
	u, err := rename("Eve", &ports.IfMatch{Versions: []int64{current + 7, current}})
	if err != nil {
		t.Fatalf("current version in a list: %v", err)
	}
	if u.Version() != current+1 {
		t.Fatalf("version %d after the update, want %d", u.Version(), current+1)
	}
	if _, err := rename("Ida", &ports.IfMatch{Versions: []int64{current}}); !errors.Is(err, domain.ErrStale) {
		t.Fatalf("stale version: %v, want ErrStale", err)
	}
	if got := f.repo.stored(t, target.ID()).FirstName; got != "Eve" {
		t.Fatalf("a stale update was written: %s", got)
	}
	if _, err := rename("Ida", &ports.IfMatch{Any: true}); err != nil {
		t.Fatalf("*: %v", err)
	}
}

func TestForcedPasswordChangeBlocksAllButTheChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.authz.set(shippedPolicy)
	other := f.seed(t, 1, domain.RoleUser, "secret-one")
	u := f.seed(t, 2, domain.RoleSuperadmin, "")
	if _, err := f.repo.Update(ctx, u.ID(), domain.Operator(), func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
		u.SetInitialPassword("hash:default-pass", true)
		return domain.ActionUpdated, nil
	}); err != nil {
		t.Fatal(err)
	}
	actor := domain.Actor{ID: u.ID(), Role: domain.RoleSuperadmin, PasswordChangeRequired: true}
	blocked := map[string]func() error{
		"me":     func() error { _, err := f.users.Me(ctx, actor); return err },
		"get":    func() error { _, err := f.users.Get(ctx, actor, other.ID()); return err },
		"list":   func() error { _, err := f.users.List(ctx, actor, ports.PageRequest{}); return err },
		"search": func() error { _, err := f.users.Search(ctx, actor, ports.PageRequest{}); return err },
		"create": func() error {
			_, err := f.users.Create(ctx, actor, ports.CreateUserRequest{Password: "long enough"})
			return err
		},
		"role":   func() error { _, err := f.users.ChangeRole(ctx, actor, other.ID(), "admin"); return err },
		"delete": func() error { return f.users.Delete(ctx, actor, other.ID()) },
		"update another": func() error {
			_, err := f.users.UpdateProfile(ctx, actor, other.ID(), ports.UpdateUserRequest{Password: ptr("brand new one")})
			return err
		},
		"update self without a password": func() error {
			_, err := f.users.UpdateProfile(ctx, actor, u.ID(), ports.UpdateUserRequest{
				Patch: domain.ProfilePatch{FirstName: ptr("Eve")}, CurrentPassword: ptr("default-pass"),
			})
			return err
		},
	}
	for name, run := range blocked {
		if err := run(); !errors.Is(err, domain.ErrPasswordChange) {
			t.Errorf("%s: got %v, want ErrPasswordChange", name, err)
		}
	}
	if n := len(f.authz.recorded()); n != 0 {
		t.Fatalf("the authorizer was asked %d times for blocked calls", n)
	}
	// Ending a session grants nothing, so it stays allowed.
	if err := f.auth.Logout(ctx, actor, "token"); errors.Is(err, domain.ErrPasswordChange) {
		t.Fatalf("logout during a forced password change: %v", err)
	}

	_, err := f.users.UpdateProfile(ctx, actor, u.ID(), ports.UpdateUserRequest{Password: ptr("default-pass"), CurrentPassword: ptr("default-pass")})
	if got := fieldsOf(t, err); !slices.Equal(got, []string{"password"}) {
		t.Fatalf("keeping the default password: fields %v", got)
	}
	if _, err := f.users.UpdateProfile(ctx, actor, u.ID(), ports.UpdateUserRequest{Password: ptr("mine at last")}); !errors.Is(err, domain.ErrPasswordRequired) {
		t.Fatalf("without current_password: %v", err)
	}
	changed, err := f.users.UpdateProfile(ctx, actor, u.ID(), ports.UpdateUserRequest{
		Patch: domain.ProfilePatch{FirstName: ptr("Eve")}, Password: ptr("mine at last"), CurrentPassword: ptr("default-pass"),
	})
	if err != nil {
		t.Fatalf("the allowed change: %v", err)
	}
	if changed.MustChangePassword() || changed.FirstName() != "Eve" || changed.PasswordHash() != "hash:mine at last" {
		t.Fatalf("after the change: %+v", changed.Stored())
	}
}

func TestEnsureSuperadmin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("only the operator", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		super := actorOf(f.seed(t, 1, domain.RoleSuperadmin, "secret-one"))
		for _, a := range []domain.Actor{super, {Role: domain.RoleUser}, {}} {
			if _, _, err := f.users.EnsureSuperadmin(ctx, a, ports.SuperadminRequest{Email: "root@example.com", Password: "long enough"}); !errors.Is(err, domain.ErrForbidden) {
				t.Fatalf("actor %+v: %v", a, err)
			}
		}
	})
	t.Run("validates both fields", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		_, _, err := f.users.EnsureSuperadmin(ctx, domain.Operator(), ports.SuperadminRequest{Email: "root", Password: "short"})
		if got := fieldsOf(t, err); !slices.Equal(got, []string{"email", "password"}) {
			t.Fatalf("fields %v", got)
		}
	})
	t.Run("creates", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		u, created, err := f.users.EnsureSuperadmin(ctx, domain.Operator(), ports.SuperadminRequest{Email: "Root@Example.com", Password: "long enough"})
		if err != nil || !created {
			t.Fatalf("created %v, %v", created, err)
		}
		s := f.repo.stored(t, u.ID())
		if s.Role != "superadmin" || s.PasswordHash != "hash:long enough" || s.Email != "root@example.com" {
			t.Fatalf("stored %+v", s)
		}
	})
	t.Run("takes the profile given, and checks it", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		req := ports.SuperadminRequest{Email: "ada@example.com", Password: "long enough", FirstName: "Ada", LastName: "Lovelace", Gender: "Female"}
		u, _, err := f.users.EnsureSuperadmin(ctx, domain.Operator(), req)
		if err != nil {
			t.Fatal(err)
		}
		if s := f.repo.stored(t, u.ID()); s.FirstName != "Ada" || s.LastName != "Lovelace" || s.Gender != "Female" {
			t.Fatalf("stored %+v", s)
		}
		req.Email, req.Gender, req.FirstName = "bad@example.com", "Robot", ""
		if _, _, err := f.users.EnsureSuperadmin(ctx, domain.Operator(), req); !slices.Equal(fieldsOf(t, err), []string{"gender"}) {
			t.Fatalf("a bad gender: %v", err)
		}
	})
	t.Run("promotes and sets the password", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		existing := f.seed(t, 1, domain.RoleUser, "secret-one")
		u, created, err := f.users.EnsureSuperadmin(ctx, domain.Operator(), ports.SuperadminRequest{Email: existing.Email().String(), Password: "long enough"})
		if err != nil || created {
			t.Fatalf("created %v, %v", created, err)
		}
		s := f.repo.stored(t, existing.ID())
		if u.ID() != existing.ID() || s.Role != "superadmin" || s.PasswordHash != "hash:long enough" || s.TokenVersion == existing.TokenVersion() {
			t.Fatalf("stored %+v", s)
		}
		// Running it again only sets the password.
		if _, created, err := f.users.EnsureSuperadmin(ctx, domain.Operator(), ports.SuperadminRequest{Email: existing.Email().String(), Password: "another one"}); err != nil || created {
			t.Fatalf("again: created %v, %v", created, err)
		}
		if got := f.repo.stored(t, existing.ID()).PasswordHash; got != "hash:another one" {
			t.Fatalf("hash %s", got)
		}
	})
}
