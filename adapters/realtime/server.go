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

	"github.com/labstack/echo/v4"
	"github.com/olahol/melody"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/userservice/userservice/ports"
)

// Path is where the WebSocket endpoint is mounted.
const Path = "/api/v1/users/ws"

// Close codes (RFC 6455 and the contract's own 4401).
const (
	CloseGoingAway       = 1001 // the server shuts down
	ClosePolicyViolation = 1008 // a client that does not read its events
	CloseMessageTooBig   = 1009 // a frame over MaxMessageSize (sent by the WebSocket library)
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
	// sessionKey holds a melody session's *session in its Keys.
	sessionKey = "userservice.session"
	// shutdownPoll spaces the checks for the last session to leave.
	shutdownPoll = 10 * time.Millisecond
)

// Server serves GET /api/v1/users/ws with melody. Events go to each
// connection with its own Session.Write, never through melody's hub: the
// service decides who gets what, one Deliver per connection, and an
// event's bytes are shared by every connection it reaches.
type Server struct {
	cfg     Config
	svc     ports.RealtimeService
	log     *slog.Logger
	m       *melody.Melody
	metrics *metrics
	events  eventEncoder

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
	m := melody.New()
	m.Config.MaxMessageSize = MaxMessageSize
	// One slot more than SendBuffer: the adapter counts what it queues and
	// never fills the last slot with a message, so the close frame that
	// ends a connection always fits (melody drops what does not).
	m.Config.MessageBufferSize = cfg.SendBuffer + 1
	m.Config.PingPeriod = cfg.PingPeriod
	m.Config.PongWait = cfg.PongWait
	m.Config.WriteWait = cfg.WriteWait
	// A connection needs a write buffer only while a message is being
	// written, and is idle between events nearly all its life: the
	// connections share a pool of buffers rather than each holding one.
	m.Upgrader.WriteBufferPool = &sync.Pool{}
	// The read buffer is each connection's own for its whole life, while
	// clients send little: a control frame, a subscribe, an auth message
	// with its token. A larger message is read in a few parts.
	m.Upgrader.ReadBufferSize = readBufferSize
	m.Upgrader.CheckOrigin = checkOrigin(cfg.AllowedOrigins)
	m.Upgrader.Error = upgradeError

	s := &Server{cfg: cfg, svc: cfg.Service, log: log, m: m, metrics: met, sessions: map[*session]struct{}{},
		idPrefix: rand.Text()[:8] + "-"}
	m.HandleConnect(s.onConnect)
	m.HandleMessage(s.onMessage)
	m.HandleMessageBinary(s.onBinary)
	m.HandleSentMessage(s.onSent)
	m.HandleError(s.onError)
	m.HandleDisconnect(s.onDisconnect)
	return s, nil
}

// readBufferSize holds any control frame (at most 125 bytes of payload)
// and most client messages whole.
const readBufferSize = 256

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
// on in a goroutine of its own while Handle returns. A token may come with
// the handshake (Authorization: Bearer, or the access_token query
// parameter, for clients that cannot set headers); otherwise the first
// message must carry it.
//
// Melody serves a connection in the goroutine that calls it. Were that the
// request's goroutine, its stack would keep the whole middleware chain for
// the connection's life (measured: about 14 KiB more per connection than a
// bare melody server), and the request's context would stay reachable
// too. So the connection gets a fresh goroutine and a copy of the request
// without its context, and the request's goroutine waits only for the
// upgrade.
func (s *Server) Handle(c echo.Context) error {
	if s.closing.Load() {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the server is shutting down")
	}
	req := c.Request()
	sess := &session{
		srv: s, id: s.idPrefix + strconv.FormatUint(s.nextID.Add(1), 36),
		token: handshakeToken(req),
	}
	upgraded := make(chan error, 1)
	sess.upgraded = upgraded
	go s.serve(c.Response(), req.WithContext(context.Background()), sess)
	if err := <-upgraded; err != nil {
		if errors.Is(err, melody.ErrClosed) {
			return echo.NewHTTPError(http.StatusServiceUnavailable, "the server is shutting down")
		}
		// Any other error is a failed upgrade, already answered by upgradeError.
		return nil
	}
	// For the access log and the HTTP metrics: the answer was 101, written
	// on the hijacked connection, which Echo did not see.
	c.Response().Status = http.StatusSwitchingProtocols
	return nil
}

// serve has melody upgrade r and serve the connection until it ends. An
// error comes before the upgrade, onConnect having not run.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, sess *session) {
	if err := s.m.HandleRequestWithKeys(w, r, map[string]any{sessionKey: sess}); err != nil {
		sess.upgraded <- err
	}
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
// them to go; new handshakes are refused (503) from its start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	for _, sess := range s.snapshot() {
		sess.closeWith(CloseGoingAway, "server shutting down")
	}
	t := time.NewTicker(shutdownPoll)
	defer t.Stop()
	for {
		s.mu.Lock()
		left := len(s.sessions)
		s.mu.Unlock()
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			_ = s.m.Close()
			return fmt.Errorf("realtime: %d connections still open at shutdown: %w", left, ctx.Err())
		case <-t.C:
		}
	}
	if err := s.m.Close(); err != nil && !errors.Is(err, melody.ErrClosed) {
		return fmt.Errorf("realtime: closing melody: %w", err)
	}
	return nil
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

func sessionOf(ms *melody.Session) *session {
	// Keys is the map given to HandleRequestWithKeys and is never written
	// afterwards (nothing calls Set), so reading it needs no lock.
	sess, _ := ms.Keys[sessionKey].(*session)
	return sess
}

func (s *Server) onConnect(ms *melody.Session) {
	sess := sessionOf(ms)
	sess.ms = ms
	sess.upgraded <- nil // Handle may return: the request is done with
	// A connection lives for hours: it keeps nothing of its handshake.
	// melody keeps the request, headers and all, for handlers that read
	// it; this adapter took the token, needed once, at the handshake.
	sess.upgraded = nil
	ms.Request = nil
	token := sess.token
	sess.token = ""
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	s.metrics.connections.Inc()
	if s.closing.Load() {
		sess.closeWith(CloseGoingAway, "server shutting down")
		return
	}
	if token != "" {
		s.offStack(sess, func() { sess.authenticate(context.Background(), token, false) })
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

func (s *Server) onMessage(ms *melody.Session, data []byte) {
	sess := sessionOf(ms)
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

func (s *Server) onBinary(ms *melody.Session, _ []byte) {
	sess := sessionOf(ms)
	if sess.connection() == nil {
		sess.closeWith(CloseUnauthenticated, "authentication required")
		return
	}
	sess.send(replyError("bad JSON: messages are JSON text frames"))
}

func (s *Server) onSent(ms *melody.Session, _ []byte) {
	sessionOf(ms).queued.Add(-1)
}

// onError sees every failure melody meets. Reads end with an error when
// the client leaves or breaks the protocol (a frame over the size limit:
// the WebSocket library then closes with 1009); none of that is the
// service's fault, so it is logged at debug.
func (s *Server) onError(ms *melody.Session, err error) {
	if errors.Is(err, melody.ErrMessageBufferFull) {
		// The adapter keeps a slot free for the close frame; melody's own
		// close on its final Close may still find none.
		s.log.Debug("websocket: a message found the send buffer full", "error", err)
		return
	}
	s.log.Debug("websocket: connection error", "error", err)
}

func (s *Server) onDisconnect(ms *melody.Session) {
	sess := sessionOf(ms)
	sess.disconnected()
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.metrics.connections.Dec()
}
