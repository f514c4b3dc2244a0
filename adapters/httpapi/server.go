package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/userservice/userservice/ports"
)

// apiPrefix is where the REST API lives; health, metrics and docs sit outside it.
const apiPrefix = "/api/v1"

// authPrefix starts the routes that sign in and out.
const authPrefix = apiPrefix + "/auth/"

// Deps are the adapter's collaborators. All are required.
type Deps struct {
	Users ports.UserService
	Auth  ports.AuthService
	// Keys publishes the public keys at /.well-known/jwks.json.
	Keys  ports.KeySet
	Audit ports.AuditService
	// Import serves POST /api/v1/users/import.
	Import ports.ImportService
	// Access, Stats and Jobs serve what the console needs: permissions and
	// the policy, the overview, and background imports.
	Access ports.AccessService
	Stats  ports.StatsService
	Jobs   ports.ImportJobService
	// Ready reports whether the service can serve (the database answers).
	Ready func(context.Context) error
	Log   *slog.Logger
	// Registry receives the HTTP metrics and serves /metrics. Go runtime and
	// process collectors are the caller's to register.
	Registry *prometheus.Registry
	// Version is reported by userservice_build_info.
	Version string
}

// Config tunes the adapter; zero values take the defaults.
type Config struct {
	// BodyLimit caps request bodies in bytes (default 1 MiB); larger is 413.
	BodyLimit int64
	// ImportBodyLimit caps a CSV import's body instead (default 64 MiB).
	ImportBodyLimit int64
	// ImportTimeout is how long an import may take to upload and run
	// (default 10 minutes), past the server's read and write timeouts,
	// which are made for ordinary requests.
	ImportTimeout time.Duration
	// TrustedProxies are the proxies whose X-Forwarded-For is believed when
	// working out the client's address (for logs and rate limits). Without
	// any, the address is the TCP peer's.
	TrustedProxies []netip.Prefix
	// ReadyTimeout bounds the readiness check (default 2s).
	ReadyTimeout time.Duration
	// RequestTimeout bounds an ordinary request from the moment it is routed
	// (default 10s): past it, whatever the request waits on (a database that
	// stopped answering) is cancelled and the client gets 503. CSV imports
	// have ImportTimeout instead; a WebSocket lives as long as its client.
	RequestTimeout time.Duration
	// AllowedOrigins are the exact origins (scheme://host[:port]) whose
	// pages may call the API from a browser (CORS). Empty: none, and no
	// CORS headers are sent.
	AllowedOrigins []string
	// Issuer is the iss of the access tokens, named by the OAuth metadata.
	Issuer string
	// PublicURL is the external base URL the OAuth metadata names its
	// endpoints under (scheme://host[/prefix], no trailing slash). Empty:
	// built from each request, believing X-Forwarded-Proto and
	// X-Forwarded-Host only from TrustedProxies.
	PublicURL string
}

const (
	defaultBodyLimit       = 1 << 20
	defaultImportBodyLimit = 64 << 20
	defaultImportTimeout   = 10 * time.Minute
	defaultReadyTimeout    = 2 * time.Second
	// defaultRequestTimeout leaves the HTTP server's 30 s write timeout room
	// to deliver the 503.
	defaultRequestTimeout = 10 * time.Second
)

// server holds what handlers and middleware share. Its exported methods
// implement the generated ServerInterface.
type server struct {
	users   ports.UserService
	auth    ports.AuthService
	keys    ports.KeySet
	audit   ports.AuditService
	imports ports.ImportService
	access  ports.AccessService
	stats   ports.StatsService
	jobs    ports.ImportJobService
	ready   func(context.Context) error
	log     *slog.Logger
	metrics *metrics
	// metricsHandler serves the registry at /metrics.
	metricsHandler http.Handler
	cfg            Config
}

var _ ServerInterface = (*server)(nil)

