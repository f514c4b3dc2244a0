package integration

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"

	"github.com/userservice/userservice/tests/harness"
)

// TestOnePublicShape holds a user to one public shape: the REST answer, a
// WebSocket event's user and an /audit entry's after (and the before of
// the next change) have the same keys with the same values, ip_address
// null when unset in all three rather than left out by one of them.
func TestOnePublicShape(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		ws := s.ConnectWS(t, root.Access)
		sub := ws.Subscribe(map[string]any{"action": "subscribe_search", "email": "shape-"}).Str("subscription_id")

		asMap := func(r harness.Response) map[string]any {
			t.Helper()
			var m map[string]any
			r.Decode(t, &m)
			return m
		}
		// audit returns the before and after of user id's last entry.
		audit := func(id int64) (before, after map[string]any) {
			t.Helper()
			r := s.Expect(t, http.StatusOK, http.MethodGet, fmt.Sprintf("/api/v1/audit?target_id=%d", id), root.Access, nil)
			var page struct {
				Items []struct {
					Before map[string]any `json:"before"`
					After  map[string]any `json:"after"`
				} `json:"items"`
			}
			r.Decode(t, &page)
			if len(page.Items) == 0 {
				t.Fatalf("%s: no entry", r)
			}
			last := page.Items[len(page.Items)-1]
			return last.Before, last.After
		}
		same := func(what string, got, want map[string]any) {
			t.Helper()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s:\n got %v\nwant %v (the REST answer)", what, got, want)
			}
		}

		for _, ip := range []any{"10.1.2.3", nil} {
			body := harness.NewUserBody(harness.Email("shape"), s.Password(), "user")
			if ip == nil {
				delete(body, "ip_address")
			}
			created := asMap(s.Expect(t, http.StatusCreated, http.MethodPost, "/api/v1/users/create-admin", root.Access, body))
			if v, ok := created["ip_address"]; !ok || v != ip {
				t.Fatalf("REST ip_address %v (present: %v), want %v", v, ok, ip)
			}
			id := int64(created["id"].(float64))
			same("the created event's user", ws.Event("created", sub).User(), created)
			_, after := audit(id)
			same("the creation's audit after", after, created)

			updated := asMap(s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(id), root.Access,
				map[string]any{"first_name": "Reshaped"}))
			same("the updated event's user", ws.Event("updated", sub).User(), updated)
			before, after := audit(id)
			same("the update's audit before", before, created)
			same("the update's audit after", after, updated)
		}
	})
}
