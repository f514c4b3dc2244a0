package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

func TestAuthenticationIsRequired(t *testing.T) {
	t.Parallel()
	for name, header := range map[string]string{
		"missing":       "",
		"other scheme":  "Basic dXNlcjpwYXNz",
		"empty token":   "Bearer ",
		"no separator":  "Bearer" + userToken,
		"unknown token": "Bearer forged",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Config{})
			hdr := http.Header{}
			if header != "" {
				hdr.Set("Authorization", header)
			}
			rec := h.do(request{method: http.MethodGet, path: "/api/v1/users/me", header: hdr})
			wantError(t, rec, http.StatusUnauthorized, "unauthenticated")
			if got := rec.Header().Get("WWW-Authenticate"); got != "Bearer" {
				t.Errorf("WWW-Authenticate = %q", got)
			}
		})
	}
}

func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.users.MeFn = func(context.Context, domain.Actor) (*domain.User, error) { return testUser(t, 7), nil }
	rec := h.do(request{method: http.MethodGet, path: "/api/v1/users/me",
		header: http.Header{"Authorization": {"bearer " + userToken}}})
	wantStatus(t, rec, http.StatusOK)
}

func TestAuthenticationFailureKindsPassThrough(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.auth.AuthenticateFn = func(context.Context, string) (domain.Actor, error) { return domain.Actor{}, domain.ErrUnavailable }
	wantError(t, h.get("/api/v1/users/me", "anything"), http.StatusServiceUnavailable, "unavailable")
}

// Every operation the spec secures asks AuthService before its handler, and
// no public one does: the wiring comes from the spec, so this covers drift.
func TestSpecDecidesWhichOperationsNeedAToken(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	public := map[string]bool{}
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			h := newHarness(t, Config{})
			var calls atomic.Int32
			h.auth.AuthenticateFn = func(context.Context, string) (domain.Actor, error) {
				calls.Add(1)
				return domain.Actor{}, domain.ErrUnauthenticated
			}
			url := strings.ReplaceAll(path, "{id}", "1")
			rec := h.do(request{method: method, path: url, token: "some-token"})
			secured := op.Security == nil
			if secured {
				if rec.Code != http.StatusUnauthorized || calls.Load() != 1 {
					t.Errorf("%s %s: status %d after %d Authenticate calls, want 401 after 1", method, path, rec.Code, calls.Load())
				}
			} else {
				public[op.OperationID] = true
				if calls.Load() != 0 || rec.Code == http.StatusUnauthorized {
					t.Errorf("%s %s is public but answered %d after %d Authenticate calls", method, path, rec.Code, calls.Load())
				}
			}
		}
	}
	for _, op := range []string{"authToken", "authRefresh", "authRevoke", "authSignUp", "healthz", "readyz", "metrics",
		"jwks", "authorizationServerMetadata"} {
		if !public[op] {
			t.Errorf("%s should be public", op)
		}
	}
	if len(public) != 9 {
		t.Errorf("public operations = %v", public)
	}
}

