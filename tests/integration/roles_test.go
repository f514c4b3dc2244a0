package integration

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/userservice/userservice/tests/harness"
)

// The actors of the matrix: nobody signed in, and one signed-in user of each
// role.
const (
	anonymous  = "anonymous"
	user       = "user"
	admin      = "admin"
	superadmin = "superadmin"
)

// The targets of the matrix, besides a role name (another user with that role).
const (
	self    = "self"    // the actor itself
	missing = "missing" // an id no user has
)

// missingID is an id no user of a test has.
const missingID = 1 << 40

// roleCase is one row of the expectations: actor does action to target
// (giving role, for role changes and create-admin) and gets want.
type roleCase struct {
	action string
	actor  string
	target string
	role   string
	want   int
}

// roleMatrix is the role table of docs/api.md, and who may call each route, as the statuses
// §3 gives: 401 without a (valid) token, 403 when the policy or an invariant
// refuses, 404 for no such user when the actor could act on one, 409 for the
// last superadmin (TestInvariantsHoldWhateverThePolicy), 422 for invalid
// values. Import and WebSocket rows belong to later issues.
var roleMatrix = []roleCase{
	// §3: anyone may log in, refresh and sign up; health, metrics and docs are public.
	{"login", anonymous, "", "", http.StatusOK},
	{"refresh", anonymous, "", "", http.StatusOK},
	{"sign_up", anonymous, "", "", http.StatusCreated},
	{"healthz", anonymous, "", "", http.StatusOK},
	{"readyz", anonymous, "", "", http.StatusOK},
	{"metrics", anonymous, "", "", http.StatusOK},
	{"openapi", anonymous, "", "", http.StatusOK},
	{"docs", anonymous, "", "", http.StatusOK},

	// Read own profile (/users/me): yes, yes, yes.
	{"me", anonymous, "", "", http.StatusUnauthorized},
	{"me", user, "", "", http.StatusOK},
	{"me", admin, "", "", http.StatusOK},
	{"me", superadmin, "", "", http.StatusOK},

	// List users: yes, yes, yes.
	{"list", anonymous, "", "", http.StatusUnauthorized},
	{"list", user, "", "", http.StatusOK},
	{"list", admin, "", "", http.StatusOK},
	{"list", superadmin, "", "", http.StatusOK},

	// Search users: no, yes, yes.
	{"search", anonymous, "", "", http.StatusUnauthorized},
	{"search", user, "", "", http.StatusForbidden},
	{"search", admin, "", "", http.StatusOK},
	{"search", superadmin, "", "", http.StatusOK},

	// Get a user by id: yes, yes, yes, whoever the user is.
	{"get", anonymous, user, "", http.StatusUnauthorized},
	{"get", user, self, "", http.StatusOK},
	{"get", user, user, "", http.StatusOK},
	{"get", user, admin, "", http.StatusOK},
	{"get", user, superadmin, "", http.StatusOK},
	{"get", user, missing, "", http.StatusNotFound},
	{"get", admin, self, "", http.StatusOK},
	{"get", admin, user, "", http.StatusOK},
	{"get", admin, admin, "", http.StatusOK},
	{"get", admin, superadmin, "", http.StatusOK},
	{"get", admin, missing, "", http.StatusNotFound},
	{"get", superadmin, self, "", http.StatusOK},
	{"get", superadmin, user, "", http.StatusOK},
	{"get", superadmin, admin, "", http.StatusOK},
	{"get", superadmin, superadmin, "", http.StatusOK},
	{"get", superadmin, missing, "", http.StatusNotFound},

	// Update own profile: yes, yes, yes. Update another user's profile: no;
	// only users whose role is user; yes. An id nobody has is a 404 only to
	// those who could update some user with it.
	{"update_profile", anonymous, user, "", http.StatusUnauthorized},
	{"update_profile", user, self, "", http.StatusOK},
	{"update_profile", user, user, "", http.StatusForbidden},
	{"update_profile", user, admin, "", http.StatusForbidden},
	{"update_profile", user, superadmin, "", http.StatusForbidden},
	{"update_profile", user, missing, "", http.StatusForbidden},
	{"update_profile", admin, self, "", http.StatusOK},
	{"update_profile", admin, user, "", http.StatusOK},
	{"update_profile", admin, admin, "", http.StatusForbidden},
	{"update_profile", admin, superadmin, "", http.StatusForbidden},
	{"update_profile", admin, missing, "", http.StatusNotFound},
	{"update_profile", superadmin, self, "", http.StatusOK},
	{"update_profile", superadmin, user, "", http.StatusOK},
	{"update_profile", superadmin, admin, "", http.StatusOK},
	{"update_profile", superadmin, superadmin, "", http.StatusOK},
	{"update_profile", superadmin, missing, "", http.StatusNotFound},

	// Another user's email and password need no current_password, only the
	// right to update that user and, for the password, users.password.update
	// (superadmin only: otherwise an admin could take over a peer by
	// demoting it, setting its password and promoting it back).
	{"update_credentials", user, user, "", http.StatusForbidden},
	{"update_credentials", admin, user, "", http.StatusForbidden},
	{"update_credentials", admin, admin, "", http.StatusForbidden},
	{"update_credentials", admin, superadmin, "", http.StatusForbidden},
	{"update_credentials", superadmin, user, "", http.StatusOK},
	{"update_credentials", superadmin, admin, "", http.StatusOK},
	{"update_credentials", superadmin, superadmin, "", http.StatusOK},

	// Changing one's own email or password needs current_password: missing
	// or wrong, 422.
	{"update_own_email", user, self, "", http.StatusOK},
	{"update_own_email", admin, self, "", http.StatusOK},
	{"update_own_email", superadmin, self, "", http.StatusOK},
	{"update_own_email_without_current", user, self, "", http.StatusUnprocessableEntity},
	{"update_own_email_without_current", admin, self, "", http.StatusUnprocessableEntity},
	{"update_own_email_without_current", superadmin, self, "", http.StatusUnprocessableEntity},
	{"update_own_email_wrong_current", user, self, "", http.StatusUnprocessableEntity},
	{"update_own_email_wrong_current", admin, self, "", http.StatusUnprocessableEntity},
	{"update_own_email_wrong_current", superadmin, self, "", http.StatusUnprocessableEntity},
	{"update_own_password", user, self, "", http.StatusOK},
	{"update_own_password", admin, self, "", http.StatusOK},
	{"update_own_password", superadmin, self, "", http.StatusOK},
	{"update_own_password_without_current", user, self, "", http.StatusUnprocessableEntity},
	{"update_own_password_without_current", admin, self, "", http.StatusUnprocessableEntity},
	{"update_own_password_without_current", superadmin, self, "", http.StatusUnprocessableEntity},

	// A role key in PUT is rejected (422), so nobody escalates through it.
	{"update_role_key", user, self, "superadmin", http.StatusUnprocessableEntity},
	{"update_role_key", admin, self, "superadmin", http.StatusUnprocessableEntity},
	{"update_role_key", admin, user, "admin", http.StatusUnprocessableEntity},
	{"update_role_key", superadmin, user, "admin", http.StatusUnprocessableEntity},

	// Change a role: no; between user and admin, on users who are not
	// superadmin, never their own; any role, anyone (but never their own:
	// nobody changes their own role). The role a user already has is a 200
	// that changes nothing.
	{"role", anonymous, user, admin, http.StatusUnauthorized},
	{"role", user, self, admin, http.StatusForbidden},
	{"role", user, user, admin, http.StatusForbidden},
	{"role", user, admin, user, http.StatusForbidden},
	{"role", user, superadmin, user, http.StatusForbidden},
	{"role", user, missing, admin, http.StatusForbidden},
	{"role", admin, user, admin, http.StatusOK},
	{"role", admin, admin, user, http.StatusOK},
	{"role", admin, user, user, http.StatusOK},
	{"role", admin, admin, admin, http.StatusOK},
	{"role", admin, user, superadmin, http.StatusForbidden},
	{"role", admin, admin, superadmin, http.StatusForbidden},
	{"role", admin, superadmin, admin, http.StatusForbidden},
	{"role", admin, superadmin, user, http.StatusForbidden},
	{"role", admin, self, user, http.StatusForbidden},
	{"role", admin, self, superadmin, http.StatusForbidden},
	{"role", admin, missing, admin, http.StatusNotFound},
	{"role", admin, missing, superadmin, http.StatusForbidden},
	{"role", superadmin, user, admin, http.StatusOK},
	{"role", superadmin, user, superadmin, http.StatusOK},
	{"role", superadmin, admin, user, http.StatusOK},
	{"role", superadmin, admin, superadmin, http.StatusOK},
	{"role", superadmin, superadmin, admin, http.StatusOK},
	{"role", superadmin, superadmin, user, http.StatusOK},
	{"role", superadmin, self, admin, http.StatusForbidden},
	{"role", superadmin, self, user, http.StatusForbidden},
	{"role", superadmin, missing, admin, http.StatusNotFound},
	{"role", superadmin, user, "root", http.StatusUnprocessableEntity},

	// Create a user with any role (create-admin): no, no, yes.
	{"create", anonymous, "", user, http.StatusUnauthorized},
	{"create", user, "", user, http.StatusForbidden},
	{"create", user, "", admin, http.StatusForbidden},
	{"create", user, "", superadmin, http.StatusForbidden},
	{"create", admin, "", user, http.StatusForbidden},
	{"create", admin, "", admin, http.StatusForbidden},
	{"create", admin, "", superadmin, http.StatusForbidden},
	{"create", superadmin, "", user, http.StatusCreated},
	{"create", superadmin, "", admin, http.StatusCreated},
	{"create", superadmin, "", superadmin, http.StatusCreated},

	// Delete a user: no, no, yes (a superadmin may delete themselves while
	// another superadmin remains).
	{"delete", anonymous, user, "", http.StatusUnauthorized},
	{"delete", user, self, "", http.StatusForbidden},
	{"delete", user, user, "", http.StatusForbidden},
	{"delete", user, admin, "", http.StatusForbidden},
	{"delete", user, missing, "", http.StatusForbidden},
	{"delete", admin, self, "", http.StatusForbidden},
	{"delete", admin, user, "", http.StatusForbidden},
	{"delete", admin, admin, "", http.StatusForbidden},
	{"delete", admin, superadmin, "", http.StatusForbidden},
	{"delete", admin, missing, "", http.StatusForbidden},
	{"delete", superadmin, user, "", http.StatusNoContent},
	{"delete", superadmin, admin, "", http.StatusNoContent},
	{"delete", superadmin, superadmin, "", http.StatusNoContent},
	{"delete", superadmin, self, "", http.StatusNoContent},
	{"delete", superadmin, missing, "", http.StatusNotFound},

	// Read the audit log: no, no, yes.
	{"audit", anonymous, "", "", http.StatusUnauthorized},
	{"audit", user, "", "", http.StatusForbidden},
	{"audit", admin, "", "", http.StatusForbidden},
	{"audit", superadmin, "", "", http.StatusOK},

	// Log out: signed in.
	{"logout", anonymous, "", "", http.StatusUnauthorized},
	{"logout", user, "", "", http.StatusNoContent},
	{"logout", admin, "", "", http.StatusNoContent},
	{"logout", superadmin, "", "", http.StatusNoContent},
}

