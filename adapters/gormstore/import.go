package gormstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// Importer writes imported users in batches: on PostgreSQL through COPY
// into a temporary staging table and one set-based merge per batch, on
// SQLite with multi-row INSERTs. Either way every inserted or updated user
// gets its change-log entry in the batch's transaction.
type Importer struct{ s *Store }

var _ ports.UserImporter = (*Importer)(nil)

// Importer returns the bulk writer of imports.
func (s *Store) Importer() ports.UserImporter { return &Importer{s: s} }

// sqliteInsertRows bounds the rows of one multi-row INSERT (and IN list)
// on SQLite. The driver's parameter binding costs time quadratic in the
// parameters of a statement: measured, 100 rows of 15 took half the time
// of 500 rows for the same batch, and fewer gained nothing.
const sqliteInsertRows = 100

// userColumns are the users columns an import writes, in the order of
// importValues.
var userColumns = []string{
	"id", "first_name", "last_name", "first_name_fold", "last_name_fold", "email", "gender", "role",
	"ip_address", "ip_key", "password_hash", "must_change_password", "token_version", "version", "created_at", "updated_at",
}

// importValues is rec as the values of userColumns: id 0 is NULL (drawn by
// the database), times in the dialect's representation.
func (s *Store) importValues(rec userRecord) []any {
	var id, ipAddr, key any
	if rec.ID != 0 {
		id = rec.ID
	}
	if rec.IPAddress != nil {
		ipAddr, key = *rec.IPAddress, []byte(rec.IPKey)
	}
	var created, updated any = rec.CreatedAt.Time, rec.UpdatedAt.Time
	if s.dialect == dialectSQLite {
		created, updated = rec.CreatedAt.UnixMicro(), rec.UpdatedAt.UnixMicro()
	}
	return []any{id, rec.FirstName, rec.LastName, rec.FirstNameFold, rec.LastNameFold, rec.Email, rec.Gender, rec.Role,
		ipAddr, key, rec.PasswordHash, rec.MustChangePassword, rec.TokenVersion, rec.Version, created, updated}
}

// BeginImport starts an import; see ports.UserImporter.
func (im *Importer) BeginImport(ctx context.Context, actor domain.Actor, atomic, dryRun bool) (ports.ImportSession, error) {
	s := im.s
	switch {
	case dryRun:
		return &dryImport{s: s}, nil
	case s.dialect == dialectPostgres:
		return s.beginPostgresImport(ctx, actor, atomic)
	}
	li := &sqliteImport{s: s, actor: actor}
	if atomic {
		// The session's one transaction holds SQLite's write lock to the end.
		li.tx = s.db.WithContext(ctx).Begin()
		if err := li.tx.Error; err != nil {
			return nil, translate(ctx, err, false)
		}
	}
	return li, nil
}

// batchWriter is one dialect's statements for writeBatch, run in the
// batch's transaction.
type batchWriter interface {
	// lockIDs takes, to the end of the batch's transaction, what keeps
	// drawn and explicit ids apart: exclusive when the batch has explicit
	// ids (nothing else draws or keeps an id until it commits, so the ids
	// it finds free stay free), shared otherwise.
	lockIDs(exclusive bool) error
	// takenIDs returns which of ids belong to stored users, or belonged to
	// deleted ones.
	takenIDs(ids []int64) (map[int64]bool, error)
	// insert inserts recs (id 0: drawn) whose email is free, in order, and
	// returns the ids of the inserted ones by email.
	insert(recs []userRecord) (map[string]int64, error)
	// lockStored reads and locks the stored users with emails.
	lockStored(emails []string) ([]*domain.User, error)
	// update writes the new states of stored users.
	update(recs []userRecord) error
	// appendChanges writes the batch's change-log entries, in order.
	appendChanges(changes []domain.Change) error
}

