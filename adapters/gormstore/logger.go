package gormstore

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// slowQuery is the duration past which a statement is logged as slow.
const slowQuery = 200 * time.Millisecond

// gormLogger routes GORM's log to the injected slog logger at warn level:
// slow statements and unexpected failures, never routine ones. Statements
// are logged without their parameter values, which may hold password hashes
// or email addresses.
type gormLogger struct {
	log   *slog.Logger
	level logger.LogLevel
	slow  time.Duration
}

var (
	_ logger.Interface  = (*gormLogger)(nil)
	_ gorm.ParamsFilter = (*gormLogger)(nil)
)

func newGormLogger(log *slog.Logger, slow time.Duration) *gormLogger {
	return &gormLogger{log: log, level: logger.Warn, slow: slow}
}

func (l *gormLogger) LogMode(level logger.LogLevel) logger.Interface {
	c := *l
	c.level = level
	return &c
}

func (l *gormLogger) Info(ctx context.Context, msg string, args ...any) {
	if l.level >= logger.Info {
		l.log.InfoContext(ctx, fmt.Sprintf(msg, args...))
	}
}

func (l *gormLogger) Warn(ctx context.Context, msg string, args ...any) {
	if l.level >= logger.Warn {
		l.log.WarnContext(ctx, fmt.Sprintf(msg, args...))
	}
}

func (l *gormLogger) Error(ctx context.Context, msg string, args ...any) {
	if l.level >= logger.Error {
		l.log.ErrorContext(ctx, fmt.Sprintf(msg, args...))
	}
}

// Trace logs a statement that failed unexpectedly or ran slowly. Failures
// the repository turns into answers (not found, a taken email) are routine,
// and the caller logs internal errors with their context, so a failure is a
// warning here: the SQL text is what this line adds.
func (l *gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if l.level <= logger.Silent {
		return
	}
	elapsed := time.Since(begin)
	switch {
	case err != nil && !expected(err) && l.level >= logger.Warn:
		sql, rows := fc()
		l.log.WarnContext(ctx, "sql statement failed", "sql", sql, "rows", rows,
			"duration", elapsed, "error", err)
	case l.slow > 0 && elapsed > l.slow && l.level >= logger.Warn:
		sql, rows := fc()
		l.log.WarnContext(ctx, "slow sql statement", "sql", sql, "rows", rows, "duration", elapsed)
	case l.level >= logger.Info:
		sql, rows := fc()
		l.log.InfoContext(ctx, "sql statement", "sql", sql, "rows", rows, "duration", elapsed)
	}
}

// ParamsFilter drops every parameter value, so statements are logged with
// their placeholders only (GORM's ParameterizedQueries). One GORM path
// escapes it: (*gorm.DB).Scan traces through GORM's global recorder, which
// interpolates values before this logger sees the SQL. This package never
// calls it; use Find or Take (or Row().Scan) instead.
func (l *gormLogger) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}
