package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// A request waiting on something that never answers (a crashed database's
// connection) is cut off at RequestTimeout with a 503, not left hanging.
func TestRequestsStuckPastTheirDeadlineGet503(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{RequestTimeout: 50 * time.Millisecond})
	h.users.ListFn = func(ctx context.Context, _ domain.Actor, _ ports.PageRequest) (ports.Page, error) {
		// A query on a connection that never hears back, bounded here only so
		// that a missing deadline fails the test instead of hanging it.
		select {
		case <-ctx.Done():
			return ports.Page{}, fmt.Errorf("gormstore: %w", ctx.Err())
		case <-time.After(5 * time.Second):
			return ports.Page{}, nil
		}
	}
	started := time.Now()
	rec := h.get("/api/v1/users/list", userToken)
	wantError(t, rec, http.StatusServiceUnavailable, "unavailable")
	if elapsed := time.Since(started); elapsed > 5*time.Second {
		t.Errorf("answered after %s, want about the 50ms deadline", elapsed)
	}
}

func TestDefaultRequestTimeoutIsTenSeconds(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	var left time.Duration
	h.users.ListFn = func(ctx context.Context, _ domain.Actor, _ ports.PageRequest) (ports.Page, error) {
		if d, ok := ctx.Deadline(); ok {
			left = time.Until(d)
		}
		return ports.Page{}, nil
	}
	wantStatus(t, h.get("/api/v1/users/list", userToken), http.StatusOK)
	if left <= 9*time.Second || left > 10*time.Second {
		t.Errorf("a request had %s left, want just under the 10s default", left)
	}
}

// An import runs under its own, longer deadline.
func TestImportsHaveTheImportTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{RequestTimeout: time.Second, ImportTimeout: 3 * time.Minute})
	var left time.Duration
	h.imp.ImportFn = func(ctx context.Context, _ domain.Actor, file io.Reader, _ ports.ImportOptions) (ports.ImportReport, error) {
		if d, ok := ctx.Deadline(); ok {
			left = time.Until(d)
		}
		_, err := io.Copy(io.Discard, file)
		return ports.ImportReport{}, err
	}
	rec := h.do(request{method: http.MethodPost, path: "/api/v1/users/import", token: adminToken,
		contentType: "text/csv", body: "first_name,last_name,email,gender,ip_address\n"})
	wantStatus(t, rec, http.StatusOK)
	if left <= 2*time.Minute || left > 3*time.Minute {
		t.Errorf("an import had %s left, want just under its 3m ImportTimeout", left)
	}
}

// A WebSocket's request lasts as long as the connection: no deadline.
func TestWebSocketsHaveNoRequestDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{RequestTimeout: time.Second})
	h.e.GET("/api/v1/users/ws", func(c echo.Context) error {
		if d, ok := c.Request().Context().Deadline(); ok {
			return fmt.Errorf("a WebSocket got a deadline %s away", time.Until(d))
		}
		return c.NoContent(http.StatusNoContent)
	})
	rec := h.do(request{method: http.MethodGet, path: "/api/v1/users/ws",
		header: http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}})
	wantStatus(t, rec, http.StatusNoContent)
}