// writeBatch is the import logic both dialects share: ids kept when free,
// inserts where the email is free, merge where it is stored, and the
// change-log entries of all of it, in the batch's order.
func writeBatch(w batchWriter, users []*domain.User, merge ports.ImportMerge, actor domain.Actor) ([]ports.ImportOutcome, error) {
	out := make([]ports.ImportOutcome, len(users))
	recs := make([]userRecord, len(users))
	var explicit []int64
	for i, u := range users {
		recs[i] = recordOf(u)
		if recs[i].ID != 0 {
			explicit = append(explicit, recs[i].ID)
		}
	}
	if err := w.lockIDs(len(explicit) > 0); err != nil {
		return nil, err
	}
	if len(explicit) > 0 {
		taken, err := w.takenIDs(explicit)
		if err != nil {
			return nil, err
		}
		// An id is kept when no stored user and no earlier row has it.
		seen := make(map[int64]bool, len(explicit))
		for i := range recs {
			if id := recs[i].ID; id != 0 {
				if taken[id] || seen[id] {
					recs[i].ID = 0
				}
				seen[id] = true
			}
		}
	}
	inserted, err := w.insert(recs)
	if err != nil {
		return nil, err
	}
	changes := make([]*domain.Change, len(users))
	var conflicts []string
	for i := range recs {
		id, ok := inserted[recs[i].Email]
		if !ok {
			conflicts = append(conflicts, recs[i].Email)
			continue
		}
		recs[i].ID = id
		u, err := recs[i].user()
		if err != nil {
			return nil, err
		}
		out[i] = ports.ImportOutcome{Result: ports.ImportInserted, User: u}
		changes[i] = &domain.Change{ActorID: actor.ID, Action: domain.ActionCreated, TargetID: id, After: u}
	}
	if len(conflicts) > 0 {
		stored, err := w.lockStored(conflicts)
		if err != nil {
			return nil, err
		}
		byEmail := make(map[string]*domain.User, len(stored))
		for _, u := range stored {
			byEmail[u.Email().String()] = u
		}
		var updates []userRecord
		for i := range recs {
			if out[i].Result != 0 {
				continue
			}
			o, upd, err := mergeOne(i, byEmail[recs[i].Email], merge)
			if err != nil {
				return nil, err
			}
			out[i] = o
			if upd != nil {
				updates = append(updates, recordOf(upd.After))
				changes[i] = upd
				changes[i].ActorID = actor.ID
			}
		}
		if len(updates) > 0 {
			if err := w.update(updates); err != nil {
				return nil, err
			}
		}
	}
	var log []domain.Change
	for _, c := range changes {
		if c != nil {
			log = append(log, *c)
		}
	}
	if len(log) > 0 {
		if err := w.appendChanges(log); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// errVanished rejects a row whose stored user was deleted between the
// insert that found its email taken and the read of that user.
var errVanished = &domain.Error{Kind: domain.KindConflict, Code: "concurrent_change",
	Message: "the stored user with this email was deleted during the import; import the row again"}

// mergeOne asks merge about users[i], whose email stored has. It returns
// the outcome and, for an update, the change to log.
func mergeOne(i int, stored *domain.User, merge ports.ImportMerge) (ports.ImportOutcome, *domain.Change, error) {
	if stored == nil {
		return ports.ImportOutcome{Result: ports.ImportRejected, Err: errVanished}, nil, nil
	}
	after, err := merge(i, stored)
	switch {
	case err != nil && domain.KindOf(err) == domain.KindInternal:
		return ports.ImportOutcome{}, nil, callerError{err}
	case err != nil:
		return ports.ImportOutcome{Result: ports.ImportRejected, Err: err}, nil, nil
	case after == nil || sameStored(stored.Stored(), after.Stored()):
		return ports.ImportOutcome{Result: ports.ImportUnchanged, User: stored}, nil, nil
	case after.ID() != stored.ID() || after.Email() != stored.Email():
		return ports.ImportOutcome{}, nil, fmt.Errorf("gormstore: an import merge changed user %d's id or email", stored.ID())
	}
	// What is stored is what the record holds (times at microseconds), at
	// the next version: a merge is a visible write.
	rec := recordOf(after)
	rec.Version = stored.Version() + 1
	u, err := rec.user()
	if err != nil {
		return ports.ImportOutcome{}, nil, err
	}
	return ports.ImportOutcome{Result: ports.ImportUpdated, User: u},
		&domain.Change{Action: domain.ActionUpdated, TargetID: u.ID(), Before: stored, After: u}, nil
}

// --- dry run -----------------------------------------------------------------

// dryImport reports what an import would do, reading only.
type dryImport struct{ s *Store }

func (d *dryImport) Write(ctx context.Context, users []*domain.User, merge ports.ImportMerge) ([]ports.ImportOutcome, error) {
	emails := make([]string, len(users))
	for i, u := range users {
		emails[i] = u.Email().String()
	}
	byEmail := map[string]*domain.User{}
	for chunk := range slices.Chunk(emails, sqliteInsertRows) {
		var recs []userRecord
		if err := d.s.read.WithContext(ctx).Where("email IN ?", chunk).Find(&recs).Error; err != nil {
			return nil, translate(ctx, err, false)
		}
		for _, r := range recs {
			u, err := r.user()
			if err != nil {
				return nil, translate(ctx, err, false)
			}
			byEmail[r.Email] = u
		}
	}
	out := make([]ports.ImportOutcome, len(users))
	for i, u := range users {
		stored, ok := byEmail[emails[i]]
		if !ok {
			out[i] = ports.ImportOutcome{Result: ports.ImportInserted, User: u}
			continue
		}
		o, _, err := mergeOne(i, stored, merge)
		if err != nil {
			return nil, translate(ctx, err, false)
		}
		out[i] = o
	}
	return out, nil
}

func (d *dryImport) Writers() int                 { return 1 }
func (d *dryImport) Commit(context.Context) error { return nil }
func (d *dryImport) Close() error                 { return nil }

// --- SQLite ------------------------------------------------------------------

// sqliteImport writes each batch in a write transaction of its own, or
// all of them in tx (atomic).
type sqliteImport struct {
	s     *Store
	actor domain.Actor
	tx    *gorm.DB // atomic: the session's transaction
	done  bool
}

func (li *sqliteImport) Write(ctx context.Context, users []*domain.User, merge ports.ImportMerge) ([]ports.ImportOutcome, error) {
	var out []ports.ImportOutcome
	run := func(tx *gorm.DB) error {
		var err error
		out, err = writeBatch(&sqliteBatch{s: li.s, tx: tx}, users, merge, li.actor)
		return err
	}
	var err error
	if li.tx != nil {
		// A failed statement inside SQLite's transaction leaves the earlier
		// ones in place; a savepoint keeps the batch all or nothing.
		err = li.tx.WithContext(ctx).Transaction(run)
	} else {
		err = li.s.write(ctx, run)
	}
	if err != nil {
		return nil, translate(ctx, err, true)
	}
	return out, nil
}

// Writers is 1: SQLite has one writer at a time anyway.
func (li *sqliteImport) Writers() int { return 1 }

func (li *sqliteImport) Commit(ctx context.Context) error {
	if li.tx == nil || li.done {
		return nil
	}
	li.done = true
	if err := li.tx.Commit().Error; err != nil {
		return translate(ctx, err, false)
	}
	li.s.wake()
	return nil
}

func (li *sqliteImport) Close() error {
	if li.tx == nil || li.done {
		return nil
	}
	li.done = true
	if err := li.tx.Rollback().Error; err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("gormstore: roll back the import: %w", err)
	}
	return nil
}

type sqliteBatch struct {
	s  *Store
	tx *gorm.DB
}

// lockIDs has nothing to take: the batch's write transaction holds
// SQLite's one write lock.
func (b *sqliteBatch) lockIDs(bool) error { return nil }

// takenIDs finds the ids stored users have, or deleted users had (see
// retireUserID).
func (b *sqliteBatch) takenIDs(ids []int64) (map[int64]bool, error) {
	taken := map[int64]bool{}
	for chunk := range slices.Chunk(ids, sqliteInsertRows) {
		var found []int64
		if err := b.tx.Table("users").Where("id IN ?", chunk).Pluck("id", &found).Error; err != nil {
			return nil, err
		}
		retired, err := retiredUserIDs(b.tx, chunk)
		if err != nil {
			return nil, err
		}
		for _, id := range append(found, retired...) {
			taken[id] = true
		}
	}
	return taken, nil
}

// insert puts rows with an explicit id first: SQLite draws an id past the
// largest one, so a drawn id can then never be one a later row asks for.
func (b *sqliteBatch) insert(recs []userRecord) (map[string]int64, error) {
	ordered := slices.Clone(recs)
	slices.SortStableFunc(ordered, func(x, y userRecord) int {
		return boolRank(x.ID == 0) - boolRank(y.ID == 0)
	})
	inserted := make(map[string]int64, len(recs))
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(userColumns)), ",") + ")"
	for chunk := range slices.Chunk(ordered, sqliteInsertRows) {
		args := make([]any, 0, len(chunk)*len(userColumns))
		for _, r := range chunk {
			args = append(args, b.s.importValues(r)...)
		}
		q := "INSERT INTO users (" + strings.Join(userColumns, ", ") + ") VALUES " +
			strings.TrimSuffix(strings.Repeat(row+",", len(chunk)), ",") +
			" ON CONFLICT (email) DO NOTHING RETURNING id, email"
		rows, err := b.tx.Raw(q, args...).Rows()
		if err != nil {
			return nil, err
		}
		if err := scanInserted(rows, inserted); err != nil {
			return nil, err
		}
	}
	return inserted, nil
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func scanInserted(rows *sql.Rows, into map[string]int64) error {
	defer rows.Close()
	for rows.Next() {
		var id int64
		var email string
		if err := rows.Scan(&id, &email); err != nil {
			return err
		}
		into[email] = id
	}
	return rows.Err()
}

