// Package testdb gives each test its own empty PostgreSQL database and its own Redis
// logical database, on a server chosen once per test binary, in this order:
//
//  1. the developer's own server: TEST_DATABASE_URL (a postgres:// URL whose user may
//     CREATE DATABASE) or TEST_REDIS_URL (a redis:// URL);
//  2. a container started with testcontainers-go from TEST_POSTGRES_IMAGE (default
//     postgres:15) or TEST_REDIS_IMAGE (default redis:7). Where no registry is
//     reachable, build local images first with tests/images/postgres/build.sh and
//     tests/images/redis/build.sh and point those variables at them;
//  3. for PostgreSQL, a throwaway cluster started from the host's server binaries
//     (PG_BIN, else initdb on PATH) by tests/pgcluster, the code `make bench` uses:
//     one per test binary, on a free loopback port, in a temporary folder, stopped
//     when the tests end (as the postgres user when the tests run as root);
//  4. otherwise the test is skipped with one line saying how to provide a server, or
//     fails if TEST_REQUIRE_DB=1 (CI sets it, so CI cannot pass by skipping).
//
// "No Docker" means that no engine answers within a few seconds; when DOCKER_HOST is
// set, that engine alone counts. Where the tests run in a container beside the
// engine, TESTCONTAINERS_HOST_OVERRIDE=localhost is needed (see tests/images/README.md).
//
// A package whose tests use this helper must terminate the containers itself, because
// CI runs with Ryuk (testcontainers' reaper) disabled:
//
//	func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }
//
// PostgresURL and RedisURL fail the test when that TestMain is missing, so a leak
// cannot go unnoticed.
package testdb

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"

	"github.com/userservice/userservice/tests/pgcluster"
)

// Environment variables read by this package.
const (
	EnvPostgresURL   = "TEST_DATABASE_URL"
	EnvPostgresImage = "TEST_POSTGRES_IMAGE"
	EnvRedisURL      = "TEST_REDIS_URL"
	EnvRedisImage    = "TEST_REDIS_IMAGE"
	EnvRequire       = "TEST_REQUIRE_DB"
)

const (
	defaultPostgresImage = "postgres:15"
	defaultRedisImage    = "redis:7"

	// dockerPingTimeout bounds the check for a Docker engine, so that a machine
	// without one (or with a stuck one) skips quickly instead of hanging.
	dockerPingTimeout = 5 * time.Second
	// startTimeout bounds starting a container, initdb included.
	startTimeout = 2 * time.Minute
	// adminTimeout bounds creating or dropping one database.
	adminTimeout = 30 * time.Second
)

// servers is this package's one piece of package-level mutable state, on purpose: a
// test binary's tests share one server of each kind (a container per test would cost
// seconds each, and the server is only the place where each test's own database
// lives), and testing.M offers no other place to keep it from TestMain to the tests.
// Each server is started at most once, under sync.Once, on first use.
var servers = &registry{}

type registry struct {
	// mainRunning is set by Run; without it nobody would terminate the containers.
	mainRunning atomic.Bool
	postgres    lazyServer
	redis       lazyServer
}

// lazyServer is a server of one kind, found or started on first use.
type lazyServer struct {
	once sync.Once
	// url is the server's address for administration (CREATE DATABASE, claims).
	url string
	// unavailable says why there is no server and how to provide one; tests skip
	// with it (or fail under TEST_REQUIRE_DB=1).
	unavailable string
	// err is a misconfiguration that must fail every test, e.g. a malformed URL.
	err error
	// terminate stops the container; nil when none was started.
	terminate func(context.Context) error
}

// found is what a start function reports.
type found struct {
	url         string
	unavailable string
	err         error
	terminate   func(context.Context) error
}