// New builds the Echo instance serving the REST API, /healthz, /readyz,
// /metrics, the well-known OAuth documents, /openapi.yaml and /docs. The caller may mount more routes on it
// (for example the WebSocket endpoint under /api/v1): they pass through the
// same request id, logging, metrics, recovery, body limit and error handler,
// but not through authentication or the strict query check, which apply to
// the operations of openapi.yaml only.
func New(deps Deps, cfg Config) (*echo.Echo, error) {
	if err := deps.check(); err != nil {
		return nil, err
	}
	orDefault(&cfg.BodyLimit, defaultBodyLimit)
	orDefault(&cfg.ReadyTimeout, defaultReadyTimeout)
	orDefault(&cfg.ImportBodyLimit, defaultImportBodyLimit)
	orDefault(&cfg.ImportTimeout, defaultImportTimeout)
	orDefault(&cfg.RequestTimeout, defaultRequestTimeout)
	m, err := newMetrics(deps.Registry, deps.Version)
	if err != nil {
		return nil, err
	}
	s := &server{
		users: deps.Users, auth: deps.Auth, keys: deps.Keys, audit: deps.Audit, imports: deps.Import, ready: deps.Ready,
		access: deps.Access, stats: deps.Stats, jobs: deps.Jobs,
		log: deps.Log, metrics: m, cfg: cfg,
		metricsHandler: promhttp.HandlerFor(deps.Registry, promhttp.HandlerOpts{}),
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	e.Use(requestID, securityHeaders, s.observe, recoverPanics())
	if len(cfg.AllowedOrigins) > 0 {
		// After observe, so preflights are logged and counted too.
		e.Use(corsHeaders(cfg.AllowedOrigins))
	}
	e.Use(s.limitBody)
	e.Use(deadlines(cfg)...)

	RegisterHandlersWithOptions(e, s, RegisterHandlersOptions{
		OperationMiddlewares: s.operationMiddleware(),
	})
	e.GET("/openapi.yaml", serveSpec)
	registerDocs(e)
	console, err := newConsoleSite()
	if err != nil {
		return nil, err
	}
	console.register(e)
	refuseShadowedMethods(e)
	return e, nil
}

// orDefault sets a Config value left zero (or negative) to its default.
func orDefault[T int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// refuseShadowedMethods answers 405, with Allow, a method that a fixed path
// lacks but a parameterised sibling has: Echo's router would otherwise hand
// DELETE /api/v1/users/list to DELETE /api/v1/users/:id, which can only
// answer 400 for the id "list". Read from the registered routes, so it
// follows the spec.
func refuseShadowedMethods(e *echo.Echo) {
	methods := map[string][]string{}
	for _, r := range e.Routes() {
		methods[r.Path] = append(methods[r.Path], r.Method)
	}
	type route struct{ method, path string }
	var refuse []route
	for fixed, allowed := range methods {
		if strings.ContainsAny(fixed, ":*") {
			continue
		}
		for pattern, theirs := range methods {
			if !shadows(pattern, fixed) {
				continue
			}
			for _, m := range theirs {
				if !slices.Contains(allowed, m) && !slices.Contains(refuse, route{m, fixed}) {
					refuse = append(refuse, route{m, fixed})
				}
			}
		}
	}
	for _, r := range refuse {
		allow := slices.Sorted(slices.Values(methods[r.path]))
		e.Add(r.method, r.path, func(c echo.Context) error {
			c.Response().Header().Set(echo.HeaderAllow, strings.Join(allow, ", "))
			return echo.ErrMethodNotAllowed
		})
	}
}

// shadows reports whether the parameterised route pattern also matches the
// fixed path: as many segments, each equal or a parameter.
func shadows(pattern, fixed string) bool {
	p, f := strings.Split(pattern, "/"), strings.Split(fixed, "/")
	if !strings.Contains(pattern, ":") || len(p) != len(f) {
		return false
	}
	for i := range p {
		if p[i] != f[i] && !strings.HasPrefix(p[i], ":") {
			return false
		}
	}
	return true
}

func (d Deps) check() error {
	var missing []string
	for name, ok := range map[string]bool{
		"Users": d.Users != nil, "Auth": d.Auth != nil, "Keys": d.Keys != nil, "Audit": d.Audit != nil, "Import": d.Import != nil,
		"Access": d.Access != nil, "Stats": d.Stats != nil, "Jobs": d.Jobs != nil,
		"Ready": d.Ready != nil, "Log": d.Log != nil,
		"Registry": d.Registry != nil,
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return errors.New("httpapi: missing dependencies: " + strings.Join(missing, ", "))
	}
	return nil
}

// operation is what openapi.yaml says about one operation, as internal/gen
// reads it into operations.gen.go, so the document and the behaviour cannot
// drift.
type operation struct {
	path string
	// needsToken: the operation's security requirements (its own, else the
	// document's) ask for a scheme in every alternative.
	needsToken bool
	// query are the query parameters it documents, its path's and its own.
	query []string
	// params are those of its parameters that can fail to bind.
	params []param
	// body is the keys of its JSON request body, nil when it takes none.
	body map[string]bodyKey
}

// operationMiddleware authenticates the operations that need a token,
// under apiPrefix refuses the query parameters an operation does not
// document, and checks the parameters that must parse.
func (s *server) operationMiddleware() map[string][]echo.MiddlewareFunc {
	out := make(map[string][]echo.MiddlewareFunc, len(operations))
	for id, op := range operations {
		var mw []echo.MiddlewareFunc
		if op.needsToken {
			mw = append(mw, s.authenticate)
		}
		if strings.HasPrefix(op.path, apiPrefix+"/") {
			mw = append(mw, strictQuery(op.query))
		}
		if len(op.params) > 0 {
			mw = append(mw, s.checkParams(op.params))
		}
		out[id] = mw
	}
	return out
}

// NewHTTPServer wraps h in an http.Server with timeouts that keep slow or
// idle clients from holding connections: 5s to send the headers (slowloris),
// 30s to send the whole request and 30s to receive the answer (a 1 MiB body
// or a 100-item page takes far less), 120s for an idle keep-alive connection.
// Upgraded WebSocket connections are not bound by these once hijacked: the
// WebSocket library clears the deadlines and sets its own.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
}
