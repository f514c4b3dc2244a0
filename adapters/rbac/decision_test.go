package rbac_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/userservice/userservice/adapters/rbac"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// authzCase is one question: an actor of some role acting with some relation
// to a target user of some role, possibly giving a new role.
type authzCase struct {
	actor   domain.Role
	rel     string      // "self", "other", or "none" (no target)
	target  domain.Role // zero without a target; the actor's role for "self"
	newRole domain.Role // zero when none is given
}

func (c authzCase) String() string {
	return fmt.Sprintf("%s acting on %s (target role %q, new role %q)", c.actor, c.rel, c.target, c.newRole)
}

// The spaces of cases relevant to each permission, for an actor of role r.
func noTarget(r domain.Role) []authzCase {
	return []authzCase{{actor: r, rel: "none"}}
}

func targets(r domain.Role) []authzCase {
	cs := []authzCase{{actor: r, rel: "self", target: r}}
	for _, t := range domain.Roles() {
		cs = append(cs, authzCase{actor: r, rel: "other", target: t})
	}
	return cs
}

func selfTarget(r domain.Role) []authzCase {
	return []authzCase{{actor: r, rel: "self", target: r}}
}

func otherTargets(r domain.Role) []authzCase {
	return targets(r)[1:]
}

// maybeTarget: the caller may ask before or after loading the target user.
func maybeTarget(r domain.Role) []authzCase {
	return append(noTarget(r), targets(r)...)
}

func withNewRoles(cs []authzCase) []authzCase {
	var out []authzCase
	for _, c := range cs {
		for _, n := range domain.Roles() {
			c.newRole = n
			out = append(out, c)
		}
	}
	return out
}

func roleChanges(r domain.Role) []authzCase { return withNewRoles(targets(r)) }

// creations: a user created with a given role, or with none (the default).
func creations(r domain.Role) []authzCase {
	return append(noTarget(r), withNewRoles(noTarget(r))...)
}

// TestShippedPolicy holds the shipped policy files to the matrix of
// docs/api.md, Roles, written out below in its own terms, over every
// actor role and every relation, target role and new role relevant to each
// permission.
func TestShippedPolicy(t *testing.T) {
	t.Parallel()
	a, err := rbac.New(shipped, nil)
	if err != nil {
		t.Fatal(err)
	}

	yes := func(authzCase) bool { return true }
	no := func(authzCase) bool { return false }
	// "only users whose role is user"
	targetIsUser := func(c authzCase) bool { return c.target == domain.RoleUser }
	userOrAdmin := func(r domain.Role) bool { return r == domain.RoleUser || r == domain.RoleAdmin }
	// "between user and admin, on users who are not superadmin, never their own"
	adminRoleChange := func(c authzCase) bool {
		return c.rel == "other" && userOrAdmin(c.target) && userOrAdmin(c.newRole)
	}
	// "any role, anyone" (but nobody their own role)
	notOwn := func(c authzCase) bool { return c.rel == "other" }

	matrix := []struct {
		action                  string
		perm                    domain.Permission
		cases                   func(domain.Role) []authzCase
		user, admin, superadmin func(authzCase) bool
	}{
		{"list users", domain.PermUsersList, noTarget, yes, yes, yes},
		{"get a user by id", domain.PermUsersRead, maybeTarget, yes, yes, yes},
		{"read own profile", domain.PermUsersReadSelf, maybeTarget, yes, yes, yes},
		{"search users", domain.PermUsersSearch, noTarget, no, yes, yes},
		{"update own profile", domain.PermUsersUpdate, selfTarget, yes, yes, yes},
		{"update another user's profile", domain.PermUsersUpdate, otherTargets, no, targetIsUser, yes},
		{"change a role", domain.PermUsersRoleUpdate, roleChanges, no, adminRoleChange, notOwn},
		{"set another user's password", domain.PermUsersPasswordUpdate, otherTargets, no, no, yes},
		{"create a user with any role", domain.PermUsersCreate, creations, no, no, yes},
		{"delete a user", domain.PermUsersDelete, targets, no, no, yes},
		{"import users from CSV", domain.PermUsersImport, noTarget, no, no, yes},
		{"read the audit log", domain.PermAuditRead, noTarget, no, no, yes},
		{"subscribe by id", domain.PermSubscribeID, maybeTarget, yes, yes, yes},
		{"subscribe by search filter", domain.PermSubscribeSearch, noTarget, no, yes, yes},
		{"introspect a token", domain.PermTokensIntrospect, noTarget, no, no, yes},
	}

	covered := map[domain.Permission]bool{}
	checked := 0
	for _, row := range matrix {
		covered[row.perm] = true
		expect := map[domain.Role]func(authzCase) bool{
			domain.RoleUser: row.user, domain.RoleAdmin: row.admin, domain.RoleSuperadmin: row.superadmin,
		}
		for _, role := range domain.Roles() {
			for _, c := range row.cases(role) {
				want := expect[role](c)
				got := decide(t, a, row.perm, c)
				if got != want {
					t.Errorf("%s (%s): %v: allowed=%v, the contract says %v", row.action, row.perm, c, got, want)
				}
				checked++
			}
		}
	}
	for _, p := range []domain.Permission{
		domain.PermUsersList, domain.PermUsersRead, domain.PermUsersReadSelf,
		domain.PermUsersSearch, domain.PermUsersUpdate, domain.PermUsersRoleUpdate,
		domain.PermUsersPasswordUpdate, domain.PermUsersCreate, domain.PermUsersDelete, domain.PermUsersImport,
		domain.PermAuditRead, domain.PermSubscribeID, domain.PermSubscribeSearch,
		domain.PermTokensIntrospect,
	} {
		if !covered[p] {
			t.Errorf("permission %s is not in the matrix", p)
		}
	}
	t.Logf("%d decisions checked", checked)
}

