package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestPolicyEditTakesEffectWithoutRestart edits the service's copy of
// policy.csv while it runs (CONTRACT §2): a grant applies within seconds,
// a file that does not load is rejected whole and the policy in force stays,
// and a good edit after it applies again.
func TestPolicyEditTakesEffectWithoutRestart(t *testing.T) {
	t.Parallel()
	onEachBackend(t, options{}, func(t *testing.T, s *service) {
		root := s.seedSuperadmin(t)
		u := s.createAndLogin(t, root, user)
		a := s.createAndLogin(t, root, admin)
		// Edits made before the watcher is in place would go unseen.
		s.waitForLog(t, "watching the policy directory for changes", 1)

		const search = "/api/v1/users/search?role=admin"
		s.expect(t, http.StatusForbidden, http.MethodGet, search, u.access, nil)

		shipped, err := os.ReadFile(filepath.Join(s.policyDir, "policy.csv"))
		if err != nil {
			t.Fatal(err)
		}
		granted := string(shipped) + "\np, user, users.search, *, *, *\n"
		s.writePolicy(t, granted)
		poll(t, "the grant of users.search to user to apply", func() bool {
			r := s.do(t, http.MethodGet, search, u.access, nil)
			if r.status != http.StatusOK && r.status != http.StatusForbidden {
				t.Fatalf("%s: want 403 until the grant applies, then 200", r)
			}
			return r.status == http.StatusOK
		})
		var p pageDTO
		s.expect(t, http.StatusOK, http.MethodGet, search, u.access, nil).decode(t, &p)
		if len(p.Items) != 1 || p.Items[0].ID != a.id {
			t.Errorf("the user's search found %+v, want the admin %d", p.Items, a.id)
		}

		// A file with a good row and a bad one: neither may apply, or a user
		// could delete.
		broken := granted + "p, user, users.delete, *, *, *\nthis is not a policy row\n"
		s.writePolicy(t, broken)
		s.waitForLog(t, "policy rejected", 1)
		s.expect(t, http.StatusOK, http.MethodGet, search, u.access, nil)
		s.expect(t, http.StatusForbidden, http.MethodDelete, userPath(a.id), u.access, nil)
		s.expect(t, http.StatusOK, http.MethodGet, userPath(a.id), root.access, nil)
		s.expect(t, http.StatusOK, http.MethodGet, search, a.access, nil)

		// Back to the shipped policy: the grant is withdrawn as promptly.
		s.writePolicy(t, string(shipped))
		poll(t, "the shipped policy to apply again", func() bool {
			return s.do(t, http.MethodGet, search, u.access, nil).status == http.StatusForbidden
		})
	})
}

// TestInvariantsHoldWhateverThePolicy runs a policy that lets admins and
// superadmins change any role of anyone, themselves included: the domain's
// invariants still hold (CONTRACT §2): the last superadmin can be neither
// demoted nor deleted (409), nobody changes their own role (403), and a
// role change ends the user's tokens at once.
func TestInvariantsHoldWhateverThePolicy(t *testing.T) {
	t.Parallel()
	opts := options{policyRows: []string{
		"p, admin, users.role.update, *, *, *",
		"p, superadmin, users.role.update, *, *, *",
	}}
	onEachBackend(t, opts, func(t *testing.T, s *service) {
		root := s.seedSuperadmin(t)
		a := s.createAndLogin(t, root, admin)
		code := func(r response, want string) {
			t.Helper()
			var e struct {
				Code string `json:"code"`
			}
			r.decode(t, &e)
			if e.Code != want {
				t.Errorf("%s: code %q, want %q", r, e.Code, want)
			}
		}
		role := func(who *account, id int64, to string, want int) response {
			t.Helper()
			return s.expect(t, want, http.MethodPatch, userPath(id)+"/role", who.access, map[string]any{"role": to})
		}

		// root is the only superadmin.
		code(s.expect(t, http.StatusConflict, http.MethodDelete, userPath(root.id), root.access, nil), "last_superadmin")
		code(role(a, root.id, admin, http.StatusConflict), "last_superadmin")
		code(role(a, root.id, user, http.StatusConflict), "last_superadmin")
		code(role(root, root.id, admin, http.StatusForbidden), "own_role_change")
		code(role(a, a.id, superadmin, http.StatusForbidden), "own_role_change")
		code(role(a, a.id, user, http.StatusForbidden), "own_role_change")
		s.expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", root.access, nil)

		// With a second superadmin, root may be demoted; its token dies at once.
		s2 := s.createAndLogin(t, root, superadmin)
		role(a, root.id, admin, http.StatusOK)
		s.expect(t, http.StatusUnauthorized, http.MethodGet, "/api/v1/users/me", root.access, nil)
		s.expect(t, http.StatusUnauthorized, http.MethodPost, "/api/v1/auth/refresh", "", map[string]any{"refresh_token": root.refresh})
		s.login(t, root)
		if me := s.expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", root.access, nil).user(t); me.Role != admin {
			t.Errorf("root after demotion: role %s, want admin", me.Role)
		}

		// Now s2 is the last one.
		code(role(root, s2.id, admin, http.StatusConflict), "last_superadmin")
		code(s.expect(t, http.StatusConflict, http.MethodDelete, userPath(s2.id), s2.access, nil), "last_superadmin")
		code(role(s2, s2.id, user, http.StatusForbidden), "own_role_change")
		s.expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", s2.access, nil)
	})
}