// Every /api/v1 operation refuses undocumented query parameters; the
// operational endpoints do not care.
func TestEveryAPIOperationRefusesUnknownQueryParameters(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	h := newHarness(t, Config{})
	h.users.MeFn = func(context.Context, domain.Actor) (*domain.User, error) { return testUser(t, 7), nil }
	for path, item := range spec.Paths.Map() {
		if !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		for method := range item.Operations() {
			url := strings.ReplaceAll(path, "{id}", "1") + "?bogus=1"
			rec := h.do(request{method: method, path: url, token: userToken})
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "bogus") {
				t.Errorf("%s %s: %d %s", method, url, rec.Code, rec.Body.String())
			}
		}
	}
	wantStatus(t, h.get("/healthz?probe=1", ""), http.StatusOK)
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	generated := regexp.MustCompile(`^[A-Z2-7]{26}$`)
	for name, tt := range map[string]struct {
		sent string
		keep bool
	}{
		"absent":    {"", false},
		"valid":     {"abc-123_x.y:z", true},
		"too long":  {strings.Repeat("a", 129), false},
		"injection": {"abc\" level=ERROR", false},
	} {
		hdr := http.Header{}
		if tt.sent != "" {
			hdr.Set("X-Request-ID", tt.sent)
		}
		rec := h.do(request{method: http.MethodGet, path: "/healthz", header: hdr})
		got := rec.Header().Get("X-Request-ID")
		if tt.keep && got != tt.sent {
			t.Errorf("%s: X-Request-ID = %q, want %q", name, got, tt.sent)
		}
		if !tt.keep && !generated.MatchString(got) {
			t.Errorf("%s: X-Request-ID = %q, want a fresh id", name, got)
		}
	}
	a := h.get("/healthz", "").Header().Get("X-Request-ID")
	b := h.get("/healthz", "").Header().Get("X-Request-ID")
	if a == b {
		t.Errorf("two requests got the same id %q", a)
	}
}

func TestRequestIDReachesHandlersAndLogs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	var seen string
	h.users.MeFn = func(ctx context.Context, _ domain.Actor) (*domain.User, error) {
		seen = RequestIDFrom(ctx)
		return testUser(t, 7), nil
	}
	h.do(request{method: http.MethodGet, path: "/api/v1/users/me", token: userToken,
		header: http.Header{"X-Request-Id": {"trace-42"}}})
	if seen != "trace-42" {
		t.Errorf("handler saw request id %q", seen)
	}
	if !strings.Contains(h.logs.String(), `"request_id":"trace-42"`) {
		t.Errorf("access log lacks the request id:\n%s", h.logs.String())
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{BodyLimit: 64})
	h.auth.SignUpFn = func(context.Context, ports.CreateUserRequest) (*domain.User, error) { return testUser(t, 1), nil }
	big := `{"first_name":"` + strings.Repeat("a", 100) + `"}`

	// Declared length over the limit: refused before reading.
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/auth/sign-up", body: big})
	wantError(t, rec, http.StatusRequestEntityTooLarge, "too_large")

	// Unknown length (chunked): cut off while reading.
	for _, ct := range []string{"application/json", "application/x-www-form-urlencoded"} {
		path := "/api/v1/auth/sign-up"
		if ct != "application/json" {
			path = "/api/v1/auth/token"
		}
		req := httptest.NewRequest(http.MethodPost, path, io.MultiReader(strings.NewReader(big)))
		req.ContentLength = -1
		req.Header.Set("Content-Type", ct)
		rec = httptest.NewRecorder()
		h.e.ServeHTTP(rec, req)
		if path == tokenRoute {
			wantOAuthError(t, rec, http.StatusRequestEntityTooLarge, "invalid_request", "too_large")
			continue
		}
		wantError(t, rec, http.StatusRequestEntityTooLarge, "too_large")
	}
}

func TestDefaultBodyLimitIsOneMiB(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	body := `{"refresh_token":"` + strings.Repeat("a", 1<<20) + `"}`
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/auth/refresh", body: body})
	wantError(t, rec, http.StatusRequestEntityTooLarge, "too_large")
}

func TestPanicsBecomeAGeneric500(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.users.MeFn = func(context.Context, domain.Actor) (*domain.User, error) {
		panic("boom: secret internal state")
	}
	rec := h.do(request{method: http.MethodGet, path: "/api/v1/users/me", token: userToken,
		header: http.Header{"X-Request-Id": {"req-panic"}}})
	body := wantError(t, rec, http.StatusInternalServerError, "internal")
	if body.Detail != "internal error" || strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("body = %s", rec.Body.String())
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "boom: secret internal state") || !strings.Contains(logs, `"request_id":"req-panic"`) ||
		!strings.Contains(logs, "goroutine") {
		t.Errorf("panic not logged with stack and request id:\n%s", logs)
	}
	// The server survives.
	wantStatus(t, h.get("/healthz", ""), http.StatusOK)
}