// Run runs the tests, then terminates the containers this package started for them.
// Call it from TestMain: os.Exit(testdb.Run(m)).
func Run(m *testing.M) int {
	servers.mainRunning.Store(true)
	code := m.Run()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range []*lazyServer{&servers.postgres, &servers.redis} {
		if s.terminate == nil {
			continue
		}
		if err := s.terminate(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "testdb: terminating a test container: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// server returns the server's administration URL, starting it on first use; it
// skips or fails t when there is none.
func (s *lazyServer) server(t testing.TB, start func(context.Context) found) string {
	t.Helper()
	if !servers.mainRunning.Load() {
		t.Fatal("testdb: this package needs func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }, which terminates the test containers")
	}
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		f := start(ctx)
		s.url, s.unavailable, s.err, s.terminate = f.url, f.unavailable, f.err, f.terminate
	})
	switch {
	case s.err != nil:
		t.Fatalf("testdb: %v", s.err)
	case s.unavailable != "" && os.Getenv(EnvRequire) == "1":
		t.Fatal(s.unavailable)
	case s.unavailable != "":
		t.Skip(s.unavailable)
	}
	return s.url
}

// dockerUnavailable returns why no Docker engine answers, or "" when one does.
func dockerUnavailable(ctx context.Context) (reason string) {
	ctx, cancel := context.WithTimeout(ctx, dockerPingTimeout)
	defer cancel()
	// testcontainers goes on to the default socket when DOCKER_HOST does not answer;
	// but whoever sets DOCKER_HOST means that engine (or, set to a dead address, none),
	// so it alone is asked then.
	if host := os.Getenv("DOCKER_HOST"); host != "" {
		cli, err := client.New(client.FromEnv)
		if err != nil {
			return fmt.Sprintf("DOCKER_HOST=%s: %v", host, err)
		}
		_, err = cli.Ping(ctx, client.PingOptions{})
		if cerr := cli.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Sprintf("DOCKER_HOST=%s: %v", host, err)
		}
	}
	// testcontainers panics on some environment problems (its Must* look-ups of the
	// Docker host, a malformed TESTCONTAINERS_SESSION_ID); that means "no usable
	// Docker" just as an error does.
	defer func() {
		if r := recover(); r != nil {
			reason = fmt.Sprint(r)
		}
	}()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return err.Error()
	}
	if err := cli.Close(); err != nil {
		return err.Error()
	}
	return ""
}

// startFailure describes a container that would not start, with the settings that
// machines without a registry, or running tests inside a container next to their
// Docker engine, need (see tests/images/README.md).
func startFailure(image string, err error) string {
	msg := fmt.Sprintf("starting %s: %v", image, err)
	lower := strings.ToLower(msg)
	if strings.Contains(lower, "ryuk") || strings.Contains(lower, "reaper") {
		msg += "; with no registry, set TESTCONTAINERS_RYUK_DISABLED=true (Ryuk's image cannot be pulled)"
	}
	// Inside a container, testcontainers reaches published ports through a gateway
	// address, which is wrong when the engine runs beside the tests.
	if strings.Contains(lower, "wait until ready") && os.Getenv("TESTCONTAINERS_HOST_OVERRIDE") == "" {
		msg += "; if the engine runs on this machine, set TESTCONTAINERS_HOST_OVERRIDE=localhost"
	}
	return msg
}

