package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/userservice/userservice/adapters/passwords"
	"github.com/userservice/userservice/bootstrap"
	"github.com/userservice/userservice/tests/gen"
	"github.com/userservice/userservice/tests/pgcluster"
)

// shared is the run's one environment and report, on purpose package-level
// state: benchmarks share one database of a million users and one service
// (loading them again per benchmark would take minutes), and testing.M
// offers no other place to keep them from the first benchmark to TestMain,
// which prints the report and stops the environment.
var shared = &state{report: report{started: time.Now()}}

type state struct {
	once      sync.Once
	env       *env
	err       error
	closeOnce sync.Once
	closeErr  error
	report    report
}

// env is what the benchmarks run against.
type env struct {
	cfg      config
	cluster  *pgcluster.Cluster // nil with BENCH_DATABASE_URL
	policies string             // the policy directory's copy
	dbURL    string             // the bench database
	adminURL string             // the server, for CREATE and DROP DATABASE
	dbName   string
	app      *bootstrap.App
	stop     context.CancelFunc
	served   chan error
	base     string // http://127.0.0.1:port/api/v1
	token    string // an admin's access token
	password string // every loaded user's password
	hash     string // its argon2id hash
	// statements reports whether pg_stat_statements is loaded.
	statements bool
	// secret and ttl are the service's JWT_SECRET and access-token lifetime.
	secret []byte
	ttl    time.Duration
}

// config is read from the environment (see the package comment).
type config struct {
	users    int
	duration time.Duration
	seed     uint64
	dbURL    string
	pgBin    string
}

func readConfig() (config, error) {
	c := config{users: 1_000_000, duration: 10 * time.Second, seed: 1, dbURL: os.Getenv("BENCH_DATABASE_URL"),
		pgBin: "/usr/lib/postgresql/15/bin"}
	var errs []error
	if s := os.Getenv("BENCH_USERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1000 {
			errs = append(errs, fmt.Errorf("BENCH_USERS=%q: want a number of users, at least 1000", s))
		}
		c.users = n
	}
	if s := os.Getenv("BENCH_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 500*time.Millisecond {
			errs = append(errs, fmt.Errorf("BENCH_DURATION=%q: want a duration of at least 500ms", s))
		}
		c.duration = d
	}
	if s := os.Getenv("BENCH_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("BENCH_SEED=%q: want a number", s))
		}
		c.seed = n
	}
	if s := os.Getenv("PG_BIN"); s != "" {
		c.pgBin = s
	}
	return c, errors.Join(errs...)
}

// setup returns the shared environment, starting it on first use; it fails
// b when it cannot start.
func setup(b *testing.B) *env {
	b.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		shared.env, shared.err = start(ctx)
	})
	if shared.err != nil {
		b.Fatalf("bench: %v", shared.err)
	}
	return shared.env
}

// close stops what setup started, once (TestMain and an interrupt may both
// ask).
func (s *state) close() error {
	s.closeOnce.Do(func() {
		if s.env != nil {
			s.closeErr = s.env.close()
		}
	})
	return s.closeErr
}

func start(ctx context.Context) (e *env, err error) {
	cfg, err := readConfig()
	if err != nil {
		return nil, err
	}
	if l := loadAverage(); l != "" {
		fact("load average (1, 5, 15 min) at the start: %s", l)
	}
	e = &env{cfg: cfg, password: "bench-password-1"}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.close())
			e = nil
		}
	}()
	if cfg.dbURL != "" {
		e.adminURL = cfg.dbURL
	} else {
		if e.cluster, err = pgcluster.Start(ctx, pgcluster.Options{Bin: cfg.pgBin, Settings: clusterSettings, Preload: []string{"pg_stat_statements"}}); err != nil {
			return e, err
		}
		e.adminURL = e.cluster.URL("postgres")
	}
	if err := e.createDatabase(ctx); err != nil {
		return e, err
	}
	hash, err := passwords.NewArgon2id(passwords.DefaultParams()).Hash(e.password)
	if err != nil {
		return e, err
	}
	e.hash = hash
	if err := e.startService(ctx); err != nil {
		return e, err
	}
	if err := e.loadUsers(ctx); err != nil {
		return e, err
	}
	return e, e.login(ctx)
}

// createDatabase makes a database of its own on the server.
func (e *env) createDatabase(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		return err
	}
	if e.cluster != nil {
		fact("PostgreSQL %s, a throwaway cluster on loopback: %s", version, strings.Join(clusterSettings, " "))
	} else {
		fact("PostgreSQL %s at BENCH_DATABASE_URL", version)
	}
	e.dbName = fmt.Sprintf("bench_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+e.dbName+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
		return fmt.Errorf("creating the bench database: %w", err)
	}
	u, err := url.Parse(e.adminURL)
	if err != nil {
		return err
	}
	u.Path = "/" + e.dbName
	e.dbURL = u.String()
	return nil
}

