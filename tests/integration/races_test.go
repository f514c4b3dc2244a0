package integration

import (
	"net/http"
	"sync"
	"testing"

	"github.com/userservice/userservice/tests/harness"
)

// together sends the requests at once (as near as goroutines get) and
// returns their answers in order.
func together(t *testing.T, send ...func() harness.Response) []harness.Response {
	t.Helper()
	out := make([]harness.Response, len(send))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, f := range send {
		wg.Go(func() {
			<-start
			out[i] = f()
		})
	}
	close(start)
	wg.Wait()
	return out
}

// TestRacesKeepInvariants races requests whose interleaving could break an
// invariant: two superadmins removing each other must leave one
// (docs/api.md, Roles), and one refresh token spent twice at once must give one pair
// and revoke the family (docs/api.md).
func TestRacesKeepInvariants(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		survivor := s.SeedSuperadmin(t)
		for round, action := range []string{"delete", "demote", "delete", "demote"} {
			other := s.CreateAndLogin(t, survivor, superadmin)
			act := func(actor, target *harness.Account) func() harness.Response {
				if action == "delete" {
					return func() harness.Response {
						return s.Do(t, http.MethodDelete, harness.UserPath(target.ID), actor.Access, nil)
					}
				}
				return func() harness.Response {
					return s.Do(t, http.MethodPatch, harness.UserPath(target.ID)+"/role", actor.Access, map[string]any{"role": admin})
				}
			}
			rs := together(t, act(survivor, other), act(other, survivor))
			won := 0
			for i, r := range rs {
				switch r.Status {
				case http.StatusOK, http.StatusNoContent:
					won++
					if i == 1 {
						survivor = other
					}
				case http.StatusConflict, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
					// Refused as the last superadmin, or the actor already
					// lost the role or the account.
				default:
					t.Errorf("round %d (%s): %s", round, action, r)
				}
			}
			if won != 1 {
				t.Fatalf("round %d (%s): %d of the two removals succeeded, want exactly one: %v", round, action, won, rs)
			}
			var p harness.PageDTO
			s.Expect(t, http.StatusOK, http.MethodGet, "/api/v1/users/search?role=superadmin", survivor.Access, nil).Decode(t, &p)
			if len(p.Items) != 1 || p.Items[0].ID != survivor.ID {
				t.Fatalf("round %d (%s): superadmins %v, want only %d", round, action, p.Items, survivor.ID)
			}
		}

		// One refresh token presented several times at once.
		u := s.CreateAndLogin(t, survivor, user)
		send := make([]func() harness.Response, 4)
		for i := range send {
			send[i] = func() harness.Response {
				return s.Do(t, http.MethodPost, "/api/v1/auth/refresh", "", map[string]any{"refresh_token": u.Refresh})
			}
		}
		var winner pair
		ok := 0
		for _, r := range together(t, send...) {
			switch r.Status {
			case http.StatusOK:
				ok++
				r.Decode(t, &winner)
			case http.StatusUnauthorized:
			default:
				t.Errorf("a concurrent refresh: %s", r)
			}
		}
		// One refresh wins the rotation; the others present a spent token,
		// which revokes the family and the user's access tokens. That
		// revocation may land before the winner has read the user back,
		// and then the winner is refused too (the pair it would have got
		// was revoked already): at most one succeeds, never more.
		if ok > 1 {
			t.Fatalf("%d of 4 concurrent refreshes of one token succeeded, want at most 1", ok)
		}
		if ok == 1 {
			refresh(t, s, winner.RefreshToken, http.StatusUnauthorized)
			s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, winner.AccessToken, nil)
		}
		refresh(t, s, u.Refresh, http.StatusUnauthorized)
		s.Expect(t, http.StatusUnauthorized, http.MethodGet, me, u.Access, nil)
	})
}
