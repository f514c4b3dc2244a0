package realtime_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/userservice/userservice/bootstrap"
	"github.com/userservice/userservice/tests/testdb"
)

// TestMain terminates the PostgreSQL container testdb may start.
func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }

// waitFor bounds every wait of the suite for something the service does.
const waitFor = 10 * time.Second

// backend is one database the service runs on.
type backend struct {
	name string
	url  func(t *testing.T) string
}

var sqlite = backend{"sqlite", func(t *testing.T) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "userservice.db")
}}

var postgres = backend{"postgres", func(t *testing.T) string { return testdb.PostgresURL(t) }}

// onEachBackend runs test in parallel on SQLite and PostgreSQL.
func onEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range []backend{sqlite, postgres} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b)
		})
	}
}

// setup is what instances of one service share: the database, the policy
// directory and the JWT secret.
type setup struct {
	dbURL     string
	policyDir string
	secret    []byte
	accessTTL time.Duration
	// messageBudget, when set, is the websocket-messages rule's tokens per second.
	messageBudget int
}

func newSetup(t *testing.T, b backend) *setup {
	t.Helper()
	return &setup{dbURL: b.url(t), policyDir: t.TempDir(), secret: []byte("jwt-" + rand.Text() + rand.Text()), accessTTL: 15 * time.Minute}
}

var budgets = regexp.MustCompile(`(?m)^(\s*tokens:\s*)\d+`)

