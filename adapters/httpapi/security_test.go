package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/userservice/userservice/domain"
)

// Every answer, error or not, API or docs, carries the headers that keep
// browsers from sniffing, framing or leaking it.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.auth.AuthenticateFn = func(context.Context, string) (domain.Actor, error) { return domain.Actor{}, domain.ErrUnauthenticated }
	for _, tc := range []struct {
		name        string
		req         request
		status      int
		docs, store bool // the docs policy; Cache-Control: no-store
	}{
		{"a token answer", request{method: http.MethodPost, path: "/api/v1/auth/token", body: "{}"}, http.StatusBadRequest, false, true},
		{"a refused token", request{method: http.MethodGet, path: "/api/v1/users/me", token: "x"}, http.StatusUnauthorized, false, true},
		{"an unknown route", request{method: http.MethodGet, path: "/nowhere"}, http.StatusNotFound, false, true},
		{"a probe", request{method: http.MethodGet, path: "/healthz"}, http.StatusOK, false, true},
		{"the docs page", request{method: http.MethodGet, path: "/docs"}, http.StatusOK, true, false},
		{"a docs asset", request{method: http.MethodGet, path: "/docs/swagger-ui.css"}, http.StatusOK, true, false},
		{"the spec", request{method: http.MethodGet, path: "/openapi.yaml"}, http.StatusOK, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := h.do(tc.req)
			wantStatus(t, rec, tc.status)
			got := rec.Header()
			for name, want := range map[string]string{
				"X-Content-Type-Options": "nosniff",
				"X-Frame-Options":        "DENY",
				"Referrer-Policy":        "no-referrer",
			} {
				if got.Get(name) != want {
					t.Errorf("%s = %q, want %q", name, got.Get(name), want)
				}
			}
			csp := got.Get("Content-Security-Policy")
			if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.HasPrefix(csp, "default-src 'none'") {
				t.Errorf("Content-Security-Policy = %q, want default-src 'none' and frame-ancestors 'none'", csp)
			}
			if isDocs := strings.Contains(csp, "script-src 'self'"); isDocs != tc.docs {
				t.Errorf("Content-Security-Policy = %q: docs policy %v, want %v", csp, isDocs, tc.docs)
			}
			if strings.Contains(csp, "unsafe-") {
				t.Errorf("Content-Security-Policy = %q allows unsafe sources", csp)
			}
			if noStore := got.Get("Cache-Control") == "no-store"; noStore != tc.store {
				t.Errorf("Cache-Control = %q, want no-store: %v", got.Get("Cache-Control"), tc.store)
			}
			if got.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("CORS is off by default, yet Access-Control-Allow-Origin = %q", got.Get("Access-Control-Allow-Origin"))
			}
		})
	}
}

