package bootstrap

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/userservice/userservice/adapters/csvimport"
	"github.com/userservice/userservice/adapters/gormstore"
	"github.com/userservice/userservice/adapters/httpapi"
	"github.com/userservice/userservice/adapters/jwtauth"
	"github.com/userservice/userservice/adapters/passwords"
	"github.com/userservice/userservice/adapters/policywatch"
	"github.com/userservice/userservice/adapters/ratelimit"
	"github.com/userservice/userservice/adapters/rbac"
	"github.com/userservice/userservice/adapters/realtime"
	"github.com/userservice/userservice/application"
)

// shutdownGrace bounds how long in-flight requests may run after SIGTERM.
const shutdownGrace = 20 * time.Second

// App is the whole service wired together: New builds it, Run serves until
// the context ends, Close releases what New opened. End-to-end tests boot it
// on ":0" and read Addr.
type App struct {
	cfg     Config
	log     *slog.Logger
	store   *gormstore.Store
	tokens  *jwtauth.JWT
	authz   *rbac.Authorizer
	limit   *ratelimit.Limiter
	users   *application.Users
	auth    *application.Auth
	states  *application.TokenStates
	audit   *application.Audit
	imports *application.Import
	jobs    *application.ImportJobs
	stats   *application.Stats
	sv      *application.Subscriptions
	ws      *realtime.Server
	http    *http.Server
	ln      net.Listener
}

func openStore(ctx context.Context, cfg Config, log *slog.Logger) (*gormstore.Store, error) {
	// The use cases' clock also stamps change-log entries, so an entry's
	// time equals the updated_at it records.
	store, err := gormstore.Open(ctx, cfg.DatabaseURL, log, gormstore.WithClock(systemClock{}))
	if err != nil {
		return nil, fmt.Errorf("opening the database: %w", err)
	}
	return store, nil
}

// newApp wires the core and its adapters without migrating or listening.
// registry is where a serving instance's metrics go; only then are the rate
// limits loaded (the use cases limit failed password checks with them), and
// the commands that serve nothing pass nil.
func newApp(ctx context.Context, cfg Config, log *slog.Logger, registry *prometheus.Registry) (*App, error) {
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	authz, err := rbac.New(cfg.PolicyDir, log)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("loading the policy from POLICY_DIR=%s: %w", cfg.PolicyDir, err)
	}
	tokens, err := newTokens(cfg, log)
	if err != nil {
		store.Close()
		return nil, err
	}
	var limit *ratelimit.Limiter
	if registry != nil {
		limit, err = ratelimit.New(ratelimit.Config{
			Dir:      cfg.PolicyDir,
			RedisURL: cfg.RedisURL,
			Verifier: tokens,
			Log:      log,
			Registry: registry,
		})
		if err != nil {
			store.Close()
			return nil, fmt.Errorf("loading the rate limits from POLICY_DIR=%s: %w", cfg.PolicyDir, err)
		}
	}
	hasher := passwords.NewArgon2id(passwords.DefaultParams())
	deps := application.Deps{
		Repo:    store.Users(),
		Refresh: store.RefreshTokens(),
		Changes: store.ChangeLog(),
		Authz:   authz,
		Hasher:  hasher,
		// Imports: CSV rows in, COPY (PostgreSQL) or batched INSERTs out,
		// and the hasher's own formats for imported password hashes.
		Importer:    store.Importer(),
		Decoder:     csvimport.New(),
		HashFormats: hasher,
		Tokens:      tokens,
		Verifier:    tokens,
		Clock:       systemClock{},
		Log:         log,
		CursorKey:   tokens.DeriveKey("userservice cursor v1"),
	}
	if limit != nil {
		deps.Throttle = limit
	}
	// Token checks read memory kept current from the change feed; every
	// write through the use cases evicts the account it touched as it
	// returns, so this instance refuses a revoked token at once.
	states := application.NewTokenStates(deps, application.TokenStatesConfig{
		Notifier: store.ChangeNotifier(), Retention: store.ChangeLogRetention(),
	})
	deps.Repo = states.Repository(deps.Repo)
	authCfg := application.AuthConfig{AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL, States: states}
	imports := application.NewImport(deps)
	sv := application.NewSubscriptions(deps, application.SubscriptionsConfig{
		Notifier: store.ChangeNotifier(), Retention: store.ChangeLogRetention(),
		KeepFor: cfg.ChangeLogRetention, ResumeWindow: cfg.ResumeWindow,
	})
	return &App{
		states:  states,
		cfg:     cfg,
		tokens:  tokens,
		log:     log,
		store:   store,
		authz:   authz,
		limit:   limit,
		users:   application.NewUsers(deps),
		auth:    application.NewAuth(deps, authCfg),
		audit:   application.NewAudit(deps),
		imports: imports,
		// Background imports push their progress to the starter's
		// WebSocket connections through the real-time use case.
		jobs:  application.NewImportJobs(imports, deps, application.ImportJobsConfig{Store: store.ImportJobs(), Notifier: sv}),
		stats: application.NewStats(deps),
		sv:    sv,
	}, nil
}