// startService boots the service from this tree in this process, on a
// loopback port, with the shipped policies but rate limits raised.
func (e *env) startService(ctx context.Context) error {
	policies, err := generousPolicies()
	if err != nil {
		return err
	}
	e.policies = policies
	cfg := bootstrap.Config{
		DatabaseURL: e.dbURL,
		HTTPAddr:    "127.0.0.1:0",
		JWTSecret:   []byte("bench-secret-bench-secret-bench-secret!"),
		AccessTTL:   2 * time.Hour,
		RefreshTTL:  24 * time.Hour,
		PolicyDir:   policies,
		LogLevel:    slog.LevelWarn,
		LogFormat:   "text",
	}
	e.secret, e.ttl = cfg.JWTSecret, cfg.AccessTTL
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e.app, err = bootstrap.New(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("starting the service: %w", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	e.stop, e.served = stop, make(chan error, 1)
	go func() { e.served <- e.app.Run(runCtx) }()
	e.base = "http://" + e.app.Addr() + "/api/v1"
	return nil
}

// budgets and intervals match the budget and the interval of every
// rate-limit rule.
var (
	budgets   = regexp.MustCompile(`(?m)^(\s*tokens:\s*)\d+`)
	intervals = regexp.MustCompile(`(?m)^(\s*interval:\s*)\S+`)
)

// generousPolicies copies the shipped policy directory with every rate
// limit raised far above what a benchmark sends: the limiter still runs on
// every request, it just never refuses one. The budget is 10,000 every
// 100 ms (100,000 a second, above what two cores serve on any route; the
// token-only route reaches about 30,000 a second) rather than millions a
// minute because go-limiter's memory store refills a bucket with at most
// interval/tokens tokens (in nanoseconds) per interval: a budget above the
// square root of the interval in nanoseconds (10,000 for 100 ms, about
// 245,000 for a minute) is full once, then refills to much less.
func generousPolicies() (string, error) {
	src := filepath.Join("..", "..", "policies")
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "userservice-bench-policies-")
	if err != nil {
		return "", err
	}
	for _, en := range entries {
		b, err := os.ReadFile(filepath.Join(src, en.Name()))
		if err == nil && en.Name() == "ratelimits.yaml" {
			b = budgets.ReplaceAll(b, []byte("${1}10000"))
			b = intervals.ReplaceAll(b, []byte("${1}100ms"))
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, en.Name()), b, 0o644)
		}
		if err != nil {
			return "", errors.Join(err, os.RemoveAll(dir))
		}
	}
	return dir, nil
}

// loadUsers loads the generated users, all with the same password.
func (e *env) loadUsers(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	start := time.Now()
	took, err := gen.CopyPostgres(ctx, conn, gen.LoadOptions{Seed: e.cfg.seed, N: e.cfg.users, PasswordHash: e.hash, RebuildIndexes: true})
	if err != nil {
		return fmt.Errorf("loading users: %w", err)
	}
	var size string
	if err := conn.QueryRow(ctx, "SELECT pg_size_pretty(pg_total_relation_size('users'))").Scan(&size); err != nil {
		return err
	}
	fact("users: %d generated (seed %d), loaded in %.1f s (COPY and index builds %.1f s, then VACUUM ANALYZE); table and indexes %s",
		e.cfg.users, e.cfg.seed, time.Since(start).Seconds(), took.Seconds(), size)
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err == nil {
		var loaded bool
		err := conn.QueryRow(ctx, "SELECT count(*) > 0 FROM pg_settings WHERE name = 'shared_preload_libraries' AND setting LIKE '%pg_stat_statements%'").Scan(&loaded)
		e.statements = err == nil && loaded
	}
	return nil
}

// login gets an access token for the first generated admin.
func (e *env) login(ctx context.Context) error {
	g := gen.New(e.cfg.seed, e.cfg.users)
	for range e.cfg.users {
		u := g.Next()
		if u.Role != "admin" {
			continue
		}
		body := url.Values{"username": {u.Email}, "password": {e.password}}.Encode()
		b, err := call(ctx, httpClient(1), "POST", e.base+"/auth/token", "", "application/x-www-form-urlencoded", body, 200)
		if err != nil {
			return fmt.Errorf("logging in as %s: %w", u.Email, err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(b, &tok); err != nil || tok.AccessToken == "" {
			return fmt.Errorf("logging in as %s: no token in %s", u.Email, b)
		}
		e.token = tok.AccessToken
		return nil
	}
	return errors.New("no generated user is an admin: load more users")
}

func (e *env) close() error {
	var errs []error
	if e.app != nil {
		if e.stop != nil {
			e.stop()
			if err := <-e.served; err != nil {
				errs = append(errs, err)
			}
		}
		e.app.Close()
	}
	if e.dbName != "" && e.cluster == nil {
		// Someone else's server: leave it as it was.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if conn, err := pgx.Connect(ctx, e.adminURL); err != nil {
			errs = append(errs, err)
		} else {
			_, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+e.dbName+" WITH (FORCE)")
			errs = append(errs, err, conn.Close(ctx))
		}
	}
	if e.cluster != nil {
		errs = append(errs, e.cluster.Stop())
	}
	if e.policies != "" {
		errs = append(errs, os.RemoveAll(e.policies))
	}
	return errors.Join(errs...)
}

// clusterSettings are the throwaway cluster's settings: room for the whole
// table in memory; durability off (nothing here must survive a crash), as
// CI databases commonly run.
var clusterSettings = []string{
	"shared_buffers=1GB", "fsync=off", "synchronous_commit=off", "full_page_writes=off",
	"max_wal_size=8GB", "checkpoint_timeout=30min", "maintenance_work_mem=512MB",
	"max_connections=200",
}
