package realtime

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/userservice/userservice/ports"
)

// Path is where the WebSocket endpoint is mounted.
const Path = "/api/v1/users/ws"

// Close codes (RFC 6455 and the contract's own 4401).
const (
	CloseGoingAway       = 1001 // the server shuts down
	ClosePolicyViolation = 1008 // a client that does not read its events
	CloseMessageTooBig   = 1009 // a frame over MaxMessageSize (sent by gorilla/websocket)
	CloseInternalError   = 1011 // a bug met while serving the connection
	CloseUnauthenticated = 4401 // no, an invalid, an expired or a revoked token
)

// MaxMessageSize is the largest client frame accepted (docs/websocket.md: 4 KiB).
const MaxMessageSize = 4096

// AllowFunc takes a token from the named rate-limit rule's bucket for key
// (the rate-limit adapter's Limiter.Allow).
type AllowFunc func(ctx context.Context, rule, key string) (ok bool, retryAfter time.Duration)

// Config is the adapter's collaborators and tuning; zero tuning values take
// the defaults.
type Config struct {
	// Service is the real-time use case (required).
	Service ports.RealtimeService
	// Registry receives the adapter's metrics (required).
	Registry prometheus.Registerer
	// Log receives the adapter's log lines; nil discards them.
	Log *slog.Logger
	// Allow limits the messages of each connection under MessageRule, and
	// the catch-ups (subscribes with since_seq) of each account under
	// CatchUpRule; nil limits nothing.
	Allow AllowFunc
	// MessageRule names the rate-limit rule of client messages (default
	// "websocket-messages").
	MessageRule string
	// CatchUpRule names the rate-limit rule of catch-ups, counted per
	// account across its connections (default "websocket-catchups").
	CatchUpRule string
	// AuthTimeout is how long a connection without a token in its
	// handshake may take to send its auth message (default 10s).
	AuthTimeout time.Duration
	// SendBuffer is how many messages may wait for a connection's writer
	// (default 256). A client that lets more pile up does not read, and
	// is disconnected with 1008 rather than slowing anyone.
	SendBuffer int
	// PingPeriod is how often the server pings (default 30s); PongWait is
	// how long it waits for any pong before giving up on the connection
	// (default 60s, at least twice PingPeriod).
	PingPeriod time.Duration
	PongWait   time.Duration
	// WriteWait bounds one write to the network (default 10s); a client
	// that accepts nothing for that long is disconnected.
	WriteWait time.Duration
	// AllowedOrigins are the exact origins (scheme://host[:port]) of other
	// sites whose pages may open connections, as for CORS. Pages of the
	// service's own origin, and clients that send no Origin (not
	// browsers), may always connect.
	AllowedOrigins []string
}

const (
	defaultMessageRule = "websocket-messages"
	defaultCatchUpRule = "websocket-catchups"
	defaultAuthTimeout = 10 * time.Second
	defaultSendBuffer  = 256
	defaultPingPeriod  = 30 * time.Second
	defaultWriteWait   = 10 * time.Second
	// shutdownPoll spaces the checks for the last session to leave.
	shutdownPoll = 10 * time.Millisecond
)

// Server serves GET /api/v1/users/ws.
//
// It is built on gorilla/websocket directly rather than on melody (a hub
// over gorilla/websocket): an event reaches many connections with the
// same message, which gorilla/websocket can frame once for all of them
// (PreparedMessage), while melody only writes bytes it frames anew per
// connection, each through an envelope of its own. The bench's fan-out row
// measures the difference against a bare melody server.
type Server struct {
	cfg      Config
	svc      ports.RealtimeService
	log      *slog.Logger
	upgrader websocket.Upgrader
	metrics  *metrics
	events   eventEncoder

	closing atomic.Bool
	// idPrefix and nextID name sessions (their rate-limit keys) uniquely,
	// across instances too, should the rule's buckets be shared.
	idPrefix string
	nextID   atomic.Uint64
	mu       sync.Mutex
	sessions map[*session]struct{}
}

// New builds the adapter. Mount Handle at Path on the service's router, and
// call Shutdown before the HTTP server's: hijacked connections are not
// drained by http.Server.Shutdown.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil || cfg.Registry == nil {
		return nil, errors.New("realtime: Service and Registry are required")
	}
	if cfg.MessageRule == "" {
		cfg.MessageRule = defaultMessageRule
	}
	if cfg.CatchUpRule == "" {
		cfg.CatchUpRule = defaultCatchUpRule
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = defaultAuthTimeout
	}
	if cfg.SendBuffer <= 0 {
		cfg.SendBuffer = defaultSendBuffer
	}
	if cfg.PingPeriod <= 0 {
		cfg.PingPeriod = defaultPingPeriod
	}
	if cfg.PongWait < 2*cfg.PingPeriod {
		cfg.PongWait = 2 * cfg.PingPeriod
	}
	if cfg.WriteWait <= 0 {
		cfg.WriteWait = defaultWriteWait
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	met, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	return &Server{
		cfg: cfg, svc: cfg.Service, log: log, metrics: met, sessions: map[*session]struct{}{},
		idPrefix: rand.Text()[:8] + "-",
		upgrader: websocket.Upgrader{
			ReadBufferSize: bufferSize, WriteBufferSize: bufferSize,
			// Events are written from their prepared frames, past the
			// write buffer: only replies need one, for the moment of
			// their write, so connections share a pool of them rather
			// than each holding its own.
			WriteBufferPool: &sync.Pool{},
			CheckOrigin:     checkOrigin(cfg.AllowedOrigins), Error: upgradeError,
		},
	}, nil
}