// CORS answers the listed origins, exactly, and no other.
func TestCORSAllowsOnlyTheListedOrigins(t *testing.T) {
	t.Parallel()
	const allowed = "https://app.example.com"
	h := newHarness(t, Config{AllowedOrigins: []string{allowed, "http://localhost:3000"}})
	h.auth.AuthenticateFn = func(context.Context, string) (domain.Actor, error) { return domain.Actor{ID: 1}, nil }
	h.users.MeFn = func(context.Context, domain.Actor) (*domain.User, error) { return testUser(t, 1), nil }

	preflight := func(origin string) http.Header {
		t.Helper()
		rec := h.do(request{method: http.MethodOptions, path: "/api/v1/users/me", header: http.Header{
			"Origin":                         {origin},
			"Access-Control-Request-Method":  {http.MethodGet},
			"Access-Control-Request-Headers": {"authorization"},
		}})
		wantStatus(t, rec, http.StatusNoContent)
		return rec.Header()
	}
	got := preflight(allowed)
	if got.Get("Access-Control-Allow-Origin") != allowed {
		t.Errorf("preflight from %s: Access-Control-Allow-Origin = %q", allowed, got.Get("Access-Control-Allow-Origin"))
	}
	if !strings.Contains(got.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: Access-Control-Allow-Headers = %q, want Authorization", got.Get("Access-Control-Allow-Headers"))
	}
	if got.Get("Access-Control-Allow-Credentials") != "" {
		t.Error("preflight allows credentials; the API takes bearer tokens, never cookies")
	}
	for _, other := range []string{
		"https://evil.example.com",
		"http://app.example.com",       // another scheme
		"https://app.example.com:8443", // another port
		"https://app.example.com.evil.test",
		"https://APP.example.com",
		"null",
	} {
		if got := preflight(other).Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin = %q, want none", other, got)
		}
		rec := h.do(request{method: http.MethodGet, path: "/api/v1/users/me", token: "t", header: http.Header{"Origin": {other}}})
		if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("GET from %s: Access-Control-Allow-Origin = %q, want none", other, got)
		}
	}

	rec := h.do(request{method: http.MethodGet, path: "/api/v1/users/me", token: "t", header: http.Header{"Origin": {allowed}}})
	wantStatus(t, rec, http.StatusOK)
	if rec.Header().Get("Access-Control-Allow-Origin") != allowed {
		t.Errorf("GET: Access-Control-Allow-Origin = %q", rec.Header().Get("Access-Control-Allow-Origin"))
	}
	if !strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), "X-Ratelimit-Remaining") &&
		!strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), "X-RateLimit-Remaining") {
		t.Errorf("Access-Control-Expose-Headers = %q, want the rate-limit headers", rec.Header().Get("Access-Control-Expose-Headers"))
	}
	if !strings.Contains(strings.Join(rec.Header().Values("Vary"), ","), "Origin") {
		t.Errorf("Vary = %q, want Origin (answers differ by origin)", rec.Header().Values("Vary"))
	}
	// An error answer is readable by the allowed page too.
	h.auth.AuthenticateFn = func(context.Context, string) (domain.Actor, error) { return domain.Actor{}, domain.ErrUnauthenticated }
	rec = h.do(request{method: http.MethodGet, path: "/api/v1/users/me", token: "t", header: http.Header{"Origin": {allowed}}})
	wantStatus(t, rec, http.StatusUnauthorized)
	if rec.Header().Get("Access-Control-Allow-Origin") != allowed {
		t.Errorf("401: Access-Control-Allow-Origin = %q", rec.Header().Get("Access-Control-Allow-Origin"))
	}
}

// A request naming thousands of unknown keys or parameters, or one huge
// one, gets an answer no larger than itself: the error lists the first
// few, clipped, and counts the rest.
func TestUnknownNamesAreListedWithinBounds(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	var body strings.Builder
	body.WriteString(`{"` + strings.Repeat("k", 10000) + `":1`)
	for i := range 5000 {
		fmt.Fprintf(&body, `,"key%05d":0`, i)
	}
	body.WriteString("}")
	// Not under /auth/, whose bodies stop at 8 KiB.
	rec := h.do(request{method: http.MethodPut, path: "/api/v1/users/7", token: userToken, body: body.String()})
	e := wantError(t, rec, http.StatusUnprocessableEntity, "validation_failed")
	if rec.Body.Len() > 4096 {
		t.Errorf("a %d-byte body got a %d-byte answer", body.Len(), rec.Body.Len())
	}
	fields := fieldErrors(e)
	if got := fields["body"]; !strings.Contains(got, "more unknown fields") {
		t.Errorf("the rest of the unknown keys are not counted: %v", fields)
	}
	if _, ok := fields["key00000"]; !ok {
		t.Errorf("the first unknown keys are not named: %v", fields)
	}

	query := strings.Repeat("q", 5000) + "=1"
	for i := range 2000 {
		query += fmt.Sprintf("&p%04d=1", i)
	}
	rec = h.do(request{method: http.MethodGet, path: "/api/v1/users/list?" + query, token: userToken})
	wantError(t, rec, http.StatusBadRequest, "unknown_parameter")
	if rec.Body.Len() > 4096 || !strings.Contains(rec.Body.String(), "more") {
		t.Errorf("%d unknown parameters got a %d-byte answer: %.300s", 2001, rec.Body.Len(), rec.Body.String())
	}
}
