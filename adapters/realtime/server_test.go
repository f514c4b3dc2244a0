package realtime

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// connectFunc is a ports.RealtimeService of one function.
type connectFunc func(ctx context.Context, token string, sink ports.EventSink) (ports.RealtimeConn, error)

func (f connectFunc) Connect(ctx context.Context, token string, sink ports.EventSink) (ports.RealtimeConn, error) {
	return f(ctx, token, sink)
}

// serve mounts a Server over svc on a test HTTP server and returns its
// ws:// URL.
func serve(t *testing.T, svc ports.RealtimeService) string {
	t.Helper()
	return serveWith(t, Config{Service: svc})
}

// serveWith is serve with more of the Config (a fresh Registry is given).
func serveWith(t *testing.T, cfg Config) string {
	t.Helper()
	cfg.Registry = prometheus.NewRegistry()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.GET(Path, s.Handle)
	hs := httptest.NewServer(e)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + Path
}

func dial(t *testing.T, url, token string) *websocket.Conn {
	t.Helper()
	h := map[string][]string{"Authorization": {"Bearer " + token}}
	c, _, err := websocket.DefaultDialer.DialContext(t.Context(), url, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func closeCode(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			t.Fatalf("the connection ended without a close frame: %v", err)
		}
	}
}

// A bug met while serving one connection closes it with 1011; the
// process and the other connections go on.
func TestPanicClosesOnlyThatConnection(t *testing.T) {
	t.Parallel()
	url := serve(t, connectFunc(func(_ context.Context, token string, _ ports.EventSink) (ports.RealtimeConn, error) {
		if token == "boom" {
			panic("a bug")
		}
		return nil, domain.ErrUnauthenticated
	}))
	if got := closeCode(t, dial(t, url, "boom")); got != CloseInternalError {
		t.Fatalf("after a panic: close %d, want %d", got, CloseInternalError)
	}
	if got := closeCode(t, dial(t, url, "bad")); got != CloseUnauthenticated {
		t.Fatalf("the next connection: close %d, want %d", got, CloseUnauthenticated)
	}
}

// The service's failure to authenticate (not a refusal) still ends the
// connection with 4401, telling the client what it may.
func TestConnectFailureCloses4401(t *testing.T) {
	t.Parallel()
	url := serve(t, connectFunc(func(context.Context, string, ports.EventSink) (ports.RealtimeConn, error) {
		return nil, domain.ErrUnavailable
	}))
	c := dial(t, url, "any")
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != CloseUnauthenticated || ce.Text != domain.ErrUnavailable.Message {
		t.Fatalf("got %v, want 4401 saying the database is unreachable", err)
	}
}

// The server pings every PingPeriod, and a client that answers stays
// connected past PongWait.
func TestPingsKeepAnAnsweringClient(t *testing.T) {
	t.Parallel()
	url := serveWith(t, Config{
		Service: connectFunc(func(context.Context, string, ports.EventSink) (ports.RealtimeConn, error) {
			return nil, domain.ErrUnauthenticated
		}),
		AuthTimeout: time.Minute, PingPeriod: 20 * time.Millisecond, PongWait: 40 * time.Millisecond,
	})
	c, _, err := websocket.DefaultDialer.DialContext(t.Context(), url, nil) // no token: waits for an auth message
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	pings := make(chan struct{}, 100)
	c.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	ended := make(chan error, 1)
	go func() {
		_, _, err := c.ReadMessage()
		ended <- err
	}()
	select {
	case err := <-ended:
		t.Fatalf("the connection ended: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if n := len(pings); n < 5 {
		t.Fatalf("%d pings in 300ms, want one every 20ms", n)
	}
}