func (b *sqliteBatch) lockStored(emails []string) ([]*domain.User, error) {
	var out []*domain.User
	for chunk := range slices.Chunk(emails, sqliteInsertRows) {
		var recs []userRecord
		if err := b.tx.Where("email IN ?", chunk).Find(&recs).Error; err != nil {
			return nil, err
		}
		us, err := usersOf(recs)
		if err != nil {
			return nil, err
		}
		out = append(out, us...)
	}
	return out, nil
}

func (b *sqliteBatch) update(recs []userRecord) error {
	for _, r := range recs {
		if err := b.tx.Table("users").Where("id = ?", r.ID).Updates(r.changes()).Error; err != nil {
			return err
		}
	}
	return nil
}

func (b *sqliteBatch) appendChanges(changes []domain.Change) error {
	recs, err := b.s.changeRecords(changes)
	if err != nil {
		return err
	}
	return b.tx.CreateInBatches(recs, sqliteInsertRows).Error
}

// wake tells this process's change-log readers that entries committed.
func (s *Store) wake() {
	if s.notifier != nil {
		s.notifier.wake()
	}
}

// changeRecords are change-log rows for changes, stamped now.
func (s *Store) changeRecords(changes []domain.Change) ([]changeRecord, error) {
	at := newDBTime(s.now())
	recs := make([]changeRecord, len(changes))
	for i, c := range changes {
		before, err := encodeSnapshot(c.Before)
		if err != nil {
			return nil, err
		}
		after, err := encodeSnapshot(c.After)
		if err != nil {
			return nil, err
		}
		recs[i] = changeRecord{At: at, ActorID: c.ActorID, Action: string(c.Action), TargetID: c.TargetID, Before: before, After: after}
	}
	return recs, nil
}