// bufferSize is the size of a connection's read buffer and of the write
// buffers (melody's sizes: client messages and replies are small).
const bufferSize = 1024

// checkOrigin refuses handshakes from pages of foreign origins (403). The
// token is what authenticates, and a page could only use one it holds, but
// the origin check keeps the endpoint as closed to other sites as the REST
// API is under CORS, and stops a hostile page from spending the rate-limit
// budget of the browser's address.
func checkOrigin(allowed []string) func(*http.Request) bool {
	allowed = slices.Clone(allowed)
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" || slices.Contains(allowed, origin) {
			return true
		}
		u, err := url.Parse(origin)
		return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
	}
}

// upgradeError answers a request that cannot be upgraded in the service's
// error shape.
func upgradeError(w http.ResponseWriter, _ *http.Request, status int, reason error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(mustJSON(map[string]string{"detail": "WebSocket handshake failed: " + reason.Error(), "code": "websocket_handshake"}))
}

// Handle upgrades the request to a WebSocket connection, which then lives
// on in goroutines of its own (a reader and a writer) while Handle returns.
// A token may come with the handshake (Authorization: Bearer, or the
// access_token query parameter, for clients that cannot set headers);
// otherwise the first message must carry it.
//
// The connection's goroutines start fresh rather than going on in the
// request's: that one's stack holds the whole middleware chain (measured:
// about 14 KiB more per connection), and nothing of the request is kept.
func (s *Server) Handle(c echo.Context) error {
	if s.closing.Load() {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the server is shutting down")
	}
	token := handshakeToken(c.Request())
	conn, err := s.upgrader.Upgrade(c.Response(), c.Request(), nil)
	if err != nil {
		return nil // answered by upgradeError
	}
	// For the access log and the HTTP metrics: the answer was 101, written
	// on the hijacked connection, which Echo did not see.
	c.Response().Status = http.StatusSwitchingProtocols
	sess := newSession(s, conn, s.idPrefix+strconv.FormatUint(s.nextID.Add(1), 36), token)
	go sess.writeLoop()
	go sess.readLoop()
	return nil
}

func handshakeToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(token)
		}
	}
	return r.URL.Query().Get("access_token")
}

// Shutdown closes every connection with 1001 and waits, until ctx ends, for
// them to go; new handshakes are refused (503) from its start. Connections
// still open when ctx ends are dropped without their close frame.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	for _, sess := range s.snapshot() {
		sess.closeWith(CloseGoingAway, "server shutting down")
	}
	t := time.NewTicker(shutdownPoll)
	defer t.Stop()
	for {
		left := s.snapshot()
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			for _, sess := range left {
				_ = sess.ws.Close()
			}
			return fmt.Errorf("realtime: %d connections still open at shutdown: %w", len(left), ctx.Err())
		case <-t.C:
		}
	}
}

func (s *Server) snapshot() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		out = append(out, sess)
	}
	return out
}

// onConnect starts serving sess, before its first message is read.
func (s *Server) onConnect(sess *session) {
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	s.metrics.connections.Inc()
	if s.closing.Load() {
		sess.closeWith(CloseGoingAway, "server shutting down")
		return
	}
	if sess.token != "" {
		s.offStack(sess, func() { sess.authenticate(context.Background(), sess.token, false) })
		return
	}
	sess.mu.Lock()
	sess.authTimer = time.AfterFunc(s.cfg.AuthTimeout, func() {
		if sess.connection() == nil {
			sess.closeWith(CloseUnauthenticated, "authentication timeout")
		}
	})
	sess.mu.Unlock()
}

func (s *Server) onMessage(sess *session, data []byte) {
	s.offStack(sess, func() { sess.handle(context.Background(), data) })
}

// offStack runs fn on a goroutine of its own and waits for it. Work that
// reaches the database grows a goroutine's stack to 16-32 KiB, and the
// goroutine that serves a connection for hours would keep most of that
// (measured: 12 KiB of stack per connection against a bare melody
// server's 6.5); a client message is rare enough that a goroutine per
// message costs nothing in comparison.
//
// A panic there is a bug: it is logged and ends that connection (1011)
// rather than the process, as the HTTP API's recovery would for a request.
func (s *Server) offStack(sess *session, fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("websocket: panic while serving a message", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				sess.closeWith(CloseInternalError, "internal error")
			}
		}()
		fn()
	}()
	<-done
}

func (s *Server) onBinary(sess *session) {
	if sess.connection() == nil {
		sess.closeWith(CloseUnauthenticated, "authentication required")
		return
	}
	sess.send(replyError("bad JSON: messages are JSON text frames"))
}

// onDisconnect forgets sess once its client is gone.
func (s *Server) onDisconnect(sess *session) {
	sess.disconnected()
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.metrics.connections.Dec()
}