// matrix is the cast of TestRoleMatrix: the actors, a user of each role for
// cases that leave their target usable, and the superadmin that sets up and
// checks the rest.
type matrix struct {
	s      *harness.Service
	root   *harness.Account
	actors map[string]*harness.Account
	others map[string]*harness.Account
}

// subject is the user a case acts on: its id and role (zero when none).
type subject struct {
	id   int64
	role string
}

// matrixAction performs one action. mutating actions may change their target
// for good or end the actor's tokens: each of their cases that is expected to
// succeed gets a new target (and, when acting on itself, a new actor), so no
// case depends on another.
type matrixAction struct {
	mutating bool
	run      func(t *testing.T, m *matrix, c roleCase, actor *harness.Account, target subject) harness.Response
}

var matrixActions = map[string]matrixAction{
	"login": {run: func(t *testing.T, m *matrix, _ roleCase, _ *harness.Account, _ subject) harness.Response {
		a := m.s.Create(t, m.root, user)
		return m.s.Do(t, http.MethodPost, "/api/v1/auth/token", "",
			url.Values{"username": {a.Email}, "password": {a.Password}})
	}},
	"refresh": {run: func(t *testing.T, m *matrix, _ roleCase, _ *harness.Account, _ subject) harness.Response {
		a := m.s.CreateAndLogin(t, m.root, user)
		return m.s.Do(t, http.MethodPost, "/api/v1/auth/refresh", "", map[string]any{"refresh_token": a.Refresh})
	}},
	"sign_up": {run: func(t *testing.T, m *matrix, _ roleCase, _ *harness.Account, _ subject) harness.Response {
		return m.s.Do(t, http.MethodPost, "/api/v1/auth/sign-up", "", harness.NewUserBody(harness.Email("signup"), m.s.Password(), ""))
	}},
	"healthz": {run: public("/healthz")},
	"readyz":  {run: public("/readyz")},
	"metrics": {run: public("/metrics")},
	"openapi": {run: public("/openapi.yaml")},
	"docs":    {run: public("/docs")},
	"me": {run: func(t *testing.T, m *matrix, _ roleCase, actor *harness.Account, _ subject) harness.Response {
		r := m.s.Do(t, http.MethodGet, "/api/v1/users/me", actor.Access, nil)
		if r.Status == http.StatusOK {
			if u := r.User(t); u.ID != actor.ID || u.Role != actor.Role {
				t.Errorf("%s: want user %d with role %s", r, actor.ID, actor.Role)
			}
		}
		return r
	}},
	"list": {run: func(t *testing.T, m *matrix, _ roleCase, actor *harness.Account, _ subject) harness.Response {
		r := m.s.Do(t, http.MethodGet, "/api/v1/users/list?size=5", actor.Access, nil)
		if r.Status == http.StatusOK {
			var p harness.PageDTO
			r.Decode(t, &p)
			if len(p.Items) == 0 {
				t.Errorf("%s: no users listed", r)
			}
		}
		return r
	}},
	"search": {run: func(t *testing.T, m *matrix, _ roleCase, actor *harness.Account, _ subject) harness.Response {
		r := m.s.Do(t, http.MethodGet, "/api/v1/users/search?role=admin", actor.Access, nil)
		if r.Status == http.StatusOK {
			var p harness.PageDTO
			r.Decode(t, &p)
			for _, u := range p.Items {
				if u.Role != admin {
					t.Errorf("%s: role=admin found user %d with role %s", r, u.ID, u.Role)
				}
			}
			if len(p.Items) == 0 {
				t.Errorf("%s: role=admin found nobody", r)
			}
		}
		return r
	}},
	"get": {run: func(t *testing.T, m *matrix, _ roleCase, actor *harness.Account, target subject) harness.Response {
		r := m.s.Do(t, http.MethodGet, harness.UserPath(target.id), actor.Access, nil)
		if r.Status == http.StatusOK {
			if u := r.User(t); u.ID != target.id {
				t.Errorf("%s: want user %d", r, target.id)
			}
			if r.Header.Get("ETag") == "" {
				t.Errorf("%s: no ETag", r)
			}
		}
		return r
	}},
	"update_profile": {run: func(t *testing.T, m *matrix, _ roleCase, actor *harness.Account, target subject) harness.Response {
		r := m.s.Do(t, http.MethodPut, harness.UserPath(target.id), actor.Access, map[string]any{"first_name": "Renée"})
		if r.Status == http.StatusOK && r.User(t).FirstName != "Renée" {
			t.Errorf("%s: the first name did not change", r)
		}
		return r
	}},
	"update_credentials": {run: func(t *testing.T, m *matrix, _ roleCase, actor *harness.Account, target subject) harness.Response {
		addr := harness.Email("changed")
		r := m.s.Do(t, http.MethodPut, harness.UserPath(target.id), actor.Access, map[string]any{"email": addr, "password": m.s.Password()})
		if r.Status == http.StatusOK && r.User(t).Email != addr {
			t.Errorf("%s: the email did not change", r)
		}
		return r
	}},
	"update_own_email": {run: func(t *testing.T, m *matrix, _ roleCase, actor *harness.Account, target subject) harness.Response {
		addr := harness.Email("mine")
		r := m.s.Do(t, http.MethodPut, harness.UserPath(target.id), actor.Access, map[string]any{"email": addr, "current_password": actor.Password})
		if r.Status == http.StatusOK {
			if r.User(t).Email != addr {
				t.Errorf("%s: the email did not change", r)
			}
			actor.Email = addr
			// An email change leaves the tokens alone.
			m.s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", actor.Access, nil)
		}
		return r
	}},
	"update_own_email_without_current": {run: func(t *testing.T, m *matrix, _ roleCase, actor *harness.Account, target subject) harness.Response {
		return m.s.Do(t, http.MethodPut, harness.UserPath(target.id), actor.Access, map[string]any{"email": harness.Email("mine")})
	}},
	"update_own_email_wrong_current": {run: func(t *testing.T, m *matrix, _ roleCase, actor *harness.Account, target subject) harness.Response {
		return m.s.Do(t, http.MethodPut, harness.UserPath(target.id), actor.Access, map[string]any{"email": harness.Email("mine"), "current_password": m.s.Password()})
	}},
	"update_own_password": {mutating: true, run: func(t *testing.T, m *matrix, _ roleCase, actor *harness.Account, target subject) harness.Response {
		old := *actor
		actor.Password = m.s.Password()
		r := m.s.Do(t, http.MethodPut, harness.UserPath(target.id), actor.Access, map[string]any{"password": actor.Password, "current_password": old.Password})
		if r.Status == http.StatusOK {
			// A password change ends the tokens issued before it.
			m.s.Expect(t, http.StatusUnauthorized, http.MethodGet, "/api/v1/users/me", old.Access, nil)
			m.s.Expect(t, http.StatusUnauthorized, http.MethodPost, "/api/v1/auth/refresh", "", map[string]any{"refresh_token": old.Refresh})
			m.s.Login(t, actor)
		}
		return r
	}},
	"update_own_password_without_current": {run: func(t *testing.T, m *matrix, _ roleCase, actor *harness.Account, target subject) harness.Response {
		return m.s.Do(t, http.MethodPut, harness.UserPath(target.id), actor.Access, map[string]any{"password": m.s.Password()})
	}},
	"update_role_key": {run: func(t *testing.T, m *matrix, c roleCase, actor *harness.Account, target subject) harness.Response {
		r := m.s.Do(t, http.MethodPut, harness.UserPath(target.id), actor.Access, map[string]any{"first_name": "Eve", "role": c.role})
		m.checkRole(t, target.id, target.role)
		return r
	}},
	"role": {mutating: true, run: func(t *testing.T, m *matrix, c roleCase, actor *harness.Account, target subject) harness.Response {
		r := m.s.Do(t, http.MethodPatch, harness.UserPath(target.id)+"/role", actor.Access, map[string]any{"role": c.role})
		switch {
		case r.Status == http.StatusOK:
			if got := r.User(t).Role; got != c.role {
				t.Errorf("%s: answered role %s, want %s", r, got, c.role)
			}
			m.checkRole(t, target.id, c.role)
		case target.id != missingID:
			m.checkRole(t, target.id, target.role) // refused: unchanged
		}
		return r
	}},
	"create": {run: func(t *testing.T, m *matrix, c roleCase, actor *harness.Account, _ subject) harness.Response {
		r := m.s.Do(t, http.MethodPost, "/api/v1/users/create-admin", actor.Access, harness.NewUserBody(harness.Email("made"), m.s.Password(), c.role))
		if r.Status == http.StatusCreated {
			if got := r.User(t).Role; got != c.role {
				t.Errorf("%s: created with role %s, want %s", r, got, c.role)
			}
			if r.Header.Get("Location") != harness.UserPath(r.User(t).ID) {
				t.Errorf("%s: Location %q", r, r.Header.Get("Location"))
			}
		}
		return r
	}},
	"delete": {mutating: true, run: func(t *testing.T, m *matrix, _ roleCase, actor *harness.Account, target subject) harness.Response {
		r := m.s.Do(t, http.MethodDelete, harness.UserPath(target.id), actor.Access, nil)
		switch {
		case r.Status == http.StatusNoContent:
			m.s.Expect(t, http.StatusNotFound, http.MethodGet, harness.UserPath(target.id), m.root.Access, nil)
			if target.id == actor.ID {
				m.s.Expect(t, http.StatusUnauthorized, http.MethodGet, "/api/v1/users/me", actor.Access, nil)
			}
		case target.id != missingID:
			m.s.Expect(t, http.StatusOK, http.MethodGet, harness.UserPath(target.id), m.root.Access, nil)
		}
		return r
	}},
	"audit": {run: func(t *testing.T, m *matrix, _ roleCase, actor *harness.Account, _ subject) harness.Response {
		r := m.s.Do(t, http.MethodGet, "/api/v1/audit?size=100", actor.Access, nil)
		if r.Status == http.StatusOK {
			var p struct {
				Items []map[string]any `json:"items"`
			}
			r.Decode(t, &p)
			if len(p.Items) == 0 {
				t.Errorf("%s: an empty change log", r)
			}
		}
		return r
	}},
	"logout": {run: func(t *testing.T, m *matrix, _ roleCase, actor *harness.Account, _ subject) harness.Response {
		return m.s.Do(t, http.MethodPost, "/api/v1/auth/logout", actor.Access, map[string]any{"refresh_token": actor.Refresh})
	}},
}

