package gormstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/userservice/userservice/domain"
)

func TestTranslate(t *testing.T) {
	t.Parallel()
	emailTaken := &pgconn.PgError{Code: "23505", ConstraintName: "users_email_key"}
	idTaken := &pgconn.PgError{Code: "23505", ConstraintName: "users_pkey"}
	otherUnique := &pgconn.PgError{Code: "23505", ConstraintName: "refresh_tokens_pkey"}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, c := range []struct {
		name  string
		err   error
		users bool
		want  error       // errors.Is target
		kind  domain.Kind // and the kind of the result
		cause error       // still in the chain, for the logs
	}{
		{"email unique violation", fmt.Errorf("insert: %w", emailTaken), true, domain.ErrEmailTaken, domain.KindConflict, emailTaken},
		{"primary key violation", idTaken, true, domain.ErrIDTaken, domain.KindConflict, idTaken},
		{"unique violation outside users", emailTaken, false, emailTaken, domain.KindInternal, emailTaken},
		{"unknown constraint", otherUnique, true, otherUnique, domain.KindInternal, otherUnique},
		{"record not found", gorm.ErrRecordNotFound, true, domain.ErrNotFound, domain.KindNotFound, gorm.ErrRecordNotFound},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, false, domain.ErrUnavailable, domain.KindUnavailable, nil},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true, domain.ErrUnavailable, domain.KindUnavailable, nil},
		{"too many connections", &pgconn.PgError{Code: "53300"}, false, domain.ErrUnavailable, domain.KindUnavailable, nil},
		{"connection refused", refused, false, domain.ErrUnavailable, domain.KindUnavailable, syscall.ECONNREFUSED},
		{"connection closed", io.ErrUnexpectedEOF, false, domain.ErrUnavailable, domain.KindUnavailable, io.ErrUnexpectedEOF},
		{"bad connection", driver.ErrBadConn, false, domain.ErrUnavailable, domain.KindUnavailable, driver.ErrBadConn},
		{"cancelled", fmt.Errorf("query: %w", context.Canceled), false, context.Canceled, domain.KindInternal, nil},
		{"deadline", context.DeadlineExceeded, false, context.DeadlineExceeded, domain.KindInternal, nil},
		{"syntax error", &pgconn.PgError{Code: "42601"}, true, nil, domain.KindInternal, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := translate(context.Background(), c.err, c.users)
			if c.want != nil && !errors.Is(got, c.want) {
				t.Errorf("translate(%v) = %v, want %v", c.err, got, c.want)
			}
			if k := domain.KindOf(got); k != c.kind {
				t.Errorf("translate(%v) is %s, want %s", c.err, k, c.kind)
			}
			if c.cause != nil && !errors.Is(got, c.cause) {
				t.Errorf("translate(%v) = %v lost its cause", c.err, got)
			}
			if !errors.Is(got, c.err) {
				t.Errorf("translate(%v) = %v lost the original error", c.err, got)
			}
		})
	}
}

func TestTranslateKeepsCallerAndDomainErrors(t *testing.T) {
	t.Parallel()
	own := errors.New("the closure's own error")
	if got := translate(context.Background(), callerError{own}, true); got != own {
		t.Errorf("a closure's error came back as %v", got)
	}
	// A domain error that happens to wrap a database error stays itself.
	de := domain.ErrLastSuperadmin.Wrap(&pgconn.PgError{Code: "57P01"})
	if got := translate(context.Background(), callerError{de}, true); got != error(de) {
		t.Errorf("a closure's domain error came back as %v", got)
	}
	if got := translate(context.Background(), domain.ErrNotFound, true); got != error(domain.ErrNotFound) {
		t.Errorf("a domain error came back as %v", got)
	}
	if translate(context.Background(), nil, true) != nil {
		t.Error("nil translated to an error")
	}
}

func TestTranslateReportsTheCancelledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The driver saw a closed connection; the cause is the cancellation.
	got := translate(ctx, io.ErrUnexpectedEOF, false)
	if !errors.Is(got, context.Canceled) || errors.Is(got, domain.ErrUnavailable) {
		t.Errorf("translate under a cancelled context = %v, want context.Canceled", got)
	}
}