// --- PostgreSQL --------------------------------------------------------------

// pgImportWriters is how many batches an import that is not atomic writes
// at once, each on a connection of its own. The users table's indexes make
// a batch's INSERT mostly the server's CPU; a second connection lets the
// server work on one batch while the other is between statements or on
// another core. Measured (1M rows, 2 cores): 1.4x one connection's rate.
const pgImportWriters = 2

// pgImport runs an import on pooled connections pinned for the session:
// their temporary staging tables live on them. An atomic session has one
// connection, whose transaction spans the batches; otherwise each Write
// takes a free connection and commits its batch on it. Batches go through
// pgx directly, for COPY.
type pgImport struct {
	s      *Store
	actor  domain.Actor
	seq    string // the users id sequence
	atomic bool
	conns  []*sql.Conn
	free   chan *sql.Conn // the connections no Write is using
	inTx   bool           // the atomic session's transaction is open
	closed bool
	// ord numbers an atomic session's change-log entries across batches.
	ord int64
}

// The staging tables of a PostgreSQL import, temporary (private to the
// connection, never logged). Their columns are the migrated tables' own (LIKE
// copies names, types, collations and NOT NULL; INCLUDING DEFAULTS fills a
// column an import does not write), so a column added to users or the change
// log by a migration is one here too. import_staging numbers its rows (line)
// and lets id be NULL for an id the sequence draws. import_changes holds an
// atomic import's change-log entries until Commit, in ord rather than seq
// order, so the change-log lock is taken only then, after every row lock the
// import needs: taking it earlier and holding it across batches could
// deadlock with an update that holds a row lock and waits for the change log.
const pgCreateStaging = `
DROP TABLE IF EXISTS pg_temp.import_staging, pg_temp.import_updates, pg_temp.import_changes;
CREATE TEMPORARY TABLE import_staging (line integer NOT NULL, LIKE users INCLUDING DEFAULTS);
ALTER TABLE import_staging ALTER COLUMN id DROP NOT NULL;
CREATE TEMPORARY TABLE import_updates (LIKE import_staging INCLUDING DEFAULTS);
CREATE TEMPORARY TABLE import_changes (ord bigint NOT NULL, LIKE change_log INCLUDING DEFAULTS);
ALTER TABLE import_changes DROP COLUMN seq`

