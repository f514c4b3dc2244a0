package gormstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// escapeLike makes every character of s literal in a LIKE pattern with
// ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// filtered restricts users to those f matches: the SQL twin of
// domain.Filter.Matches, held equal to it by the contract suite's property
// test. Substring filters compare folded columns with folded text.
func (s *Store) filtered(db *gorm.DB, f domain.Filter) *gorm.DB {
	db = db.Table("users")
	contains := func(column, sub string) {
		if sub == "" {
			return
		}
		if s.dialect == dialectSQLite {
			// SQLite's LIKE folds ASCII case on its own, which would make
			// "ß" and "SS" differ while "a" and "A" match: instr is exact.
			db = db.Where("instr("+column+", ?) > 0", sub)
			return
		}
		// A LIKE pattern, not strpos, so the trigram indexes serve it.
		db = db.Where(column+` LIKE ? ESCAPE '\'`, "%"+escapeLike(sub)+"%")
	}
	contains("first_name_fold", f.FirstName)
	contains("last_name_fold", f.LastName)
	contains("email", f.Email)
	if !f.EmailExact.IsZero() {
		// Stored folded, as EmailExact is: the unique index answers.
		db = db.Where("email = ?", f.EmailExact.String())
	}
	if !f.Gender.IsZero() {
		db = db.Where("gender = ?", f.Gender.String())
	}
	if !f.Role.IsZero() {
		db = db.Where("role = ?", f.Role.String())
	}
	if f.IP.IsSet() {
		lo, hi := f.IP.Bounds()
		db = db.Where("ip_key BETWEEN ? AND ?", lo[:], hi[:])
	}
	return db
}

// sortColumn is the column a sort field orders by.
func sortColumn(f domain.SortField) string {
	switch f {
	case domain.SortEmail:
		return "email"
	case domain.SortLastName:
		return "last_name_fold"
	case domain.SortCreatedAt:
		return "created_at"
	}
	return "id"
}

// Search returns up to q.Limit users (all when it is 0) matching q.Filter,
// ordered by the sort field then id, both in the sort's direction. With
// q.After the page starts strictly after that key, a row-value comparison
// that the (column, id) indexes serve on both engines; otherwise q.Offset
// rows are skipped.
func (r *UserRepository) Search(ctx context.Context, q ports.SearchQuery) ([]*domain.User, error) {
	var users []*domain.User
	err := r.s.searching(ctx, func(ctx context.Context, from *gorm.DB) (err error) {
		users, err = r.search(ctx, from, q)
		return err
	})
	return users, err
}

func (r *UserRepository) search(ctx context.Context, from *gorm.DB, q ports.SearchQuery) ([]*domain.User, error) {
	db := r.s.filtered(r.s.planEach(from.WithContext(ctx)), q.Filter)
	col := sortColumn(q.Sort.Field)
	dir, op := "ASC", ">"
	if q.Sort.Desc {
		dir, op = "DESC", "<"
	}
	switch {
	case q.After != nil && col == "id":
		db = db.Where("id "+op+" ?", q.After.ID)
	case q.After != nil && col == "created_at":
		db = db.Where("(created_at, id) "+op+" (?, ?)", newDBTime(q.After.Time), q.After.ID)
	case q.After != nil:
		db = db.Where("("+col+", id) "+op+" (?, ?)", q.After.Text, q.After.ID)
	case q.Offset > 0:
		db = db.Offset(q.Offset)
	}
	// An exact email matches one user at most: nothing to order, and an
	// ORDER BY id would steer PostgreSQL to the (email, id) index rather
	// than the unique one.
	if q.Filter.EmailExact.IsZero() {
		if col != "id" {
			db = db.Order(col + " " + dir)
		}
		db = db.Order("id " + dir)
	}
	if q.Limit > 0 {
		db = db.Limit(q.Limit)
	}
	var recs []userRecord
	if err := db.Find(&recs).Error; err != nil {
		return nil, translate(ctx, err, true)
	}
	users, err := usersOf(recs)
	if err != nil {
		return nil, translate(ctx, err, true)
	}
	return users, nil
}

// Count counts users matching f: exactly up to limit; past it, see count.
func (r *UserRepository) Count(ctx context.Context, f domain.Filter, limit int64) (n int64, exact bool, err error) {
	err = r.s.searching(ctx, func(ctx context.Context, from *gorm.DB) (err error) {
		n, exact, err = r.s.count(ctx, from, func(db *gorm.DB) *gorm.DB { return r.s.filtered(db, f) }, limit)
		return err
	})
	return n, exact, err
}

// count counts the rows of query exactly up to limit, by counting at most
// limit+1 of them. Past the limit, PostgreSQL answers with the planner's
// estimate (never below limit+1) and exact=false, because an exact count of
// a broad filter over millions of rows costs more than the page it labels.
// SQLite, for small deployments, counts exactly. limit <= 0 counts exactly.
// from is the read pool, or a transaction of it.
func (s *Store) count(ctx context.Context, from *gorm.DB, query func(*gorm.DB) *gorm.DB, limit int64) (int64, bool, error) {
	db := s.planEach(from.WithContext(ctx))
	if limit <= 0 || s.dialect == dialectSQLite {
		var n int64
		if err := query(db).Count(&n).Error; err != nil {
			return 0, false, translate(ctx, err, false)
		}
		return n, true, nil
	}
	capped := query(db).Select("1").Limit(int(limit + 1))
	var n int64
	if err := db.Table("(?) AS matching", capped).Count(&n).Error; err != nil {
		return 0, false, translate(ctx, err, false)
	}
	if n <= limit {
		return n, true, nil
	}
	est, err := s.estimate(ctx, from, query)
	if err != nil {
		return 0, false, err
	}
	return max(est, limit+1), false, nil
}

