// Package gormstore is the service's persistence: the user repository, the
// change log and the refresh-token store, with GORM on SQLite (embedded,
// zero set-up, pure Go) or PostgreSQL (pgx), and the embedded SQL migrations
// of both dialects, applied with goose.
//
// Database errors are translated here, once: a taken email or id, a missing
// row, an unreachable database become domain errors; everything else is
// internal. Every write appends its change-log entry in the write's own
// transaction, so the entry commits or rolls back with the write; entries
// are numbered in commit order.
package gormstore
