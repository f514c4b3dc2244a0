// Package bench holds the benchmarks of `make bench`: each scenario is
// measured beside a baseline run in the same process, on the same machine,
// in the same run, and the ratios go into one table (printed at the end and
// written as JSON under tests/bench/results/, which git ignores).
//
// Everything is in _test.go files, run by Benchmark functions only:
// `go test ./...` compiles them and runs nothing heavy. The benchmarks start
// what they need on first use (setup): a throwaway PostgreSQL cluster from
// the host's binaries (initdb + postgres on a loopback port, as the
// "postgres" user when run as root, since initdb refuses root), a database
// of generated users (tests/gen, loaded with COPY), and the service from this
// tree, in-process (bootstrap.New), with a copy of the policies whose rate
// limits are raised out of the way (the limiter still runs).
//
// Settings, all optional, from the environment:
//
//	BENCH_USERS         users to load (default 1000000)
//	BENCH_DURATION      measured time of each run (default 10s; a warm-up comes first)
//	BENCH_SEED          the generator's seed (default 1)
//	BENCH_DATABASE_URL  use this PostgreSQL server instead of starting one
//	                    (a user that may CREATE DATABASE; pgbench must reach it)
//	PG_BIN              where initdb, postgres and pgbench are
//	                    (default /usr/lib/postgresql/15/bin, then PATH)
//
// Adding rows (other benchmark files of this package): call setup(b) for
// the shared environment, measure with load (a Go load generator) or
// pgbench, and hand each comparison to record(Row{...}); the table and the
// JSON pick it up.
package bench