// writePolicies copies the shipped policies, with every rate-limit budget
// made generous (these tests open many sockets from one address) but for
// the per-message one when the setup names it.
func (s *setup) writePolicies(t *testing.T) {
	t.Helper()
	for _, name := range []string{"model.conf", "policy.csv", "ratelimits.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../policies", name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "ratelimits.yaml" {
			b = budgets.ReplaceAll(b, []byte("${1}30000"))
			if s.messageBudget > 0 {
				b = regexp.MustCompile(`(name: websocket-messages\s+tokens: )\d+`).ReplaceAll(b, []byte("${1}"+strconv.Itoa(s.messageBudget)))
			}
		}
		if err := os.WriteFile(filepath.Join(s.policyDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// instance is one running service.
type instance struct {
	setup *setup
	base  string
	logs  *syncBuffer
	stop  func() // ends Run and waits for it
}

// start boots an instance of s as bootstrap.New and Run do in production.
// It stops when the test ends (or earlier through stop).
func (s *setup) start(t *testing.T) *instance {
	t.Helper()
	if _, err := os.Stat(filepath.Join(s.policyDir, "policy.csv")); err != nil {
		s.writePolicies(t)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	app, err := bootstrap.New(t.Context(), bootstrap.Config{
		DatabaseURL: s.dbURL, HTTPAddr: "127.0.0.1:0", JWTSecret: s.secret,
		AccessTTL: s.accessTTL, RefreshTTL: 720 * time.Hour, PolicyDir: s.policyDir,
		LogLevel: slog.LevelDebug, LogFormat: "json",
	}, log)
	if err != nil {
		t.Fatalf("bootstrap.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	var once sync.Once
	in := &instance{setup: s, base: "http://" + app.Addr(), logs: logs}
	in.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			app.Close()
			if t.Failed() {
				t.Logf("the service's log ended with:\n%s", lastLines(logs.String(), 30))
			}
		})
	}
	t.Cleanup(in.stop)
	// Run starts the fan-out before serving; wait until it serves.
	poll(t, "the service to serve", func() bool {
		r, err := http.Get(in.base + "/healthz")
		if err == nil {
			r.Body.Close()
		}
		return err == nil && r.StatusCode == http.StatusOK
	})
	return in
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// poll waits for cond, failing the test after waitFor.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", waitFor, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// call makes a request and decodes a JSON answer into out (when not nil).
func (in *instance) call(t *testing.T, method, path, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ctype = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(t.Context(), method, in.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// must makes a request that must answer want.
func (in *instance) must(t *testing.T, want int, method, path, token string, body any, out any) {
	t.Helper()
	var raw json.RawMessage
	if got := in.call(t, method, path, token, body, &raw); got != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

// account is a user the test signs in as.
type account struct {
	id       int64
	email    string
	password string
	role     string
	token    string
}

func email(prefix string) string {
	return prefix + "-" + strings.ToLower(rand.Text()) + "@example.com"
}

// seedSuperadmin creates a superadmin with the operator's command, and logs in.
func (in *instance) seedSuperadmin(t *testing.T) *account {
	t.Helper()
	a := &account{email: email("root"), password: "Pw-" + rand.Text(), role: "superadmin"}
	vars := map[string]string{
		"DATABASE_URL": in.setup.dbURL, "POLICY_DIR": in.setup.policyDir,
		"USERSERVICE_SUPERADMIN_PASSWORD": a.password, "LOG_FORMAT": "json",
	}
	var out bytes.Buffer
	env := bootstrap.Env{Getenv: func(k string) string { return vars[k] }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
	if code := bootstrap.Main(t.Context(), []string{"superadmin", "--email", a.email}, env); code != bootstrap.ExitOK {
		t.Fatalf("userservice superadmin: exit status %d: %s", code, out.String())
	}
	in.login(t, a)
	var me struct{ ID int64 }
	in.must(t, http.StatusOK, http.MethodGet, "/api/v1/users/me", a.token, nil, &me)
	a.id = me.ID
	return a
}

func (in *instance) login(t *testing.T, a *account) {
	t.Helper()
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	in.must(t, http.StatusOK, http.MethodPost, "/api/v1/auth/token", "",
		url.Values{"grant_type": {"password"}, "username": {a.email}, "password": {a.password}}, &pair)
	a.token = pair.AccessToken
}

// create makes a user with role (by a superadmin) without logging in.
func (in *instance) create(t *testing.T, by *account, role, mail string) *account {
	t.Helper()
	a := &account{email: mail, password: "Pw-" + rand.Text(), role: role}
	var u struct{ ID int64 }
	in.must(t, http.StatusCreated, http.MethodPost, "/api/v1/users/create-admin", by.token, map[string]any{
		"first_name": "Zoë", "last_name": "O'Test", "email": mail, "gender": "female",
		"ip_address": "10.1.2.3", "password": a.password, "role": role,
	}, &u)
	a.id = u.ID
	return a
}

func (in *instance) createAndLogin(t *testing.T, by *account, role string) *account {
	t.Helper()
	a := in.create(t, by, role, email(role))
	in.login(t, a)
	return a
}

// update changes user id's profile with fields, by actor.
func (in *instance) update(t *testing.T, by *account, id int64, fields map[string]any) {
	t.Helper()
	in.must(t, http.StatusOK, http.MethodPut, "/api/v1/users/"+strconv.FormatInt(id, 10), by.token, fields, nil)
}

// metric reads one sample of the service's /metrics.
func (in *instance) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(in.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return v
		}
	}
	return 0
}

// wsURL is the endpoint's ws:// address, with query when not empty.
func (in *instance) wsURL(query url.Values) string {
	u := "ws" + strings.TrimPrefix(in.base, "http") + "/api/v1/users/ws"
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

// message is one server message.
type message map[string]any

func (m message) typ() string { s, _ := m["type"].(string); return s }
func (m message) str(k string) string {
	s, _ := m[k].(string)
	return s
}
func (m message) num(k string) int64 {
	f, _ := m[k].(float64)
	return int64(f)
}
func (m message) user() message {
	u, _ := m["user"].(map[string]any)
	return u
}

// client is a WebSocket client that reads every message into a queue.
type client struct {
	t      *testing.T
	conn   *websocket.Conn
	msgs   chan message
	closed chan struct{}
	// closeErr is how the connection ended; read after closed.
	closeErr error
}

type dialOpts struct {
	bearer string     // Authorization: Bearer
	query  url.Values // e.g. access_token
	// rcvbuf, when set, is the socket's receive buffer (a client that
	// reads little should also buffer little).
	rcvbuf int
}

func (in *instance) dialRaw(t *testing.T, o dialOpts) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitFor}
	if o.rcvbuf > 0 {
		// Set before connecting, so the window the handshake agrees on
		// fits the buffer (shrinking it afterwards can stall the flow).
		nd := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.rcvbuf)
			})
			return errors.Join(err, serr)
		}}
		d.NetDialContext = nd.DialContext
	}
	h := http.Header{}
	if o.bearer != "" {
		h.Set("Authorization", "Bearer "+o.bearer)
	}
	conn, resp, err := d.DialContext(t.Context(), in.wsURL(o.query), h)
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

// dial connects and starts reading.
func (in *instance) dial(t *testing.T, o dialOpts) *client {
	t.Helper()
	c := &client{t: t, conn: in.dialRaw(t, o), msgs: make(chan message, 4096), closed: make(chan struct{})}
	go func() {
		defer close(c.closed)
		for {
			_, data, err := c.conn.ReadMessage()
			if err != nil {
				c.closeErr = err
				return
			}
			var m message
			if err := json.Unmarshal(data, &m); err != nil {
				c.closeErr = fmt.Errorf("not JSON: %q", data)
				return
			}
			c.msgs <- m
		}
	}()
	return c
}

// connect dials with a bearer token.
func (in *instance) connect(t *testing.T, a *account) *client {
	t.Helper()
	return in.dial(t, dialOpts{bearer: a.token})
}

func (c *client) send(v any) {
	c.t.Helper()
	var data []byte
	switch m := v.(type) {
	case string:
		data = []byte(m)
	default:
		var err error
		if data, err = json.Marshal(v); err != nil {
			c.t.Fatal(err)
		}
	}
	if err := c.conn.WriteMessage(websocket.TextMessage, data); err != nil {
		c.t.Fatalf("sending %s: %v", data, err)
	}
}

// next returns the next message, failing after waitFor.
func (c *client) next() message {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-c.closed:
		select {
		case m := <-c.msgs:
			return m
		default:
		}
		c.t.Fatalf("the connection ended (%v) while a message was expected", c.closeErr)
	case <-time.After(waitFor):
		c.t.Fatalf("no message within %v", waitFor)
	}
	return nil
}

// expect returns the next message, which must have type typ.
func (c *client) expect(typ string) message {
	c.t.Helper()
	m := c.next()
	if m.typ() != typ {
		c.t.Fatalf("got %v, want a %q message", m, typ)
	}
	return m
}

// subscribe sends msg and returns the subscription's acknowledgement.
func (c *client) subscribe(msg map[string]any) message {
	c.t.Helper()
	c.send(msg)
	return c.expect("subscribed")
}

// event returns the next message, which must be an event of type typ for
// subscription sub.
func (c *client) event(typ, sub string) message {
	c.t.Helper()
	m := c.next()
	if m.typ() != typ || m.str("subscription_id") != sub {
		c.t.Fatalf("got %v, want a %s event of %s", m, typ, sub)
	}
	return m
}

// closeCode waits for the connection to end and returns the close code the
// server sent (0 when it sent none), after any messages still queued.
func (c *client) closeCode() int {
	c.t.Helper()
	select {
	case <-c.closed:
	case <-time.After(waitFor):
		c.t.Fatalf("the connection is still open after %v", waitFor)
	}
	if ce, ok := c.closeErr.(*websocket.CloseError); ok {
		return ce.Code
	}
	return 0
}

// expectClose waits for the server to close with code.
func (c *client) expectClose(code int) {
	c.t.Helper()
	if got := c.closeCode(); got != code {
		c.t.Fatalf("closed with %d (%v), want %d", got, c.closeErr, code)
	}
}
