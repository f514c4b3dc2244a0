package httpapi

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/userservice/userservice/domain"
)

func TestHealthz(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.ready = func(context.Context) error { return errors.New("database down") }
	rec := h.get("/healthz", "")
	wantStatus(t, rec, http.StatusOK)
	if s := decode[Status](t, rec); s.Status != "ok" {
		t.Errorf("status = %q", s.Status)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{ReadyTimeout: time.Second})
	var deadline bool
	h.ready = func(ctx context.Context) error {
		_, deadline = ctx.Deadline()
		return nil
	}
	rec := h.get("/readyz", "")
	wantStatus(t, rec, http.StatusOK)
	if !deadline {
		t.Error("the readiness check runs without a deadline")
	}
	if s := decode[Status](t, rec); s.Status != "ok" {
		t.Errorf("status = %q", s.Status)
	}

	h.ready = func(context.Context) error { return errors.New("dial tcp 10.1.1.1:5432: connection refused") }
	rec = h.get("/readyz", "")
	body := wantError(t, rec, http.StatusServiceUnavailable, "not_ready")
	if strings.Contains(rec.Body.String(), "10.1.1.1") {
		t.Errorf("cause leaked: %s", rec.Body.String())
	}
	if body.Detail == "" {
		t.Error("no detail")
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.users.GetFn = func(context.Context, domain.Actor, int64) (*domain.User, error) { return testUser(t, 1), nil }
	h.get("/api/v1/users/1", userToken)
	h.get("/api/v1/users/2", userToken)
	h.get("/no/such/route", "")
	rec := h.get("/metrics", "")
	wantStatus(t, rec, http.StatusOK)
	text := rec.Body.String()
	for _, want := range []string{
		`userservice_http_requests_total{method="GET",route="/api/v1/users/:id",status="200"} 2`,
		`userservice_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`userservice_http_request_duration_seconds_bucket{method="GET",route="/api/v1/users/:id",status="200",le="+Inf"} 2`,
		`userservice_http_requests_in_flight 1`, // the scrape itself
		`userservice_build_info{goversion="go`,
		`version="v1.2.3-test"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s\n%s", want, text)
		}
	}
	if strings.Contains(text, `route="/api/v1/users/1"`) {
		t.Error("raw path used as a label")
	}
}

func TestMetricsBoundMethodLabels(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.do(request{method: "BREW", path: "/healthz"})
	if text := h.get("/metrics", "").Body.String(); !strings.Contains(text, `method="OTHER"`) || strings.Contains(text, "BREW") {
		t.Errorf("made-up method not folded:\n%s", text)
	}
}

func TestServesTheSpec(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	rec := h.get("/openapi.yaml", "")
	wantStatus(t, rec, http.StatusOK)
	file, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec.Body.Bytes(), file) {
		t.Error("/openapi.yaml differs from openapi.yaml")
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/yaml") {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestServesSwaggerUIOffline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	for _, p := range []string{"/docs", "/docs/"} {
		rec := h.get(p, "")
		wantStatus(t, rec, http.StatusOK)
		if !strings.Contains(rec.Body.String(), `<div id="swagger-ui">`) {
			t.Errorf("%s: not the Swagger UI page: %s", p, rec.Body.String())
		}
		if strings.Contains(rec.Body.String(), "http") && strings.Contains(rec.Body.String(), "://") {
			t.Errorf("%s: the page loads something from the network", p)
		}
	}
	rec := h.get("/docs/swagger-initializer.js", "")
	wantStatus(t, rec, http.StatusOK)
	if body := rec.Body.String(); !strings.Contains(body, `url: "/openapi.yaml"`) || strings.Contains(body, "petstore") {
		t.Errorf("initializer does not load our spec: %s", body)
	}
	for _, asset := range []string{"/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/oauth2-redirect.html"} {
		rec := h.get(asset, "")
		wantStatus(t, rec, http.StatusOK)
		if rec.Body.Len() < 100 {
			t.Errorf("%s: %d bytes", asset, rec.Body.Len())
		}
	}
	if ct := h.get("/docs/swagger-ui-bundle.js", "").Header().Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("bundle Content-Type = %q", ct)
	}
	wantError(t, h.get("/docs/nope.js", ""), http.StatusNotFound, "not_found")
	wantError(t, h.get("/docs/..%2fopenapi.yaml", ""), http.StatusNotFound, "not_found")
}

// The spec Swagger UI's "Authorize" reads: password flow at the token route.
func TestSpecOffersThePasswordFlow(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	if err := spec.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not valid: %v", err)
	}
	scheme := spec.Components.SecuritySchemes["OAuth2Password"]
	if scheme == nil || scheme.Value.Flows == nil || scheme.Value.Flows.Password == nil ||
		scheme.Value.Flows.Password.TokenURL != "/api/v1/auth/token" {
		t.Fatalf("no password flow at /api/v1/auth/token: %+v", scheme)
	}
	token := spec.Paths.Find("/api/v1/auth/token").Post
	if token.RequestBody.Value.Content.Get("application/x-www-form-urlencoded") == nil {
		t.Error("the token route does not document the form")
	}
}

func TestEverySpecOperationIsRouted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	routes := map[string]bool{}
	for _, r := range h.e.Routes() {
		routes[r.Method+" "+r.Path] = true
	}
	spec := testSpec(t)
	for path, item := range spec.Paths.Map() {
		for method := range item.Operations() {
			key := method + " " + strings.NewReplacer("{id}", ":id", "{job_id}", ":job_id").Replace(path)
			if !routes[key] {
				t.Errorf("%s is not routed", key)
			}
		}
	}
}

// testSpec loads openapi.yaml as internal/gen does, for the tests that walk
// its operations: the server itself only has the generated table.
func testSpec(t *testing.T) *openapi3.T {
	t.Helper()
	spec, err := openapi3.NewLoader().LoadFromData(specYAML)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestNewRefusesMissingDependencies(t *testing.T) {
	t.Parallel()
	_, err := New(Deps{Users: &fakeUsers{}, Log: slog.New(slog.DiscardHandler)}, Config{})
	if err == nil || !strings.Contains(err.Error(), "Access, Audit, Auth, Import, Jobs, Keys, Ready, Registry, Stats") {
		t.Errorf("err = %v", err)
	}
}

func TestNewRefusesARegistryInUse(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	deps := Deps{Users: &fakeUsers{}, Auth: &fakeAuth{}, Audit: &fakeAudit{}, Import: &fakeImport{}, Keys: testKeys,
		Access: &fakeConsole{}, Stats: &fakeConsole{}, Jobs: &fakeConsole{},
		Ready: func(context.Context) error { return nil },
		Log:   slog.New(slog.DiscardHandler), Registry: reg}
	if _, err := New(deps, Config{}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(deps, Config{}); err == nil {
		t.Error("a second server on the same registry was accepted")
	}
}

func TestNewHTTPServerTimeouts(t *testing.T) {
	t.Parallel()
	s := NewHTTPServer(":0", http.NotFoundHandler())
	if s.Addr != ":0" || s.ReadHeaderTimeout != 5*time.Second || s.ReadTimeout != 30*time.Second ||
		s.WriteTimeout != 30*time.Second || s.IdleTimeout != 120*time.Second {
		t.Errorf("server = %+v", s)
	}
}
