// Package harness boots the real service in-process for the suites under
// tests/ that drive it over HTTP and WebSocket as a client does:
// bootstrap.New on a loopback port, against a SQLite file or PostgreSQL
// (tests/testdb), with the shipped policy copied to a directory of the
// test's own.
//
// Every answer the suites receive passes through Service.Do, which fails
// the test on any 5xx and on an error body that is not {"detail", "code"}.
// Every answer, WebSocket message and log line is kept, and when the test
// ends it is scanned for the secrets the test handled (passwords, tokens,
// hashes, the JWT secret): docs/api.md, Users says none may ever appear.
//
// A package using the harness with PostgreSQL needs
//
//	func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }
package harness
