package testdb

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/userservice/userservice/tests/pgcluster"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

func connectPostgres(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func TestPostgresURLGivesEachCallItsOwnEmptyDatabase(t *testing.T) {
	t.Parallel()
	urlA, urlB := PostgresURL(t), PostgresURL(t)
	if urlA == urlB {
		t.Fatalf("two calls returned the same URL %s", urlA)
	}
	a, b := connectPostgres(t, urlA), connectPostgres(t, urlB)

	for _, c := range []*pgx.Conn{a, b} {
		var tables int
		if err := c.QueryRow(t.Context(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("new database has %d tables, want 0", tables)
		}
		var encoding string
		if err := c.QueryRow(t.Context(), `SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()`).Scan(&encoding); err != nil {
			t.Fatal(err)
		}
		if encoding != "UTF8" {
			t.Errorf("encoding = %s, want UTF8", encoding)
		}
	}

	if _, err := a.Exec(t.Context(), `CREATE TABLE only_in_a (id int)`); err != nil {
		t.Fatal(err)
	}
	var inA, inB *string
	if err := a.QueryRow(t.Context(), `SELECT to_regclass('public.only_in_a')::text`).Scan(&inA); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(t.Context(), `SELECT to_regclass('public.only_in_a')::text`).Scan(&inB); err != nil {
		t.Fatal(err)
	}
	if inA == nil {
		t.Error("the table created in the first database is not there")
	}
	if inB != nil {
		t.Error("the table created in the first database is visible in the second")
	}
}

func TestPostgresDatabaseIsDroppedWhenTheTestEnds(t *testing.T) {
	t.Parallel()
	observer := connectPostgres(t, PostgresURL(t))
	var name string
	t.Run("user", func(t *testing.T) {
		c := connectPostgres(t, PostgresURL(t))
		// The open connection also checks that the drop does not wait for it.
		if err := c.QueryRow(t.Context(), `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	var left int
	if err := observer.QueryRow(t.Context(), `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func connectRedis(t *testing.T, url string) *redisConn {
	t.Helper()
	c, err := dialRedis(t.Context(), url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRedisURLGivesEachCallItsOwnEmptyDatabase(t *testing.T) {
	t.Parallel()
	urlA, urlB := RedisURL(t), RedisURL(t)
	if urlA == urlB {
		t.Fatalf("two calls returned the same URL %s", urlA)
	}
	a, b := connectRedis(t, urlA), connectRedis(t, urlB)

	for _, c := range []*redisConn{a, b} {
		if size, _, err := c.do("DBSIZE"); err != nil || size != "0" {
			t.Errorf("new database: DBSIZE = %q, %v; want 0", size, err)
		}
	}
	if _, _, err := a.do("SET", "only-in-a", "1"); err != nil {
		t.Fatal(err)
	}
	if v, null, err := a.do("GET", "only-in-a"); err != nil || null || v != "1" {
		t.Errorf("GET in the first database = %q, null %v, %v; want 1", v, null, err)
	}
	if v, null, err := b.do("GET", "only-in-a"); err != nil || !null {
		t.Errorf("GET in the second database = %q, null %v, %v; want a null reply", v, null, err)
	}
}

func TestRedisDatabaseIsEmptiedAndFreedWhenTheTestEnds(t *testing.T) {
	t.Parallel()
	RedisURL(t) // holds one database throughout, and skips here when there is no server
	// More tests in a row than there are databases: each must get one, so each
	// ended test must have given its database back.
	var urls []string
	for i := redisFirstDB; i <= redisLastDB+1; i++ {
		t.Run("user", func(t *testing.T) {
			u := RedisURL(t)
			if _, _, err := connectRedis(t, u).do("SET", "left-behind", "1"); err != nil {
				t.Fatal(err)
			}
			urls = append(urls, u)
		})
		if t.Failed() {
			t.FailNow()
		}
	}
	// Another test may have claimed these databases meanwhile, so look at them
	// directly rather than through RedisURL: they must have been emptied.
	for _, u := range urls {
		if n, _, err := connectRedis(t, u).do("EXISTS", "left-behind"); err != nil || n != "0" {
			t.Errorf("%s after its test ended: EXISTS left-behind = %q, %v; want 0", u, n, err)
		}
	}
}

// serverlessEnv is this process's environment with no server configured, no
// Docker engine reachable and, unless withBinaries, no PostgreSQL server binaries
// (PG_BIN pointing nowhere, and PATH without any folder holding initdb).
func serverlessEnv(withBinaries bool) []string {
	env := []string{"DOCKER_HOST=unix:///nonexistent/docker.sock"}
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		switch name {
		case EnvPostgresURL, EnvRedisURL, EnvRequire, "DOCKER_HOST":
		case pgcluster.EnvBin:
			if withBinaries {
				env = append(env, kv)
			}
		case "PATH":
			if withBinaries {
				env = append(env, kv)
				continue
			}
			var dirs []string
			for _, dir := range filepath.SplitList(value) {
				if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
					dirs = append(dirs, dir)
				}
			}
			env = append(env, "PATH="+strings.Join(dirs, string(filepath.ListSeparator)))
		default:
			env = append(env, kv)
		}
	}
	if !withBinaries {
		env = append(env, pgcluster.EnvBin+"=/nonexistent")
	}
	return env
}

// TestWithoutServersTestsSkipOrFail runs this test binary again with no server
// configured, no Docker engine reachable and no PostgreSQL binaries: the database
// tests must skip with one line saying how to provide a server, or fail when
// TEST_REQUIRE_DB=1.
func TestWithoutServersTestsSkipOrFail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ test, hint string }{
		{"TestPostgresURLGivesEachCallItsOwnEmptyDatabase", EnvPostgresURL + "="},
		{"TestRedisURLGivesEachCallItsOwnEmptyDatabase", EnvRedisURL + "="},
	} {
		for _, require := range []bool{false, true} {
			env := serverlessEnv(false)
			if require {
				env = append(env, EnvRequire+"=1")
			}
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+tc.test+"$", "-test.v")
			cmd.Env = env
			out, err := cmd.CombinedOutput()

			var hints []string
			for line := range strings.Lines(string(out)) {
				if strings.Contains(line, tc.hint) {
					hints = append(hints, line)
				}
			}
			if len(hints) != 1 {
				t.Errorf("%s (require=%v): %d lines mention %s, want 1; output:\n%s", tc.test, require, len(hints), tc.hint, out)
			}
			wantStatus := "--- SKIP: " + tc.test
			if require {
				wantStatus = "--- FAIL: " + tc.test
			}
			if !bytes.Contains(out, []byte(wantStatus)) || (err != nil) != require {
				t.Errorf("%s (require=%v): exit error %v, want %q; output:\n%s", tc.test, require, err, wantStatus, out)
			}
		}
	}
}

// TestHostBinariesServePostgres runs the PostgreSQL test again with no server
// configured and no Docker engine, but with the host's PostgreSQL binaries: it
// must pass on a throwaway cluster.
func TestHostBinariesServePostgres(t *testing.T) {
	t.Parallel()
	if _, err := pgcluster.FindTool(os.Getenv(pgcluster.EnvBin), "initdb"); err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s=1 and no PostgreSQL binaries: %v", EnvRequire, err)
		}
		t.Skipf("no PostgreSQL server binaries here: %v", err)
	}
	const test = "TestPostgresURLGivesEachCallItsOwnEmptyDatabase"
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(serverlessEnv(true), EnvRequire+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+test)) {
		t.Fatalf("with the host's binaries: %v\n%s", err, out)
	}
}
