package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/userservice/userservice/domain"
)

func TestEveryErrorKindHasItsStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{domain.Errorf(domain.KindMalformed, "bad_cursor", "cursor is not valid"), http.StatusBadRequest, "bad_cursor"},
		{&domain.Error{Kind: domain.KindInvalid, Code: "validation_failed", Message: "validation failed",
			Fields: []domain.FieldError{{Field: "email", Message: "is not a valid email address"}}},
			http.StatusUnprocessableEntity, "validation_failed"},
		{domain.ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated"},
		{domain.ErrForbidden, http.StatusForbidden, "forbidden"},
		{domain.ErrPasswordChange, http.StatusForbidden, "password_change_required"},
		{domain.ErrNotFound, http.StatusNotFound, "not_found"},
		{domain.ErrEmailTaken, http.StatusConflict, "email_taken"},
		{domain.ErrStale, http.StatusPreconditionFailed, "stale"},
		{domain.Errorf(domain.KindTooLarge, "", "file too large"), http.StatusRequestEntityTooLarge, "too_large"},
		{domain.Errorf(domain.KindRateLimited, "", "slow down"), http.StatusTooManyRequests, "rate_limited"},
		{domain.ErrUnavailable.Wrap(errors.New("dial tcp: connection refused")), http.StatusServiceUnavailable, "unavailable"},
		// application wraps with %w: the kind must still be found.
		{fmt.Errorf("get user: %w", domain.ErrNotFound), http.StatusNotFound, "not_found"},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), http.StatusServiceUnavailable, "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Config{})
			h.users.GetFn = func(context.Context, domain.Actor, int64) (*domain.User, error) { return nil, tt.err }
			rec := h.get("/api/v1/users/1", userToken)
			body := wantError(t, rec, tt.status, tt.code)
			if de := domain.AsError(tt.err); de != nil && de.Kind != domain.KindUnavailable && body.Detail != de.Message {
				t.Errorf("detail = %q, want %q", body.Detail, de.Message)
			}
			if strings.Contains(rec.Body.String(), "connection refused") {
				t.Errorf("cause leaked: %s", rec.Body.String())
			}
			wantAuth := tt.status == http.StatusUnauthorized
			if got := rec.Header().Get("WWW-Authenticate"); (got == "Bearer") != wantAuth {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			if tt.status == http.StatusUnprocessableEntity {
				if f := fieldErrors(body); f["email"] != "is not a valid email address" {
					t.Errorf("errors = %v", f)
				}
			} else if body.Errors != nil {
				t.Errorf("errors present: %s", rec.Body.String())
			}
		})
	}
}

func TestInternalErrorsAreLoggedNeverSent(t *testing.T) {
	t.Parallel()
	const secret = "pq: password authentication failed for user admin at 10.9.8.7"
	for name, err := range map[string]error{
		"plain":    errors.New(secret),
		"internal": &domain.Error{Kind: domain.KindInternal, Code: "corrupt_row", Message: "stored user has an unknown role", Err: errors.New(secret)},
		"wrapped":  fmt.Errorf("list: %w", errors.New(secret)),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Config{})
			h.users.MeFn = func(context.Context, domain.Actor) (*domain.User, error) { return nil, err }
			rec := h.do(request{method: http.MethodGet, path: "/api/v1/users/me", token: userToken,
				header: http.Header{"X-Request-Id": {"req-internal-1"}}})
			body := wantError(t, rec, http.StatusInternalServerError, "internal")
			if body.Detail != "internal error" {
				t.Errorf("detail = %q", body.Detail)
			}
			if strings.Contains(rec.Body.String(), "password") || strings.Contains(rec.Body.String(), "unknown role") {
				t.Errorf("internal text leaked: %s", rec.Body.String())
			}
			logs := h.logs.String()
			if !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, secret) ||
				!strings.Contains(logs, `"request_id":"req-internal-1"`) {
				t.Errorf("cause not logged at error level with the request id:\n%s", logs)
			}
		})
	}
}

func TestEchoErrorsHaveTheSameShape(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	wantError(t, h.get("/api/v1/nope", userToken), http.StatusNotFound, "not_found")
	wantError(t, h.get("/", ""), http.StatusNotFound, "not_found")
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/users/me", token: userToken, body: `{}`})
	wantError(t, rec, http.StatusMethodNotAllowed, "method_not_allowed")
	if rec.Header().Get("Allow") == "" {
		t.Error("405 without Allow")
	}
	rec = h.do(request{method: http.MethodPut, path: "/api/v1/users/1", token: userToken, body: `{}`,
		header: http.Header{"If-Match": {`"a"`, `"b"`}}})
	wantError(t, rec, http.StatusBadRequest, "malformed")
}

func TestHeadErrorsHaveNoBody(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	rec := h.do(request{method: http.MethodHead, path: "/nope"})
	wantStatus(t, rec, http.StatusNotFound)
	if rec.Body.Len() != 0 {
		t.Errorf("HEAD answered with a body: %q", rec.Body.String())
	}
}

func TestClientCancellationIsNotAWarning(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.users.MeFn = func(ctx context.Context, _ domain.Actor) (*domain.User, error) { return nil, ctx.Err() }
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/v1/users/me", nil)
	req.Header.Set("Authorization", "Bearer "+userToken)
	rec := httptest.NewRecorder()
	h.e.ServeHTTP(rec, req)
	wantError(t, rec, http.StatusServiceUnavailable, "unavailable")
	if logs := h.logs.String(); strings.Contains(logs, `"level":"WARN"`) || strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("a client going away was logged as a problem:\n%s", logs)
	}
}

// TestFixedPathsRefuseTheirSiblingsMethods: a method that /users/list or
// /users/create-admin lacks but /users/{id} has is 405 with Allow, not a
// 400 for an id named "list"; /users/{id} itself is untouched.
func TestFixedPathsRefuseTheirSiblingsMethods(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/api/v1/users/list", "GET"},
		{http.MethodPut, "/api/v1/users/search", "GET"},
		{http.MethodGet, "/api/v1/users/create-admin", "POST"},
		{http.MethodGet, "/api/v1/users/import", "POST"},
		{http.MethodDelete, "/api/v1/users/me", "GET"},
	} {
		rec := h.do(request{method: c.method, path: c.path, token: userToken})
		wantError(t, rec, http.StatusMethodNotAllowed, "method_not_allowed")
		if got := rec.Header().Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	rec := h.do(request{method: http.MethodDelete, path: "/api/v1/users/list2", token: userToken})
	wantError(t, rec, http.StatusBadRequest, "malformed")
}
