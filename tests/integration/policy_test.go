package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/userservice/userservice/tests/harness"
)

// TestPolicyEditTakesEffectWithoutRestart edits the service's copy of
// policy.csv while it runs (docs/api.md, Roles): a grant applies within seconds,
// a file that does not load is rejected whole and the policy in force stays,
// and a good edit after it applies again.
func TestPolicyEditTakesEffectWithoutRestart(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		u := s.CreateAndLogin(t, root, user)
		a := s.CreateAndLogin(t, root, admin)
		// Edits made before the watcher is in place would go unseen.
		s.WaitForLog(t, "watching the policy directory for changes", 1)

		const search = "/api/v1/users/search?role=admin"
		s.Expect(t, http.StatusForbidden, http.MethodGet, search, u.Access, nil)

		shipped, err := os.ReadFile(filepath.Join(s.PolicyDir, "policy.csv"))
		if err != nil {
			t.Fatal(err)
		}
		granted := string(shipped) + "\np, user, users.search, *, *, *\n"
		s.WritePolicy(t, granted)
		harness.Poll(t, "the grant of users.search to user to apply", func() bool {
			r := s.Do(t, http.MethodGet, search, u.Access, nil)
			if r.Status != http.StatusOK && r.Status != http.StatusForbidden {
				t.Fatalf("%s: want 403 until the grant applies, then 200", r)
			}
			return r.Status == http.StatusOK
		})
		var p harness.PageDTO
		s.Expect(t, http.StatusOK, http.MethodGet, search, u.Access, nil).Decode(t, &p)
		if len(p.Items) != 1 || p.Items[0].ID != a.ID {
			t.Errorf("the user's search found %+v, want the admin %d", p.Items, a.ID)
		}

		// A file with a good row and a bad one: neither may apply, or a user
		// could delete.
		broken := granted + "p, user, users.delete, *, *, *\nthis is not a policy row\n"
		s.WritePolicy(t, broken)
		s.WaitForLog(t, "policy rejected", 1)
		s.Expect(t, http.StatusOK, http.MethodGet, search, u.Access, nil)
		s.Expect(t, http.StatusForbidden, http.MethodDelete, harness.UserPath(a.ID), u.Access, nil)
		s.Expect(t, http.StatusOK, http.MethodGet, harness.UserPath(a.ID), root.Access, nil)
		s.Expect(t, http.StatusOK, http.MethodGet, search, a.Access, nil)

		// Back to the shipped policy: the grant is withdrawn as promptly.
		s.WritePolicy(t, string(shipped))
		harness.Poll(t, "the shipped policy to apply again", func() bool {
			return s.Do(t, http.MethodGet, search, u.Access, nil).Status == http.StatusForbidden
		})
	})
}

// TestInvariantsHoldWhateverThePolicy runs a policy that lets admins and
// superadmins change any role of anyone, themselves included: the domain's
// invariants still hold (docs/api.md, Roles): the last superadmin can be neither
// demoted nor deleted (409), nobody changes their own role (403), and a
// role change ends the user's tokens at once.
func TestInvariantsHoldWhateverThePolicy(t *testing.T) {
	t.Parallel()
	opts := harness.Options{PolicyRows: []string{
		"p, admin, users.role.update, *, *, *",
		"p, superadmin, users.role.update, *, *, *",
	}}
	harness.OnEachBackend(t, opts, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		a := s.CreateAndLogin(t, root, admin)
		code := func(r harness.Response, want string) {
			t.Helper()
			var e struct {
				Code string `json:"code"`
			}
			r.Decode(t, &e)
			if e.Code != want {
				t.Errorf("%s: code %q, want %q", r, e.Code, want)
			}
		}
		role := func(who *harness.Account, id int64, to string, want int) harness.Response {
			t.Helper()
			return s.Expect(t, want, http.MethodPatch, harness.UserPath(id)+"/role", who.Access, map[string]any{"role": to})
		}

		// root is the only superadmin.
		code(s.Expect(t, http.StatusConflict, http.MethodDelete, harness.UserPath(root.ID), root.Access, nil), "last_superadmin")
		code(role(a, root.ID, admin, http.StatusConflict), "last_superadmin")
		code(role(a, root.ID, user, http.StatusConflict), "last_superadmin")
		code(role(root, root.ID, admin, http.StatusForbidden), "own_role_change")
		code(role(a, a.ID, superadmin, http.StatusForbidden), "own_role_change")
		code(role(a, a.ID, user, http.StatusForbidden), "own_role_change")
		s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", root.Access, nil)

		// With a second superadmin, root may be demoted; its token dies at once.
		s2 := s.CreateAndLogin(t, root, superadmin)
		role(a, root.ID, admin, http.StatusOK)
		s.Expect(t, http.StatusUnauthorized, http.MethodGet, "/api/v1/users/me", root.Access, nil)
		s.Expect(t, http.StatusUnauthorized, http.MethodPost, "/api/v1/auth/refresh", "", map[string]any{"refresh_token": root.Refresh})
		s.Login(t, root)
		if me := s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", root.Access, nil).User(t); me.Role != admin {
			t.Errorf("root after demotion: role %s, want admin", me.Role)
		}

		// Now s2 is the last one.
		code(role(root, s2.ID, admin, http.StatusConflict), "last_superadmin")
		code(s.Expect(t, http.StatusConflict, http.MethodDelete, harness.UserPath(s2.ID), s2.Access, nil), "last_superadmin")
		code(role(s2, s2.ID, user, http.StatusForbidden), "own_role_change")
		s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", s2.Access, nil)
	})
}
