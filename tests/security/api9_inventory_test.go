package security

import (
	"net/http"
	"strings"
	"testing"

	"github.com/userservice/userservice/tests/harness"
)

// TestAPI9_Inventory_OnlyDocumentedRoutesAnswer is API9:2023 Improper
// Inventory Management: the service answers the operations its served
// OpenAPI document lists, the documentation itself and the WebSocket
// endpoint, and nothing else: no old or future API version, no debug or
// profiling endpoint, no framework default page.
func TestAPI9_Inventory_OnlyDocumentedRoutesAnswer(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		id := harness.UserPath(root.ID)
		for _, op := range servedOperations(t, s) {
			path := strings.ReplaceAll(op.path, "/api/v1/users/{id}", id)
			r := s.Do(t, op.method, path, root.Access, nil)
			if r.Status == http.StatusMethodNotAllowed || r.Status == http.StatusNotFound && r.Error(t).Detail == "Not Found" {
				t.Errorf("%s %s is documented but not routed: %s", op.method, op.path, r)
			}
		}
		// The last superadmin cannot have been deleted above.
		s.Expect(t, http.StatusOK, http.MethodGet, me, root.Access, nil)

		for _, path := range []string{
			"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=2", "/debug/vars", "/debug/requests",
			"/api/v2/users/list", "/api/v0/users/list", "/api/users/list", "/v1/users/list", "/api/v1/users",
			"/api/v1/internal", "/api/v1/admin", "/admin", "/.env", "/.git/config", "/config.yaml", "/policies/policy.csv",
			"/swagger.json", "/swagger-ui.html", "/v2/api-docs", "/actuator/health", "/server-status", "/graphql",
			"/api/v1/users/ws/debug", "/docs/../policies/policy.csv", "/metrics/debug",
		} {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				r := s.Do(t, method, path, root.Access, nil)
				if r.Status != http.StatusNotFound && r.Status != http.StatusMethodNotAllowed {
					t.Errorf("%s: an undocumented path answers", r)
				}
			}
		}
	})
}
