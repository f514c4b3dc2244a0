// Package contract holds the behaviour every implementation of a driven
// port must show, as one suite run against each implementation: the
// repository suite against SQLite and PostgreSQL (gormstore), and the
// property test that holds SQL search equal to domain.Filter.Matches.
// PostgreSQL comes from tests/testdb; without one those runs are skipped.
package contract