// newTokens makes the access-token issuer and verifier from the keys the
// configuration names (docs/operations.md, Signing keys), making the key kept beside a
// SQLite database on first start.
func newTokens(cfg Config, log *slog.Logger) (*jwtauth.JWT, error) {
	if cfg.JWTKeyFile != "" {
		created, err := jwtauth.LoadOrCreateKeyFile(cfg.JWTKeyFile)
		if err != nil {
			return nil, fmt.Errorf("the signing key beside the SQLite database: %w", err)
		}
		if created {
			log.Info("generated a signing key for access tokens beside the database; keep it with the database's backups", "file", cfg.JWTKeyFile)
		}
	}
	tokens, err := jwtauth.New(jwtauth.Config{
		Secret: cfg.JWTSecret, KeysDir: cfg.JWTKeysDir, KeyFile: cfg.JWTKeyFile,
		Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, TTL: cfg.AccessTTL, Log: log,
	})
	switch {
	case err != nil && cfg.JWTKeysDir != "":
		return nil, fmt.Errorf("JWT_KEYS_DIR: %w", err)
	case err != nil:
		return nil, fmt.Errorf("JWT_SECRET: %w", err)
	}
	return tokens, nil
}

// keysPollInterval is how often the keys directory is read even without a
// change notice: a shared volume (NFS) tells one host nothing of another's
// writes, and a removed key must stop verifying within a minute.
const keysPollInterval = 30 * time.Second

// watchKeys reloads the JWT keys when JWT_KEYS_DIR changes, and every
// keysPollInterval, until ctx ends.
func (a *App) watchKeys(ctx context.Context) {
	if a.cfg.JWTKeysDir == "" {
		return
	}
	go func() {
		if err := policywatch.WatchDir(ctx, "the JWT keys directory", a.cfg.JWTKeysDir, a.log, a.tokens.Reload); err != nil {
			a.log.Warn("JWT keys directory watcher stopped; keys are still re-read every 30 s", "err", err)
		}
	}()
	go func() {
		tick := time.NewTicker(keysPollInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = a.tokens.Reload() // Reload logs what it rejects
			}
		}
	}()
}

// New builds the service ready to Run: storage opened and migrated, the
// policy loaded, the listener bound (so Addr is known before Run).
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a, err := newApp(ctx, cfg, log, registry)
	if err != nil {
		return nil, err
	}
	if err := a.store.MigrateUp(ctx); err != nil {
		a.Close()
		return nil, fmt.Errorf("applying migrations: %w", err)
	}
	e, err := httpapi.New(httpapi.Deps{
		Users:    a.users,
		Auth:     a.auth,
		Keys:     a.tokens,
		Audit:    a.audit,
		Import:   a.imports,
		Access:   a.users,
		Stats:    a.stats,
		Jobs:     a.jobs,
		Ready:    a.store.Users().Ping,
		Log:      log,
		Registry: registry,
		Version:  Version,
	}, httpapi.Config{TrustedProxies: cfg.TrustedProxies, AllowedOrigins: cfg.AllowedOrigins,
		Issuer: cfg.JWTIssuer, PublicURL: cfg.PublicURL})
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("building the HTTP API: %w", err)
	}
	// After routing (Use, not Pre): limits are per route template.
	e.Use(a.limit.Middleware())
	a.ws, err = realtime.New(realtime.Config{Service: a.sv, Registry: registry, Log: log, Allow: a.limit.Allow,
		AllowedOrigins: cfg.AllowedOrigins})
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("building the WebSocket endpoint: %w", err)
	}
	e.GET(realtime.Path, a.ws.Handle)
	a.http = httpapi.NewHTTPServer(cfg.HTTPAddr, e)
	cfg.setTimeouts(a.http)
	a.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("HTTP_ADDR: %w", err)
	}
	return a, nil
}