// public is an action on a route outside /api/v1 that needs no token.
func public(path string) func(*testing.T, *matrix, roleCase, *harness.Account, subject) harness.Response {
	return func(t *testing.T, m *matrix, _ roleCase, _ *harness.Account, _ subject) harness.Response {
		r := m.s.Do(t, http.MethodGet, path, "", nil)
		if r.Status == http.StatusOK && len(r.Body) == 0 {
			t.Errorf("%s: empty", r)
		}
		return r
	}
}

// checkRole checks, as the superadmin, that user id has role want.
func (m *matrix) checkRole(t *testing.T, id int64, want string) {
	t.Helper()
	r := m.s.Expect(t, http.StatusOK, http.MethodGet, harness.UserPath(id), m.root.Access, nil)
	if got := r.User(t).Role; r.Status == http.StatusOK && got != want {
		t.Errorf("user %d has role %s, want %s", id, got, want)
	}
}

// TestRoleMatrix drives every row of roleMatrix against the service, on each
// backend.
func TestRoleMatrix(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		m := &matrix{s: s, root: root, actors: map[string]*harness.Account{}, others: map[string]*harness.Account{}}
		m.actors[anonymous] = &harness.Account{}
		m.actors[superadmin] = root
		for _, role := range []string{user, admin} {
			m.actors[role] = s.CreateAndLogin(t, root, role)
		}
		for _, role := range []string{user, admin, superadmin} {
			m.others[role] = s.Create(t, root, role)
		}

		for _, c := range roleMatrix {
			name := c.action + "/" + c.actor
			if c.target != "" {
				name += "/" + c.target
			}
			if c.role != "" {
				name += "/to_" + c.role
			}
			t.Run(name, func(t *testing.T) {
				act, ok := matrixActions[c.action]
				if !ok {
					t.Fatalf("no action %q", c.action)
				}
				actor := m.actors[c.actor]
				// A case expected to change its target for good gets a new
				// one; a case expected to be refused uses the shared cast,
				// and checks the refusal left it as it was.
				fresh := act.mutating && c.actor != anonymous && c.want < 300
				var target subject
				switch {
				case c.target == "":
				case c.target == missing:
					target = subject{missingID, ""}
				case c.target == self && fresh:
					actor = s.CreateAndLogin(t, root, c.actor)
					target = subject{actor.ID, actor.Role}
				case c.target == self:
					target = subject{actor.ID, actor.Role}
				case fresh:
					target = subject{s.Create(t, root, c.target).ID, c.target}
				default:
					target = subject{m.others[c.target].ID, c.target}
				}
				if r := act.run(t, m, c, actor, target); r.Status != c.want {
					t.Errorf("%s as %s: %s; want %d", c.action, c.actor, r, c.want)
				}
			})
		}
	})
}
