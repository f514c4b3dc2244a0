package gormstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/userservice/userservice/ports"
)

// defaultSQLitePath is the embedded database used when no URL is given.
const defaultSQLitePath = "userservice.db"

// Pool sizes. PostgreSQL serves this hardware best from a handful of
// connections (measured here: a pool of 4 beat 16); 8 leaves room for
// writers waiting on a row lock without starving readers. SQLite takes one
// writer at a time anyway: a single write connection queues writers in Go,
// where waiting is cheap and cannot end in SQLITE_BUSY.
const (
	pgMaxConns      = 8
	sqliteReadConns = 4
)

// Store is the GORM persistence of the service on SQLite or PostgreSQL.
type Store struct {
	dialect string
	db      *gorm.DB // writes; reads too on PostgreSQL
	read    *gorm.DB // reads: SQLite's read-only pool, or db itself
	pools   []*sql.DB
	log     *slog.Logger
	now     func() time.Time

	users    *UserRepository
	changes  *ChangeLog
	tokens   *RefreshTokens
	notifier *Notifier
	// pg is PostgreSQL's pool (nil on SQLite), which the hand-written read
	// of pgread.go borrows connections from.
	pg *sql.DB
	// pgConfig opens the notifier's LISTEN connection (PostgreSQL only).
	pgConfig *pgx.ConnConfig
	// searchTimeout bounds each statement of a user search (searching).
	searchTimeout time.Duration
}

// Option adjusts a Store at Open.
type Option func(*Store)

// DefaultSearchTimeout is how long one statement of a user search (the
// count, the page) may run before it is stopped.
const DefaultSearchTimeout = 5 * time.Second

// WithSearchTimeout sets how long one statement of a user search may run
// (default DefaultSearchTimeout); past it the search fails with the
// domain error of code search_timeout.
func WithSearchTimeout(d time.Duration) Option {
	return func(s *Store) { s.searchTimeout = d }
}

// WithClock sets the clock that stamps change-log entries (default: the
// system clock, UTC, microseconds). Give it the clock the use cases get, so
// an entry's time agrees with the user's updated_at.
func WithClock(c ports.Clock) Option {
	return func(s *Store) { s.now = c.Now }
}

// Open connects to the database named by databaseURL: "" is the embedded
// SQLite file userservice.db in the working directory, "sqlite:PATH" or
// "file:PATH" a SQLite file at PATH (a path taken literally, not a URI with
// parameters), "postgres://" or "postgresql://" a PostgreSQL server. It
// checks the connection but applies no migrations (see MigrateUp). An
// unreachable database is domain.ErrUnavailable.
func Open(ctx context.Context, databaseURL string, log *slog.Logger, opts ...Option) (*Store, error) {
	s := &Store{log: log, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		searchTimeout: DefaultSearchTimeout}
	for _, o := range opts {
		o(s)
	}
	gcfg := &gorm.Config{
		Logger: newGormLogger(log, slowQuery),
		// Every write runs in a transaction of ours; GORM's own per-statement
		// transactions would only add round trips.
		SkipDefaultTransaction: true,
		DisableAutomaticPing:   true, // Open pings with ctx below
	}
	var err error
	switch {
	case databaseURL == "":
		err = s.openSQLite(defaultSQLitePath, gcfg)
	case strings.HasPrefix(databaseURL, "sqlite:"):
		err = s.openSQLite(strings.TrimPrefix(databaseURL, "sqlite:"), gcfg)
	case strings.HasPrefix(databaseURL, "file:"):
		err = s.openSQLite(strings.TrimPrefix(databaseURL, "file:"), gcfg)
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		err = s.openPostgres(databaseURL, gcfg)
	default:
		// The URL is not echoed: it may hold a password.
		return nil, errors.New("gormstore: unsupported database URL: want empty (embedded SQLite), sqlite:PATH, file:PATH, or postgres://")
	}
	if err != nil {
		return nil, errors.Join(err, s.Close())
	}
	if err := s.Ping(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("gormstore: connect to %s: %w", s.dialect, err), s.Close())
	}
	s.users = &UserRepository{s: s}
	s.changes = &ChangeLog{s: s}
	s.tokens = &RefreshTokens{s: s}
	s.notifier = newNotifier(s)
	return s, nil
}

func (s *Store) openSQLite(path string, gcfg *gorm.Config) error {
	s.dialect = dialectSQLite
	if path == "" {
		return errors.New("gormstore: sqlite: the database path is empty")
	}
	// SQLite reports a missing folder as "out of memory (14)": name it instead.
	if dir := filepath.Dir(path); path != ":memory:" {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("gormstore: sqlite %s: the folder %s does not exist (create it, or set DATABASE_URL=sqlite:PATH elsewhere)", path, dir)
		}
	}
	if err := registerSQLiteDeadline(); err != nil {
		return fmt.Errorf("gormstore: sqlite: %w", err)
	}
	writer, err := sql.Open(sqlite.DriverName, sqliteDSN(path, false))
	if err != nil {
		return fmt.Errorf("gormstore: open sqlite %s: %w", path, err)
	}
	s.pools = append(s.pools, writer)
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	reader, err := sql.Open(sqlite.DriverName, sqliteDSN(path, true))
	if err != nil {
		return fmt.Errorf("gormstore: open sqlite %s: %w", path, err)
	}
	s.pools = append(s.pools, reader)
	reader.SetMaxOpenConns(sqliteReadConns)
	reader.SetMaxIdleConns(sqliteReadConns)

	if s.db, err = gorm.Open(&sqlite.Dialector{Conn: writer}, gcfg); err != nil {
		return fmt.Errorf("gormstore: open sqlite %s: %w", path, err)
	}
	if s.read, err = gorm.Open(&sqlite.Dialector{Conn: reader}, gcfg); err != nil {
		return fmt.Errorf("gormstore: open sqlite %s: %w", path, err)
	}
	return nil
}