// decide asks a about c as the application would, with domain values.
func decide(t *testing.T, a *rbac.Authorizer, perm domain.Permission, c authzCase) bool {
	t.Helper()
	const actorID, otherID = 7, 8
	req := ports.AuthzRequest{Actor: domain.Actor{ID: actorID, Role: c.actor}, Permission: perm, NewRole: c.newRole}
	switch c.rel {
	case "self":
		req.Target = testUser(t, actorID, c.target)
	case "other":
		req.Target = testUser(t, otherID, c.target)
	}
	err := a.Authorize(t.Context(), req)
	if err != nil && !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("%s: %v: %v", perm, c, err)
	}
	return err == nil
}

// The command-line operator acts as a superadmin; no user is ever the
// operator, so even a superadmin target is "another user".
func TestOperatorIsSuperadmin(t *testing.T) {
	t.Parallel()
	a, err := rbac.New(shipped, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []ports.AuthzRequest{
		{Actor: domain.Operator(), Permission: domain.PermUsersImport},
		{Actor: domain.Operator(), Permission: domain.PermUsersCreate, NewRole: domain.RoleSuperadmin},
		{Actor: domain.Operator(), Permission: domain.PermUsersRoleUpdate, Target: testUser(t, 1, domain.RoleSuperadmin), NewRole: domain.RoleUser},
		{Actor: domain.Operator(), Permission: domain.PermUsersDelete, Target: testUser(t, 1, domain.RoleSuperadmin)},
	} {
		if err := a.Authorize(t.Context(), req); err != nil {
			t.Errorf("operator %s: %v", req.Permission, err)
		}
	}
}

// An actor without a role (a zero Actor from a bug upstream) may do nothing.
func TestActorWithoutRoleIsForbidden(t *testing.T) {
	t.Parallel()
	a, err := rbac.New(shipped, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Authorize(t.Context(), ports.AuthzRequest{Actor: domain.Actor{ID: 3}, Permission: domain.PermUsersList})
	if !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("got %v, want ErrForbidden", err)
	}
}

// Answers are remembered per loaded policy: asking every question of the
// matrix again, in the opposite order, gets the same answers as the first
// time, when each came from Casbin.
func TestRememberedDecisionsAgree(t *testing.T) {
	t.Parallel()
	a, err := rbac.New(shipped, nil)
	if err != nil {
		t.Fatal(err)
	}
	perms := []domain.Permission{domain.PermUsersList, domain.PermUsersRead, domain.PermUsersReadSelf,
		domain.PermUsersSearch, domain.PermUsersUpdate, domain.PermUsersRoleUpdate, domain.PermUsersPasswordUpdate,
		domain.PermUsersCreate, domain.PermUsersDelete, domain.PermUsersImport, domain.PermAuditRead,
		domain.PermSubscribeID, domain.PermSubscribeSearch}
	type asked struct {
		perm domain.Permission
		c    authzCase
	}
	var questions []asked
	for _, r := range domain.Roles() {
		for _, p := range perms {
			for _, c := range withNewRoles(maybeTarget(r)) {
				questions = append(questions, asked{p, c})
			}
			for _, c := range maybeTarget(r) {
				questions = append(questions, asked{p, c})
			}
		}
	}
	first := make([]bool, len(questions))
	allowedSome := false
	for i, q := range questions {
		first[i] = decide(t, a, q.perm, q.c)
		allowedSome = allowedSome || first[i]
	}
	if !allowedSome {
		t.Fatal("the shipped policy allowed nothing")
	}
	for i := len(questions) - 1; i >= 0; i-- {
		if got := decide(t, a, questions[i].perm, questions[i].c); got != first[i] {
			t.Errorf("%s: %v: allowed=%v when asked again, %v the first time", questions[i].perm, questions[i].c, got, first[i])
		}
	}
}

func BenchmarkAuthorize(b *testing.B) {
	a, err := rbac.New(shipped, nil)
	if err != nil {
		b.Fatal(err)
	}
	u, err := domain.RestoreUser(domain.StoredUser{ID: 8, Role: domain.RoleUser.String()})
	if err != nil {
		b.Fatal(err)
	}
	req := ports.AuthzRequest{Actor: domain.Actor{ID: 7, Role: domain.RoleAdmin}, Permission: domain.PermUsersRead, Target: u}
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Authorize(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}
