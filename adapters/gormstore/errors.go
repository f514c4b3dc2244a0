package gormstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/userservice/userservice/domain"
)

// Constraint names of the PostgreSQL schema that map to domain errors.
const (
	pgUsersPkey     = "users_pkey"
	pgUsersEmailKey = "users_email_key"
)

// callerError carries an error returned by a caller's closure (UpdateFunc,
// DeleteCheck) through a transaction, so it comes back unchanged instead of
// being translated as a database error.
type callerError struct{ err error }

func (e callerError) Error() string { return e.err.Error() }

// translate turns a database error into the service's vocabulary. It runs
// once, at the edge of every exported method. users says whether a unique
// violation can only come from the users table, where it means a taken email
// or id; elsewhere it is unexpected and stays internal.
func translate(ctx context.Context, err error, users bool) error {
	if err == nil {
		return nil
	}
	if ce, ok := errors.AsType[callerError](err); ok {
		return ce.err
	}
	if de := domain.AsError(err); de != nil {
		return err
	}
	// A cancelled or expired request surfaces as whatever the driver saw
	// (a cancelled query, a closed connection); report the real reason.
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("gormstore: %w", err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("gormstore: %w (%w)", ctxErr, err)
	}
	if errors.Is(err, gorm.ErrRecordNotFound) || errors.Is(err, sql.ErrNoRows) {
		return domain.ErrNotFound.Wrap(err)
	}
	if users {
		switch uniqueViolation(err) {
		case pgUsersEmailKey:
			return domain.ErrEmailTaken.Wrap(err)
		case pgUsersPkey:
			return domain.ErrIDTaken.Wrap(err)
		}
	}
	if unavailable(err) {
		return domain.ErrUnavailable.Wrap(err)
	}
	return fmt.Errorf("gormstore: %w", err)
}

// uniqueViolation names the users constraint err violates: pgUsersEmailKey,
// pgUsersPkey, or "" when err is not a unique violation of either. SQLite
// errors name no constraint, but its extended codes tell the primary key
// from the one other unique index of users, on email.
func uniqueViolation(err error) string {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		if pgErr.Code == "23505" && (pgErr.ConstraintName == pgUsersEmailKey || pgErr.ConstraintName == pgUsersPkey) {
			return pgErr.ConstraintName
		}
		return ""
	}
	if liteErr, ok := errors.AsType[*gosqlite.Error](err); ok {
		switch liteErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return pgUsersEmailKey
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return pgUsersPkey
		}
	}
	return ""
}

// unavailable reports whether err means the database cannot be reached or
// is not serving: the request may succeed later, so clients get a 503.
func unavailable(err error) bool {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch {
		case len(pgErr.Code) == 5 && pgErr.Code[:2] == "08": // connection exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // admin/crash shutdown, cannot connect now
			return true
		case pgErr.Code == "53300": // too many connections
			return true
		}
		return false
	}
	if liteErr, ok := errors.AsType[*gosqlite.Error](err); ok {
		switch liteErr.Code() & 0xff { // the primary code of an extended one
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR:
			return true
		}
		return false
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return pgconn.SafeToRetry(err) ||
		errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// expected reports whether err is one the repository turns into an ordinary
// answer (not found, conflict, cancelled), so the SQL logger stays quiet.
func expected(err error) bool {
	return errors.Is(err, gorm.ErrRecordNotFound) ||
		errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) ||
		uniqueViolation(err) != ""
}