const pgDropStaging = `DROP TABLE IF EXISTS pg_temp.import_staging, pg_temp.import_updates, pg_temp.import_changes`

// pgCleanupTimeout bounds a rollback or cleanup that runs after the
// request's context may have ended.
const pgCleanupTimeout = 10 * time.Second

func (s *Store) beginPostgresImport(ctx context.Context, actor domain.Actor, atomic bool) (*pgImport, error) {
	pool, err := s.db.DB()
	if err != nil {
		return nil, fmt.Errorf("gormstore: %w", err)
	}
	n := pgImportWriters
	if atomic {
		n = 1
	}
	p := &pgImport{s: s, actor: actor, atomic: atomic, free: make(chan *sql.Conn, n)}
	for range n {
		conn, err := pool.Conn(ctx)
		if err != nil {
			return nil, errors.Join(translate(ctx, err, false), p.Close())
		}
		p.conns = append(p.conns, conn)
		err = raw(conn, func(c *pgx.Conn) error {
			if p.seq == "" {
				if err := c.QueryRow(ctx, `SELECT pg_get_serial_sequence('users', 'id')`).Scan(&p.seq); err != nil {
					return err
				}
			}
			_, err := c.Exec(ctx, pgCreateStaging)
			return err
		})
		if err != nil {
			return nil, errors.Join(translate(ctx, err, false), p.Close())
		}
		p.free <- conn
	}
	if atomic {
		err := raw(p.conns[0], func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, "BEGIN")
			return err
		})
		if err != nil {
			return nil, errors.Join(translate(ctx, err, false), p.Close())
		}
		p.inTx = true
	}
	return p, nil
}

// raw runs f on the pinned connection conn. When the connection broke,
// the error says driver.ErrBadConn too, so database/sql drops it instead
// of pooling it in an unknown state.
func raw(conn *sql.Conn, f func(*pgx.Conn) error) error {
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("gormstore: the PostgreSQL driver connection is a %T, not pgx's", dc)
		}
		c := sc.Conn()
		err := f(c)
		if err != nil && c.IsClosed() {
			return errors.Join(err, driver.ErrBadConn)
		}
		return err
	})
}

func (p *pgImport) Writers() int { return len(p.conns) }

func (p *pgImport) Write(ctx context.Context, users []*domain.User, merge ports.ImportMerge) ([]ports.ImportOutcome, error) {
	if p.closed {
		return nil, errors.New("gormstore: write to a closed import")
	}
	var conn *sql.Conn
	select {
	case conn = <-p.free:
		defer func() { p.free <- conn }()
	case <-ctx.Done():
		return nil, translate(ctx, context.Cause(ctx), true)
	}
	var out []ports.ImportOutcome
	err := raw(conn, func(c *pgx.Conn) error {
		if !p.atomic {
			if _, err := c.Exec(ctx, "BEGIN"); err != nil {
				return err
			}
		}
		var err error
		out, err = writeBatch(&pgBatch{ctx: ctx, c: c, p: p}, users, merge, p.actor)
		if !p.atomic {
			if err == nil {
				if _, err = c.Exec(ctx, "COMMIT"); err == nil {
					p.s.wake()
				}
			}
			if err != nil && !c.IsClosed() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pgCleanupTimeout)
				defer cancel()
				if _, rerr := c.Exec(rctx, "ROLLBACK"); rerr != nil {
					err = errors.Join(err, rerr, driver.ErrBadConn)
				}
			}
		}
		return err
	})
	if err != nil {
		return nil, translate(ctx, err, true)
	}
	return out, nil
}

