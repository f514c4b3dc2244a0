// Package integration drives the real service in-process, over HTTP, the way
// a client does: bootstrap.New on a loopback port, against a SQLite file and
// against PostgreSQL, with the shipped policy copied to a directory of the
// test's own (tests/harness, shared with tests/security and tests/soak). Its tests cover the permission matrix of docs/api.md, Roles through
// every REST endpoint of §3, attacks on tokens, live policy edits, paging,
// and, over every response and log line of every run, the promise that no
// password, hash, token or secret ever leaks.
package integration