type accessLine struct {
	Level     string `json:"level"`
	Msg       string `json:"msg"`
	Method    string `json:"method"`
	Route     string `json:"route"`
	Status    int    `json:"status"`
	Duration  int64  `json:"duration"`
	RequestID string `json:"request_id"`
	RemoteIP  string `json:"remote_ip"`
	UserID    *int64 `json:"user_id"`
}

func accessLines(t *testing.T, logs string) []accessLine {
	t.Helper()
	var out []accessLine
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var l accessLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if l.Msg == "http request" {
			out = append(out, l)
		}
	}
	return out
}

func TestAccessLogRecordsTheRouteAndNoSecrets(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.users.GetFn = func(context.Context, domain.Actor, int64) (*domain.User, error) { return testUser(t, 12), nil }
	h.auth.LoginFn = func(context.Context, string, string, netip.Addr) (ports.TokenPair, error) {
		return ports.TokenPair{AccessToken: "issued-access-secret", RefreshToken: "issued-refresh-secret"}, nil
	}
	h.get("/api/v1/users/12", userToken)
	h.do(request{method: http.MethodPost, path: "/api/v1/auth/token",
		body: "username=zoe%40example.com&password=hunter2-secret", contentType: "application/x-www-form-urlencoded"})
	h.get("/api/v1/users/search?emial=private-filter-value", userToken)

	logs := h.logs.String()
	for _, secret := range []string{userToken, "hunter2-secret", "issued-access-secret", "issued-refresh-secret",
		"zoe@example.com", "private-filter-value", "/api/v1/users/12"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
	lines := accessLines(t, logs)
	if len(lines) != 3 {
		t.Fatalf("%d access lines:\n%s", len(lines), logs)
	}
	l := lines[0]
	if l.Level != "INFO" || l.Method != "GET" || l.Route != "/api/v1/users/:id" || l.Status != 200 ||
		l.RequestID == "" || l.RemoteIP != "192.0.2.1" || l.UserID == nil || *l.UserID != userActor.ID {
		t.Errorf("access line = %+v", l)
	}
	if lines[2].Status != http.StatusBadRequest || lines[2].Route != "/api/v1/users/search" {
		t.Errorf("access line for the refused search = %+v", lines[2])
	}
}

func TestClientAddressTrustsOnlyConfiguredProxies(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		trusted []netip.Prefix
		want    string
	}{
		"no proxies":      {nil, "192.0.2.1"},
		"trusted proxy":   {[]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, "203.0.113.9"},
		"untrusted proxy": {[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "192.0.2.1"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Config{TrustedProxies: tt.trusted})
			h.e.GET("/api/v1/whoami", func(c echo.Context) error { return c.String(http.StatusOK, c.RealIP()) })
			rec := h.do(request{method: http.MethodGet, path: "/api/v1/whoami",
				header: http.Header{"X-Forwarded-For": {"203.0.113.9"}}})
			if rec.Body.String() != tt.want {
				t.Errorf("client address = %q, want %q", rec.Body.String(), tt.want)
			}
		})
	}
}

// Routes the caller mounts later share the middleware and error shape.
func TestExtraRoutesShareMiddleware(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.e.GET("/api/v1/users/ws", func(echo.Context) error { return domain.ErrForbidden })
	rec := h.get("/api/v1/users/ws?access_token=x", "")
	wantError(t, rec, http.StatusForbidden, "forbidden")
	if rec.Header().Get("X-Request-ID") == "" {
		t.Error("no request id on a mounted route")
	}
	if !strings.Contains(h.logs.String(), `"route":"/api/v1/users/ws"`) {
		t.Errorf("mounted route not logged:\n%s", h.logs.String())
	}
}