// Commit moves an atomic import's change-log entries into the change log,
// under the change-log lock (so seq follows commit order), and commits.
func (p *pgImport) Commit(ctx context.Context) error {
	if !p.atomic || !p.inTx {
		return nil
	}
	err := raw(p.conns[0], func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockChangeLog); err != nil {
			return err
		}
		_, err := c.Exec(ctx, `INSERT INTO change_log (at, actor_id, action, target_id, before, after)
			SELECT at, actor_id, action, target_id, before, after FROM import_changes ORDER BY ord`)
		if err != nil {
			return err
		}
		if _, err := c.Exec(ctx, "SELECT pg_notify($1, '')", notifyChannel); err != nil {
			return err
		}
		_, err = c.Exec(ctx, "COMMIT")
		p.inTx = false
		return err
	})
	if err != nil {
		return translate(ctx, err, true)
	}
	p.s.wake()
	return nil
}

// Close rolls back what is not committed, drops the staging tables and
// hands the connections back to the pool (or closes those that broke).
func (p *pgImport) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), pgCleanupTimeout)
	defer cancel()
	var errs []error
	for _, conn := range p.conns {
		err := raw(conn, func(c *pgx.Conn) error {
			if c.IsClosed() {
				return driver.ErrBadConn
			}
			if p.inTx {
				p.inTx = false
				if _, err := c.Exec(ctx, "ROLLBACK"); err != nil {
					return errors.Join(err, driver.ErrBadConn)
				}
			}
			if _, err := c.Exec(ctx, pgDropStaging); err != nil {
				return errors.Join(err, driver.ErrBadConn)
			}
			return nil
		})
		cerr := conn.Close()
		if errors.Is(err, driver.ErrBadConn) {
			// The connection is dropped, and with it anything uncommitted.
			err = nil
		}
		if err := errors.Join(err, cerr); err != nil && !errors.Is(err, sql.ErrConnDone) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gormstore: end the import: %w", err)
	}
	return nil
}

// pgBatch runs one batch's statements on the pinned connection, inside
// the batch's (or the atomic session's) transaction.
type pgBatch struct {
	ctx context.Context
	c   *pgx.Conn
	p   *pgImport
}

// takenIDs finds the ids stored users have, or deleted users had (see
// retireUserID).
func (b *pgBatch) takenIDs(ids []int64) (map[int64]bool, error) {
	rows, err := b.c.Query(b.ctx, "SELECT id FROM users WHERE id = ANY($1) UNION ALL SELECT id FROM retired_user_ids WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, err
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	taken := make(map[int64]bool, len(found))
	for _, id := range found {
		taken[id] = true
	}
	return taken, nil
}

// lockIDs takes lockUserIDs as UserRepository.Create does: exclusively for explicit
// ids, so no id is drawn elsewhere between moving the sequence past the
// batch's explicit ids and drawing the batch's own, and the ids found free
// stay free; shared otherwise, so batches that only draw ids (and
// concurrent creations) run side by side.
func (b *pgBatch) lockIDs(exclusive bool) error {
	lock := "SELECT pg_advisory_xact_lock_shared($1)"
	if exclusive {
		lock = "SELECT pg_advisory_xact_lock($1)"
	}
	_, err := b.c.Exec(b.ctx, lock, lockUserIDs)
	return err
}

// insert stages recs with COPY and inserts them in one statement, under
// the lock lockIDs took.
func (b *pgBatch) insert(recs []userRecord) (map[string]int64, error) {
	ctx, c := b.ctx, b.c
	if _, err := c.Exec(ctx, "TRUNCATE import_staging"); err != nil {
		return nil, err
	}
	cols := append([]string{"line"}, userColumns...)
	_, err := c.CopyFrom(ctx, pgx.Identifier{"import_staging"}, cols, pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
		return append([]any{i}, b.p.s.importValues(recs[i])...), nil
	}))
	if err != nil {
		return nil, err
	}
	_, err = c.Exec(ctx, `SELECT setval($1::regclass, m) FROM (SELECT max(id) AS m FROM import_staging) AS s
		WHERE m > COALESCE(pg_sequence_last_value($1::regclass), 0)`, b.p.seq)
	if err != nil {
		return nil, err
	}
	rows, err := c.Query(ctx, `INSERT INTO users (`+strings.Join(userColumns, ", ")+`)
		SELECT COALESCE(id, nextval($1::regclass)), `+strings.Join(userColumns[1:], ", ")+`
		FROM import_staging ORDER BY line
		ON CONFLICT (email) DO NOTHING
		RETURNING id, email`, b.p.seq)
	if err != nil {
		return nil, err
	}
	inserted := make(map[string]int64, len(recs))
	var id int64
	var email string
	_, err = pgx.ForEachRow(rows, []any{&id, &email}, func() error {
		inserted[email] = id
		return nil
	})
	return inserted, err
}