// Addr is the address the service listens on.
func (a *App) Addr() string { return a.ln.Addr().String() }

// Run serves until ctx ends, then drains in-flight requests for up to
// shutdownGrace. The policy is reloaded when its files change and on SIGHUP.
func (a *App) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// One watcher for the directory both read: an edit reloads both, and each
	// notices when its own files did not change.
	go func() {
		if err := policywatch.Watch(ctx, a.cfg.PolicyDir, a.log, a.authz.Reload, a.limit.Reload); err != nil {
			a.log.Error("policy directory watcher stopped; edits need SIGHUP now", "err", err)
		}
	}()
	a.watchKeys(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.log.Info("SIGHUP: reloading the policy and the rate limits")
				// A bad file is logged by Reload; what was in force stays.
				_ = a.authz.Reload()
				_ = a.limit.Reload()
				_ = a.tokens.Reload()
			}
		}
	}()

	if err := a.sv.Start(ctx); err != nil {
		return err
	}
	if err := a.states.Start(ctx); err != nil {
		return err
	}
	// Marks failed the import jobs lost with a stopped instance (this one,
	// before a restart), before anyone can ask about them here.
	if err := a.jobs.Start(ctx); err != nil {
		return err
	}

	errc := make(chan error, 1)
	go func() { errc <- a.http.Serve(a.ln) }()
	a.log.Info("serving", "addr", a.Addr(), "version", Version, "database", a.store.Dialect())
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	a.log.Info("shutting down: draining in-flight requests")
	sctx, scancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer scancel()
	// Hijacked WebSocket connections are not drained by http.Server: they
	// are closed first, with 1001, so their clients reconnect elsewhere.
	if err := a.ws.Shutdown(sctx); err != nil {
		a.log.Warn("closing WebSocket connections", "err", err)
	}
	if err := a.http.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	// ctx has ended, so running imports stop at their next batch and mark
	// themselves failed with the reason; wait for that to be written.
	a.jobs.Wait()
	return nil
}

// Close releases the database and the rate-limit store.
func (a *App) Close() {
	if a.limit != nil {
		if err := a.limit.Close(); err != nil {
			a.log.Warn("closing the rate-limit store", "err", err)
		}
	}
	if err := a.store.Close(); err != nil {
		a.log.Warn("closing the database", "err", err)
	}
}

func serve(ctx context.Context, env Env, args []string) error {
	c := newCommand("serve", "",
		"Runs the HTTP API and the WebSocket endpoint on HTTP_ADDR (default :8000), after applying\n"+
			"the database migrations. Configuration comes from the environment (docs/operations.md,\n"+
			"Configuration); with no DATABASE_URL the data lives in ./userservice.db (SQLite).")
	if rest, err := c.parse(env, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return c.misuse(env, "takes no arguments (configuration comes from the environment)")
	}
	cfg, err := loadConfig(env, true)
	if err != nil {
		return err
	}
	log := newLogger(cfg, env.Stderr)
	switch {
	case cfg.JWTSecretRandom:
		log.Warn("the database is in memory: access tokens are signed with a random secret and end with the process")
	case len(cfg.JWTSecret) > 0 && cfg.JWTKeysDir == "" && cfg.JWTKeyFile == "":
		log.Warn("JWT_SECRET is deprecated: access tokens are signed with it (HS256), so every service that can verify them " +
			"can also forge them; set JWT_KEYS_DIR to sign with Ed25519 keys (docs/operations.md, Moving from JWT_SECRET to keys)")
	case len(cfg.JWTSecret) > 0:
		log.Warn("JWT_SECRET is deprecated: tokens are signed with Ed25519 keys, and HS256 tokens signed with JWT_SECRET are " +
			"still accepted; unset it once ACCESS_TOKEN_TTL has passed since the move (docs/operations.md, Moving from JWT_SECRET to keys)")
	}
	app, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer app.Close()
	return app.Run(ctx)
}