// estimate returns PostgreSQL's planner estimate of the rows of query.
func (s *Store) estimate(ctx context.Context, from *gorm.DB, query func(*gorm.DB) *gorm.DB) (int64, error) {
	// Build the statement without running it, then ask EXPLAIN about it
	// with the same parameters.
	stmt := query(from.WithContext(ctx).Session(&gorm.Session{DryRun: true})).
		Select("1").Find(&[]map[string]any{}).Statement
	var plan string
	err := s.planEach(from.WithContext(ctx)).Raw("EXPLAIN (FORMAT JSON) "+stmt.SQL.String(), stmt.Vars...).Row().Scan(&plan)
	if err != nil {
		return 0, translate(ctx, err, false)
	}
	var out []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(plan), &out); err != nil {
		return 0, fmt.Errorf("gormstore: read the planner's estimate: %w", err)
	}
	if len(out) == 0 {
		return 0, errors.New("gormstore: EXPLAIN returned no plan")
	}
	return int64(out[0].Plan.Rows), nil
}

// errSearchTimeout is a search stopped by the search timeout.
var errSearchTimeout = &domain.Error{Kind: domain.KindUnavailable, Code: "search_timeout",
	Message: "the search took too long and was stopped; narrow the filters, or page with cursor"}

// searching runs fn, one part of a user search, bounded by the search
// timeout so that no search holds a connection for long, whatever its
// filters and depth. On PostgreSQL fn runs in a read-only transaction with
// SET LOCAL statement_timeout, so the server stops the statement itself even
// when the client's cancel request never reaches it; on both engines the
// context carries the same deadline, which the SQLite driver turns into
// sqlite3_interrupt. fn gets that context and the pool or transaction to
// read from.
func (s *Store) searching(ctx context.Context, fn func(ctx context.Context, from *gorm.DB) error) error {
	bounded, cancel := context.WithTimeout(ctx, s.searchTimeout)
	defer cancel()
	deadline, _ := bounded.Deadline()
	var err error
	if s.dialect == dialectPostgres {
		err = s.read.WithContext(bounded).Transaction(func(tx *gorm.DB) error {
			// SET takes no parameters; the value is an integer of ours.
			if err := tx.Exec(fmt.Sprintf("SET LOCAL statement_timeout = %d", max(s.searchTimeout.Milliseconds(), 1))).Error; err != nil {
				return translate(bounded, err, false)
			}
			return fn(bounded, tx)
		}, &sql.TxOptions{ReadOnly: true})
	} else {
		// The SQLite driver interrupts a statement whose context ends only
		// while it is being prepared, not while its rows are stepped through
		// (where a scan or a sort spends its time), so the statement checks
		// the deadline itself, row by row.
		err = fn(bounded, s.read.Where(sqliteDeadlineFunc+"(?)", deadline.UnixNano()))
	}
	if err == nil {
		return nil
	}
	if ctx.Err() == nil && (!time.Now().Before(deadline) || queryCanceled(err)) {
		// Our deadline, not the request's: the search itself is too slow.
		return errSearchTimeout.Wrap(err)
	}
	if domain.AsError(err) != nil {
		return err
	}
	return translate(ctx, err, false)
}

// sqliteDeadlineFunc is the SQL function, registered with the SQLite
// driver, that fails the statement evaluating it once the time (Unix
// nanoseconds) it is given has passed.
const sqliteDeadlineFunc = "userservice_before"

// registerSQLiteDeadline registers sqliteDeadlineFunc, once per process: the
// driver keeps one registry for every connection.
var registerSQLiteDeadline = sync.OnceValue(func() error {
	return gosqlite.RegisterScalarFunction(sqliteDeadlineFunc, 1, func(_ *gosqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		deadline, ok := args[0].(int64)
		if !ok {
			return nil, errors.New(sqliteDeadlineFunc + ": want a time in Unix nanoseconds")
		}
		if time.Now().UnixNano() >= deadline {
			return nil, errors.New("search timeout")
		}
		return int64(1), nil
	})
})

// queryCanceled reports whether PostgreSQL stopped a statement (its
// statement_timeout, or a cancel request).
func queryCanceled(err error) bool {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	return ok && pgErr.Code == "57014"
}

// planEach makes db (a session of its own, as WithContext returns) have
// PostgreSQL plan every statement for the values it comes with. Otherwise
// pgx prepares each statement once per connection and, after five runs,
// PostgreSQL may settle on a generic plan, blind to how selective a LIKE
// pattern or an address range is: one plan then serves a rare name (where a
// trigram index is right) and a common one (where walking the sort order and
// stopping at the page's end is right), and the wrong choice costs hundreds
// of milliseconds at a million users. Planning each time costs a fraction
// of a millisecond, which a search affords; a primary-key read, whose plan
// never changes, stays prepared. A URL that chose another exec mode
// (default_query_exec_mode, for a pooler) plans each time already.
func (s *Store) planEach(db *gorm.DB) *gorm.DB {
	if s.dialect == dialectPostgres && s.pgConfig.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement {
		db.Statement.ConnPool = planEachPool{db.Statement.ConnPool}
	}
	return db
}

// planEachPool runs queries in pgx's QueryExecModeCacheDescribe: the unnamed
// statement, parsed and planned with its parameters on every run, still one
// round trip and binary values, since the statement's description is
// cached. pgx takes the mode from the first argument, which database/sql
// passes through to it.
type planEachPool struct{ gorm.ConnPool }

func (p planEachPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return p.ConnPool.QueryContext(ctx, query, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
}

func (p planEachPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return p.ConnPool.QueryRowContext(ctx, query, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
}
