// Package security attacks the running service the way attackers and broken
// clients do, one suite per item of the OWASP API Security Top 10 (2023)
// that applies to it, and checks each attack's refusal. Every test names
// its item (TestAPI1_..., TestAPI2_...); SECURITY.md has the table of the
// items covered and of those that do not apply, with the reason.
//
// The suites boot the real service in-process (tests/harness) on SQLite and
// on PostgreSQL, so that the answer checked is the one a client gets; every
// answer is checked for 5xx and its error shape, and everything the service
// said, answered or logged is scanned for secrets when each test ends.
package security