// sqliteDSN configures every connection to path: WAL (readers never block
// the writer), foreign keys enforced, a busy timeout for other processes
// (the CLI beside the server), and BEGIN IMMEDIATE, which takes the write
// lock when a transaction starts rather than failing to upgrade to it later.
// Reader connections are query_only, so a write sent to them fails loudly.
func sqliteDSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		// In WAL mode NORMAL loses at most the last commits on power loss,
		// never the database, and spares an fsync per commit.
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
	}
	// A file: URI, so the path may hold any character: escape those the URI
	// syntax gives a meaning.
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + escaped + "?" + q.Encode()
}

// pgConnConfig is the configuration of every connection to databaseURL:
// the pool's and the notifier's.
func pgConnConfig(databaseURL string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		// pgx redacts the password from its parse errors.
		return nil, fmt.Errorf("gormstore: DATABASE_URL: %w", err)
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "userservice"
	}
	cfg.DialFunc = pgDialer().DialContext
	return cfg, nil
}

func (s *Store) openPostgres(databaseURL string, gcfg *gorm.Config) error {
	s.dialect = dialectPostgres
	cfg, err := pgConnConfig(databaseURL)
	if err != nil {
		return err
	}
	// pgx's default exec mode prepares each statement once per connection
	// and reuses it (QueryExecModeCacheStatement); the URL may choose another
	// mode (default_query_exec_mode) for a pooler that cannot keep them.
	s.pgConfig = cfg.Copy()
	pool := stdlib.OpenDB(*cfg)
	s.pools = append(s.pools, pool)
	s.pg = pool
	pool.SetMaxOpenConns(pgMaxConns)
	pool.SetMaxIdleConns(pgMaxConns)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	pool.SetConnMaxLifetime(time.Hour)
	if s.db, err = gorm.Open(postgres.New(postgres.Config{Conn: pool}), gcfg); err != nil {
		return fmt.Errorf("gormstore: open postgres: %w", err)
	}
	s.read = s.db
	return nil
}

// Dialect returns "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// Users returns the user repository.
func (s *Store) Users() ports.UserRepository { return s.users }

// ChangeLog returns the change log reader.
func (s *Store) ChangeLog() ports.ChangeLog { return s.changes }

// RefreshTokens returns the refresh-token store.
func (s *Store) RefreshTokens() ports.RefreshTokenStore { return s.tokens }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	for _, p := range s.pools {
		if err := p.PingContext(ctx); err != nil {
			return translate(ctx, err, false)
		}
	}
	return nil
}

// Close closes every connection.
func (s *Store) Close() error {
	var errs []error
	for _, p := range s.pools {
		errs = append(errs, p.Close())
	}
	s.pools = nil
	return errors.Join(errs...)
}

// write runs fn in a write transaction: BEGIN IMMEDIATE on SQLite (the
// database's one write lock, held to commit), READ COMMITTED on PostgreSQL,
// where row and advisory locks order what must be ordered. Once it has
// committed, change-log readers in this process are woken; a transaction
// that appended nothing wakes them for one cheap query that finds nothing.
func (s *Store) write(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if err := s.db.WithContext(ctx).Transaction(fn); err != nil {
		return err
	}
	if s.notifier != nil {
		s.notifier.wake()
	}
	return nil
}

// Transaction-scoped advisory lock keys (PostgreSQL). Arbitrary constants,
// distinct from goose's migration lock (lock.DefaultLockID).
const (
	// lockSuperadmins is held from counting superadmins to commit, so two
	// demotions of the last two cannot both see the other one.
	lockSuperadmins int64 = 0x75736572_0001
	// lockChangeLog is held from a change-log append to commit, so seq
	// grows in commit order.
	lockChangeLog int64 = 0x75736572_0002
	// lockUserIDs is held shared by inserts that draw an id from the
	// sequence and exclusively by inserts of an explicit id, which then move
	// the sequence past it without a concurrent draw in between. Deletions
	// hold it shared too, taken before the row, so an explicit id is never
	// inserted between a deletion and the retirement of its id.
	lockUserIDs int64 = 0x75736572_0003
)

// xactLock takes a transaction-scoped advisory lock on PostgreSQL. SQLite
// needs none: a write transaction already holds the database's only write
// lock.
func (s *Store) xactLock(tx *gorm.DB, key int64, shared bool) error {
	if s.dialect != dialectPostgres {
		return nil
	}
	fn := "pg_advisory_xact_lock"
	if shared {
		fn = "pg_advisory_xact_lock_shared"
	}
	return tx.Exec("SELECT "+fn+"(?)", key).Error
}
