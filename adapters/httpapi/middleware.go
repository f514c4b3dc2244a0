package httpapi

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/userservice/userservice/domain"
)

const maxRequestIDLen = 128

// requestID keeps the client's X-Request-ID when it is a plausible id, so a
// request can be followed across services, and makes a fresh one otherwise:
// an arbitrary header value must not reach the logs. (Echo's RequestID
// middleware takes any value the client sends.)
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			id = rand.Text()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		c.SetRequest(c.Request().WithContext(withRequestID(c.Request().Context(), id)))
		return next(c)
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '-', r == '_', r == '.', r == ':':
		default:
			return false
		}
	}
	return true
}

// observe writes the access log line and the request metrics. It renders
// errors itself (c.Error) so that the status it records is the one sent.
// Only the route template is recorded, never the raw path or query, which
// may hold ids or tokens, and never headers or bodies. (Echo's
// RequestLogger, with HandleError, hands the rendered error on up the chain,
// where Echo would render it a second time.)
func (s *server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		s.metrics.inFlight.Inc()
		defer s.metrics.inFlight.Dec()

		if err := next(c); err != nil {
			c.Error(err)
		}

		status := c.Response().Status
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		elapsed := time.Since(start)
		s.metrics.observe(c.Request().Method, route, status, elapsed)

		req := c.Request()
		attrs := []slog.Attr{
			slog.String("method", req.Method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Duration("duration", elapsed),
			slog.Int64("bytes", c.Response().Size),
			slog.String("request_id", RequestIDFrom(req.Context())),
			slog.String("remote_ip", c.RealIP()),
		}
		if a, ok := ActorFrom(req.Context()); ok {
			attrs = append(attrs, slog.Int64("user_id", a.ID))
		}
		level := slog.LevelInfo
		if quietRoute(route) && status < http.StatusBadRequest {
			// Probes and scrapes arrive every few seconds; they would drown the log.
			level = slog.LevelDebug
		}
		s.log.LogAttrs(req.Context(), level, "http request", attrs...)
		return nil
	}
}

func quietRoute(route string) bool {
	return route == "/healthz" || route == "/readyz" || route == "/metrics"
}

// recoverPanics turns a panic into an internal error, so the client gets the
// generic 500 and the log gets the value and stack under the request id
// (handleError logs internal errors with their cause). Echo's Recover
// re-panics http.ErrAbortHandler, as net/http expects.
func recoverPanics() echo.MiddlewareFunc {
	return middleware.RecoverWithConfig(middleware.RecoverConfig{
		StackSize:           64 << 10,
		DisableStackAll:     true,
		DisableErrorHandler: true, // observe renders it, so it logs the status sent
		LogErrorFunc: func(_ echo.Context, err error, stack []byte) error {
			return &domain.Error{Kind: domain.KindInternal, Code: "internal", Message: "internal error",
				Err: fmt.Errorf("panic: %v\n%s", err, stack)}
		},
	})
}

// authBodyLimit bounds the bodies of /auth/* routes: a login, refresh,
// logout or sign-up is a few hundred bytes, and anything larger is only
// there to make the service read, parse or count it.
const authBodyLimit = 8 << 10

// limitBody refuses a declared Content-Length over the limit at once and
// cuts any other body off at the limit; readers then see *http.MaxBytesError.
// CSV imports, streamed rather than buffered, have a limit of their own.
// The small bodies of /auth/* are read whole here, so one over their limit is
// answered 413 before any rate limit counts it or anything parses it, with a
// Content-Length or without. (Echo's BodyLimit has one limit for every
// route, and its reader fails with an echo.HTTPError where the body readers
// expect *http.MaxBytesError.)
func (s *server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		limit := s.cfg.BodyLimit
		auth := strings.HasPrefix(c.Path(), authPrefix)
		switch {
		case isImportUpload(c):
			limit = s.cfg.ImportBodyLimit
		case auth:
			limit = min(limit, authBodyLimit)
		}
		if req.ContentLength > limit {
			return errBodyTooLarge(limit)
		}
		if auth && req.Body != nil && req.Body != http.NoBody {
			data, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, limit))
			if err != nil {
				return readError(err)
			}
			req.Body = io.NopCloser(bytes.NewReader(data))
			return next(c)
		}
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
		}
		return next(c)
	}
}

// deadlines bound every request with RequestTimeout (an import with
// ImportTimeout). A database that crashes or is cut off leaves connections
// that never hear back; without a deadline a request waiting on one would
// hang until the client gives up, and hold a pool connection meanwhile.
// With it, the queries are cancelled and the error handler answers 503.
// A WebSocket is exempt: its request lasts as long as the connection.
func deadlines(cfg Config) []echo.MiddlewareFunc {
	return []echo.MiddlewareFunc{
		middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{
			Timeout: cfg.RequestTimeout,
			Skipper: func(c echo.Context) bool { return c.IsWebSocket() || isImportUpload(c) },
		}),
		middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{
			Timeout: cfg.ImportTimeout,
			Skipper: func(c echo.Context) bool { return !isImportUpload(c) },
		}),
	}
}

// strictQuery refuses query parameters the operation does not document, and
// documented ones given twice: a typo must not silently widen a search, and
// "which of the two values counts" has no good answer.
func strictQuery(allowed []string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			q, err := url.ParseQuery(c.Request().URL.RawQuery)
			if err != nil {
				return &domain.Error{Kind: domain.KindMalformed, Code: "malformed_query",
					Message: "the query string is malformed", Err: err}
			}
			var unknown, repeated []string
			for name, values := range q {
				switch {
				case !slices.Contains(allowed, name):
					unknown = append(unknown, name)
				case len(values) > 1:
					repeated = append(repeated, name)
				}
			}
			if len(unknown) > 0 {
				slices.Sort(unknown)
				return queryError("unknown_parameter", "unknown query parameter", unknown)
			}
			if len(repeated) > 0 {
				slices.Sort(repeated)
				return queryError("repeated_parameter", "query parameter given more than once", repeated)
			}
			return next(c)
		}
	}
}

func queryError(code, what string, names []string) error {
	e := &domain.Error{Kind: domain.KindMalformed, Code: code}
	var quoted []string
	for i, n := range names {
		if i == maxNamed {
			quoted = append(quoted, fmt.Sprintf("and %d more", len(names)-maxNamed))
			break
		}
		n = clipName(n)
		quoted = append(quoted, fmt.Sprintf("%q", n))
		e.Fields = append(e.Fields, domain.FieldError{Field: n, Message: what})
	}
	plural := ""
	if len(names) > 1 {
		plural = "s"
	}
	e.Message = fmt.Sprintf("%s%s: %s", what, plural, strings.Join(quoted, ", "))
	return e
}

// authenticate turns "Authorization: Bearer <token>" into the actor of the
// request. The scheme is case-insensitive (RFC 9110), so "bearer" from OAuth2
// clients that echo token_type works too.
func (s *server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		scheme, token, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return domain.ErrUnauthenticated
		}
		actor, err := s.auth.Authenticate(c.Request().Context(), token)
		if err != nil {
			return err
		}
		c.SetRequest(c.Request().WithContext(withActor(c.Request().Context(), actor)))
		return next(c)
	}
}
