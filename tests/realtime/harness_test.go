package realtime_test

import (
	"errors"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/userservice/userservice/adapters/jwtauth"
	"github.com/userservice/userservice/bootstrap"
	"github.com/userservice/userservice/tests/harness"
	"github.com/userservice/userservice/tests/testdb"
)

// TestMain terminates the PostgreSQL container testdb may start.
func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }

// accessTTL is the services' access-token lifetime, which mint signs with.
const accessTTL = 15 * time.Minute

// options are what every service of the suite runs with.
func options() harness.Options {
	return harness.Options{Configure: func(c *bootstrap.Config) { c.AccessTTL = accessTTL }}
}

// onEachBackend runs test in parallel on SQLite and PostgreSQL, each
// against a service of its own.
func onEachBackend(t *testing.T, test func(t *testing.T, s *harness.Service)) {
	t.Helper()
	harness.OnEachBackend(t, options(), test)
}

// startWithMessageBudget starts a service whose websocket-messages rule
// allows budget messages a second (every other budget out of reach).
func startWithMessageBudget(t *testing.T, b harness.Backend, budget int) *harness.Service {
	t.Helper()
	opts := options()
	opts.PolicyDir = harness.PoliciesWithBudget(t, "websocket-messages", budget)
	return harness.Start(t, b, opts)
}

// mint signs an access token for user id with the service's secret, as if
// issued at issued, and registers it as a secret for the leak scan.
func mint(t *testing.T, s *harness.Service, id, version int64, issued time.Time) string {
	t.Helper()
	j, err := jwtauth.New(jwtauth.Config{Secret: s.JWTSecret, TTL: accessTTL})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := j.IssueAccess(id, version, issued)
	if err != nil {
		t.Fatal(err)
	}
	s.Leaks.SecretAccessToken(tok)
	return tok
}

// must makes a request that must answer want.
func must(t *testing.T, s *harness.Service, want int, method, path, token string, body any) harness.Response {
	t.Helper()
	r := s.Do(t, method, path, token, body)
	if r.Status != want {
		t.Fatalf("%s: want %d", r, want)
	}
	return r
}

// update changes user id's profile with fields, by actor.
func update(t *testing.T, s *harness.Service, by *harness.Account, id int64, fields map[string]any) {
	t.Helper()
	must(t, s, http.StatusOK, http.MethodPut, harness.UserPath(id), by.Access, fields)
}

// dial opens a connection that must be accepted (authentication may still
// fail afterwards, with a close).
func dial(t *testing.T, s *harness.Service, o harness.WSOptions) *harness.WS {
	t.Helper()
	c, resp, err := s.DialWS(t, o)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dialing the WebSocket: %v (status %d)", err, status)
	}
	return c
}

// subscribe sends msg and returns its acknowledgement, which must be the
// very next message (stricter than WS.Subscribe, which lets events of
// earlier subscriptions come first).
func subscribe(c *harness.WS, msg map[string]any) harness.Message {
	c.Send(msg)
	return c.Expect("subscribed")
}

// dialStalled opens a bare connection authenticated with token whose socket
// receives into rcvbuf bytes: a client that reads little also buffers little.
func dialStalled(t *testing.T, s *harness.Service, token string, rcvbuf int) *websocket.Conn {
	t.Helper()
	// Set before connecting, so the window the handshake agrees on fits
	// the buffer (shrinking it afterwards can stall the flow).
	nd := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
		})
		return errors.Join(err, serr)
	}}
	d := websocket.Dialer{HandshakeTimeout: harness.WaitFor, NetDialContext: nd.DialContext}
	conn, resp, err := d.DialContext(t.Context(), s.WSURL(nil), http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dialing the WebSocket: %v (status %d)", err, status)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
