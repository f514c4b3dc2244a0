package ratelimit_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/userservice/userservice/adapters/ratelimit"
	"github.com/userservice/userservice/tests/testdb"
	"github.com/userservice/userservice/tests/testutil"
)

// shipped is the policy directory the service ships with.
const shipped = "../../policies"

// backends are the two places buckets can live; tests of behaviour that
// does not depend on it use memory only.
func backends() []struct {
	name     string
	redisURL func(t *testing.T) string
} {
	return []struct {
		name     string
		redisURL func(t *testing.T) string
	}{
		{"memory", func(*testing.T) string { return "" }},
		{"redis", func(t *testing.T) string { return testdb.RedisURL(t) }},
	}
}

// logBuffer collects log output; the limiter writes while the test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns how many log lines contain every one of parts.
func (b *logBuffer) count(parts ...string) int {
	b.mu.Lock()
	text := b.buf.String()
	b.mu.Unlock()
	n := 0
	for line := range strings.Lines(text) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// harness is a limiter mounted on an Echo server with the service's routes.
type harness struct {
	l    *ratelimit.Limiter
	e    *echo.Echo
	reg  *prometheus.Registry
	logs *logBuffer
}

// proxies are the trusted proxies of the harness's Echo server: only their
// forwarding headers name the client, as with the service's IPExtractor and
// TRUSTED_PROXIES. The limiter counts whatever c.RealIP() says.
const proxies = "10.0.0.0/8"

// newHarness builds a limiter from cfg (Log and Registry are filled in) and
// an Echo server using it; both are closed when t ends.
func newHarness(t *testing.T, cfg ratelimit.Config) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), logs: &logBuffer{}}
	cfg.Log = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Registry = h.reg
	l, err := ratelimit.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	h.l = l

	e := echo.New()
	_, trusted, _ := net.ParseCIDR(proxies)
	e.IPExtractor = echo.ExtractIPFromXFFHeader(echo.TrustLoopback(false), echo.TrustLinkLocal(false),
		echo.TrustPrivateNet(false), echo.TrustIPRange(trusted))
	e.Use(l.Middleware())
	ok := func(c echo.Context) error { return c.String(http.StatusOK, "ok") }
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/users/list"}, {"GET", "/api/v1/users/search"},
		{"GET", "/api/v1/users/me"}, {"GET", "/api/v1/users/:id"},
		{"DELETE", "/api/v1/users/:id"}, {"POST", "/api/v1/auth/sign-up"},
		{"GET", "/healthz"},
	} {
		e.Add(r.method, r.path, ok)
	}
	e.POST("/api/v1/auth/token", echoLogin)
	h.e = e
	return h
}

// echoLogin answers the email it reads from the body the way the real
// handler does, so tests see that the limiter put the body back.
func echoLogin(c echo.Context) error {
	r := c.Request()
	mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if mt == echo.MIMEApplicationForm {
		if err := r.ParseForm(); err != nil {
			return c.String(http.StatusBadRequest, err.Error())
		}
		return c.String(http.StatusOK, r.PostForm.Get("username"))
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return c.String(http.StatusRequestEntityTooLarge, err.Error())
	}
	var body map[string]json.RawMessage
	var email string
	if json.Unmarshal(data, &body) != nil || json.Unmarshal(body["email"], &email) != nil {
		return c.String(http.StatusBadRequest, "bad body")
	}
	return c.String(http.StatusOK, email)
}

// request is one request to send; peer is the TCP peer's address.
type request struct {
	method, target, peer string
	header               http.Header
	body                 string
}

func (h *harness) do(r request) *httptest.ResponseRecorder {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, r.target, body)
	req.RemoteAddr = r.peer
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.e.ServeHTTP(rec, req)
	return rec
}

// get sends GET target from peer (host:port).
func (h *harness) get(target, peer string) *httptest.ResponseRecorder {
	return h.do(request{method: "GET", target: target, peer: peer})
}

func formLogin(email, peer string) request {
	return request{method: "POST", target: "/api/v1/auth/token", peer: peer,
		header: http.Header{"Content-Type": {echo.MIMEApplicationForm}},
		body:   url.Values{"username": {email}, "password": {"secret"}, "grant_type": {"password"}}.Encode()}
}

func jsonLogin(body, peer string) request {
	return request{method: "POST", target: "/api/v1/auth/token", peer: peer,
		header: http.Header{"Content-Type": {echo.MIMEApplicationJSON}}, body: body}
}

// headerInt reads an integer header, failing the test when it is missing or
// not an integer.
func headerInt(t *testing.T, rec *httptest.ResponseRecorder, name string) int {
	t.Helper()
	v := rec.Header().Get(name)
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("header %s = %q, want an integer (status %d)", name, v, rec.Code)
	}
	return n
}

// counter returns the value of the counter name with the given labels, 0
// when no such series was recorded.
func (h *harness) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// limitsDir returns a fresh policy directory holding content as ratelimits.yaml.
func limitsDir(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	testutil.ReplaceFile(t, filepath.Join(dir, "ratelimits.yaml"), content)
	return dir
}

// proxy stands between the limiter and Redis so a test can take Redis away
// and give it back without touching the server other tests share.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  proxyMode
	conns map[net.Conn]bool
}

type proxyMode int

const (
	proxyUp     proxyMode = iota // forward to Redis
	proxyRefuse                  // close every connection at once
	proxyHang                    // accept, then never answer
)

// newProxy forwards to the Redis of redisURL and returns the proxy and the
// URL that goes through it.
func newProxy(t *testing.T, redisURL string) (*proxy, string) {
	t.Helper()
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: u.Host, conns: map[net.Conn]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		p.setMode(proxyRefuse) // closes what is left
	})
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *proxy) serve(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case proxyRefuse:
		c.Close()
		return
	case proxyHang:
		p.conns[c] = true
		return
	}
	upstream, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.conns[c], p.conns[upstream] = true, true
	go func() { _, _ = io.Copy(upstream, c); upstream.Close() }()
	go func() { _, _ = io.Copy(c, upstream); c.Close() }()
}

// setMode switches the proxy; leaving proxyUp cuts every open connection,
// as a Redis that dies or becomes unreachable does.
func (p *proxy) setMode(m proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	if m == proxyUp {
		return
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}