func (b *pgBatch) lockStored(emails []string) ([]*domain.User, error) {
	rows, err := b.c.Query(b.ctx, `SELECT id, first_name, last_name, email, gender, role, COALESCE(ip_address, ''),
		password_hash, must_change_password, token_version, version, created_at, updated_at
		FROM users WHERE email = ANY($1) ORDER BY id FOR NO KEY UPDATE`, emails)
	if err != nil {
		return nil, err
	}
	var out []*domain.User
	var s domain.StoredUser
	_, err = pgx.ForEachRow(rows, []any{&s.ID, &s.FirstName, &s.LastName, &s.Email, &s.Gender, &s.Role, &s.IPAddress,
		&s.PasswordHash, &s.MustChangePassword, &s.TokenVersion, &s.Version, &s.CreatedAt, &s.UpdatedAt}, func() error {
		s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
		u, err := domain.RestoreUser(s)
		out = append(out, u)
		return err
	})
	return out, err
}

func (b *pgBatch) update(recs []userRecord) error {
	ctx, c := b.ctx, b.c
	if _, err := c.Exec(ctx, "TRUNCATE import_updates"); err != nil {
		return err
	}
	cols := append([]string{"line"}, userColumns...)
	_, err := c.CopyFrom(ctx, pgx.Identifier{"import_updates"}, cols, pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
		return append([]any{i}, b.p.s.importValues(recs[i])...), nil
	}))
	if err != nil {
		return err
	}
	var set []string
	for _, col := range userColumns {
		if col != "id" && col != "created_at" {
			set = append(set, col+" = s."+col)
		}
	}
	_, err = c.Exec(ctx, "UPDATE users AS u SET "+strings.Join(set, ", ")+" FROM import_updates AS s WHERE u.id = s.id")
	return err
}

// appendChanges copies the batch's entries into the change log under
// lockChangeLog, held to commit like every append (see appendChange); an
// atomic session stages them for Commit instead.
func (b *pgBatch) appendChanges(changes []domain.Change) error {
	ctx, c := b.ctx, b.c
	recs, err := b.p.s.changeRecords(changes)
	if err != nil {
		return err
	}
	jsonb := func(s *string) any {
		if s == nil {
			return nil
		}
		return []byte(*s)
	}
	cols := []string{"at", "actor_id", "action", "target_id", "before", "after"}
	table := pgx.Identifier{"change_log"}
	values := func(i int) ([]any, error) {
		r := recs[i]
		return []any{r.At.Time, r.ActorID, r.Action, r.TargetID, jsonb(r.Before), jsonb(r.After)}, nil
	}
	if b.p.atomic {
		table, cols = pgx.Identifier{"import_changes"}, append([]string{"ord"}, cols...)
		base := b.p.ord
		b.p.ord += int64(len(recs))
		plain := values
		values = func(i int) ([]any, error) {
			v, err := plain(i)
			return append([]any{base + int64(i)}, v...), err
		}
	} else {
		// As appendChange: the lock orders seq by commit, the notification
		// (delivered at commit) wakes the other instances' readers.
		if _, err := c.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockChangeLog); err != nil {
			return err
		}
		if _, err := c.Exec(ctx, "SELECT pg_notify($1, '')", notifyChannel); err != nil {
			return err
		}
	}
	_, err = c.CopyFrom(ctx, table, cols, pgx.CopyFromSlice(len(recs), values))
	return err
}