// oneLine flattens a message (Docker errors can span lines) so a skip stays one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// PostgresURL returns the URL of a new, empty PostgreSQL database (UTF8, from
// template0) that only this test uses; it is dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := servers.postgres.server(t, startPostgres)
	name := "test_" + strings.ToLower(rand.Text())

	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := adminExec(ctx, base, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
		t.Fatalf("testdb: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		// FORCE (PostgreSQL 13+) ends connections the test left open.
		if err := adminExec(ctx, base, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testdb: dropping database %s: %v", name, err)
		}
	})

	u, err := url.Parse(base)
	if err != nil { // base was parsed when the server was chosen
		t.Fatalf("testdb: %v", err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// adminExec runs one statement on its own connection: CREATE and DROP DATABASE cannot
// run inside a transaction, and tests create databases rarely enough that a pool
// would only add state.
func adminExec(ctx context.Context, serverURL, sql string) (err error) {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		if cerr := conn.Close(ctx); cerr != nil && err == nil {
			err = fmt.Errorf("closing: %w", cerr)
		}
	}()
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

func postgresUnavailable(reason string) string {
	return oneLine(fmt.Sprintf("testdb: no PostgreSQL server (%s); set %s=postgres://user:password@host:5432/postgres, "+
		"or install PostgreSQL's server binaries (Debian: apt-get install postgresql-15; %s=their folder), "+
		"or run a Docker engine (with no registry: tests/images/postgres/build.sh, then %s=userservice-test-postgres:15); "+
		"%s=1 turns this skip into a failure", reason, EnvPostgresURL, pgcluster.EnvBin, EnvPostgresImage, EnvRequire))
}

// clusterSettings make the throwaway cluster fast (nothing in it must survive a
// crash) and roomy enough for test packages that run many tests at once.
var clusterSettings = []string{
	"fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=300",
}

// startPostgres finds a server: the developer's, a container, or a cluster from
// the host's binaries, in that order.
func startPostgres(ctx context.Context) found {
	if raw := os.Getenv(EnvPostgresURL); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			return found{err: fmt.Errorf("%s must be a URL such as postgres://user:password@localhost:5432/postgres", EnvPostgresURL)}
		}
		return found{url: raw}
	}
	f := startPostgresContainer(ctx)
	if f.unavailable == "" {
		return f
	}
	c, err := pgcluster.Start(ctx, pgcluster.Options{Bin: os.Getenv(pgcluster.EnvBin), Settings: clusterSettings})
	if err != nil {
		var stopErr error
		if c != nil {
			stopErr = c.Stop()
		}
		return found{unavailable: postgresUnavailable(fmt.Sprintf("%s; and no cluster from the host's binaries: %v",
			strings.TrimPrefix(f.unavailable, "testdb: "), errors.Join(err, stopErr)))}
	}
	return found{url: c.URL("postgres"), terminate: func(context.Context) error { return c.Stop() }}
}

// startPostgresContainer starts a server with testcontainers; unavailable says
// why it could not.
func startPostgresContainer(ctx context.Context) found {
	if reason := dockerUnavailable(ctx); reason != "" {
		return found{unavailable: "no Docker engine: " + reason}
	}
	image := envOr(EnvPostgresImage, defaultPostgresImage)
	ctr, err := tcpostgres.Run(ctx, image,
		tcpostgres.BasicWaitStrategies(),
		// The data directory is thrown away, so syncing it is wasted time.
		testcontainers.WithEnv(map[string]string{"POSTGRES_INITDB_ARGS": "--no-sync"}),
	)
	terminate := func(ctx context.Context) error {
		return testcontainers.TerminateContainer(ctr, testcontainers.StopContext(ctx))
	}
	if err != nil {
		return found{unavailable: startFailure(image, errors.Join(err, terminate(ctx)))}
	}
	u, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		return found{err: fmt.Errorf("address of the %s container: %w", image, errors.Join(err, terminate(ctx)))}
	}
	return found{url: u, terminate: terminate}
}

func redisUnavailable(reason string) string {
	return oneLine(fmt.Sprintf("testdb: no Redis server (%s); set %s=redis://host:6379, "+
		"or run a Docker engine (with no registry: tests/images/redis/build.sh, then %s=userservice-test-redis:7); "+
		"%s=1 turns this skip into a failure", reason, EnvRedisURL, EnvRedisImage, EnvRequire))
}

func startRedis(ctx context.Context) found {
	if raw := os.Getenv(EnvRedisURL); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "redis" || u.Host == "" {
			return found{err: fmt.Errorf("%s must be a URL such as redis://localhost:6379 (TLS is not supported here)", EnvRedisURL)}
		}
		return found{url: raw}
	}
	if reason := dockerUnavailable(ctx); reason != "" {
		return found{unavailable: redisUnavailable("no Docker engine: " + reason)}
	}
	image := envOr(EnvRedisImage, defaultRedisImage)
	ctr, err := tcredis.Run(ctx, image)
	terminate := func(ctx context.Context) error {
		return testcontainers.TerminateContainer(ctr, testcontainers.StopContext(ctx))
	}
	if err != nil {
		return found{
			unavailable: redisUnavailable(startFailure(image, errors.Join(err, terminate(ctx)))),
		}
	}
	u, err := ctr.ConnectionString(ctx)
	if err != nil {
		return found{err: fmt.Errorf("address of the %s container: %w", image, errors.Join(err, terminate(ctx)))}
	}
	return found{url: u, terminate: terminate}
}
