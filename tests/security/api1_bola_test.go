package security

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/userservice/userservice/tests/harness"
)

// TestAPI1_BOLA_AnotherUsersIDOnEveryRoute is API1:2023 Broken Object Level
// Authorization: every route that takes a user's id, called by each role
// with the id of another user of each role. Reading any user is allowed to
// everyone (docs/api.md, Roles), so the attacks are the writes and the audit trail:
// each refusal must be a 403 that leaves the victim exactly as it was: same
// profile, same role, same password, no audit entry, still able to log in.
// The id is also written the ways a parser might read differently (leading
// zeros), and a victim's refresh token is presented to logout.
func TestAPI1_BOLA_AnotherUsersIDOnEveryRoute(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		victims := map[string]*harness.Account{}
		for _, r := range roles {
			victims[r] = s.CreateAndLogin(t, c.root, r)
		}
		before := map[string]string{}
		for r, v := range victims {
			before[r] = snapshot(t, s, c.root, v.ID)
		}

		// attack is one request by an actor against a victim's id.
		type attack struct {
			name   string
			method string
			path   func(id int64) string
			body   map[string]any
		}
		idPath := func(suffix string) func(int64) string {
			return func(id int64) string { return harness.UserPath(id) + suffix }
		}
		zeros := func(id int64) string { return "/api/v1/users/000" + strconv.FormatInt(id, 10) }
		rename := map[string]any{"first_name": "Mallory"}
		steal := map[string]any{"email": harness.Email("mallory"), "password": "Mallory-owns-this-1"}
		attacks := []attack{
			{"rename", http.MethodPut, idPath(""), rename},
			{"take over the email and password", http.MethodPut, idPath(""), steal},
			{"rename, id with leading zeros", http.MethodPut, zeros, rename},
			{"promote to superadmin", http.MethodPatch, idPath("/role"), map[string]any{"role": superadmin}},
			{"demote to user", http.MethodPatch, idPath("/role"), map[string]any{"role": user}},
			{"delete", http.MethodDelete, idPath(""), nil},
			{"delete, id with leading zeros", http.MethodDelete, zeros, nil},
			{"read the audit trail", http.MethodGet, func(id int64) string { return audit + "?target_id=" + strconv.FormatInt(id, 10) }, nil},
		}
		// allowed says which (actor, victim, attack) the shipped policy
		// permits: those are not attacks and are left to the role matrix of
		// tests/integration, which checks that they work.
		allowed := func(actor, victim string, a attack) bool {
			switch actor {
			case superadmin:
				return true
			case admin:
				switch a.name {
				case "rename", "rename, id with leading zeros":
					return victim == user
				case "demote to user":
					return victim != superadmin
				}
			}
			return false
		}
		for _, actor := range roles {
			for _, victim := range roles {
				for _, a := range attacks {
					if allowed(actor, victim, a) {
						continue
					}
					t.Run(fmt.Sprintf("%s/%s's id/%s", actor, victim, a.name), func(t *testing.T) {
						var body any
						if a.body != nil {
							body = a.body
						}
						s.Expect(t, http.StatusForbidden, a.method, a.path(victims[victim].ID), c.byRole[actor].Access, body)
					})
				}
			}
		}

		// Logging out with someone else's refresh token ends nobody's session.
		for _, actor := range roles {
			v := victims[user]
			s.Expect(t, http.StatusNoContent, http.MethodPost, logout, c.byRole[actor].Access, map[string]any{"refresh_token": v.Refresh})
		}
		r := s.Expect(t, http.StatusOK, http.MethodPost, refresh, "", map[string]any{"refresh_token": victims[user].Refresh})
		var pair struct {
			RefreshToken string `json:"refresh_token"`
		}
		r.Decode(t, &pair)
		victims[user].Refresh = pair.RefreshToken

		for r, v := range victims {
			if after := snapshot(t, s, c.root, v.ID); after != before[r] {
				t.Errorf("the %s victim changed under refused attacks:\nbefore %s\nafter  %s", r, before[r], after)
			}
			if got := loginStatus(t, s, v); got != http.StatusOK {
				t.Errorf("the %s victim can no longer log in with its password: %d", r, got)
			}
			if acts := auditActions(t, s, c.root, v.ID); !slices.Equal(acts, []string{"created"}) {
				t.Errorf("the %s victim's audit trail is %q, want only its creation", r, acts)
			}
		}
	})
}

// TestAPI1_BOLA_OwnProfileRoutesTakeNoID is API1:2023: /users/me answers the
// token's user whatever the request says about another: an id in the query
// is refused as an unknown parameter, and the answer never is another user.
func TestAPI1_BOLA_OwnProfileRoutesTakeNoID(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		c := newCast(t, s)
		u := c.byRole[user]
		other := strconv.FormatInt(c.root.ID, 10)
		for _, q := range []string{"?id=" + other, "?user_id=" + other, "?sub=" + other} {
			s.Expect(t, http.StatusBadRequest, http.MethodGet, me+q, u.Access, nil)
		}
		got := s.Expect(t, http.StatusOK, http.MethodGet, me, u.Access, nil, "X-User-ID", other).User(t)
		if got.ID != u.ID {
			t.Errorf("/users/me with X-User-ID answered user %d, want the token's %d", got.ID, u.ID)
		}
	})
}
