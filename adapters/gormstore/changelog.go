package gormstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// appendChange writes c (Seq and At assigned here) in tx. On PostgreSQL it
// first takes lockChangeLog, held to commit: the next append waits until
// this transaction has committed (or rolled back) and only then draws its
// seq, so no smaller seq can commit after a larger one is visible. A reader
// of "seq > last" therefore never skips an entry; a rolled-back append
// leaves a gap, which readers need not wait for. SQLite's single writer
// gives the same order without a lock.
func (s *Store) appendChange(tx *gorm.DB, c domain.Change) error {
	before, err := encodeSnapshot(c.Before)
	if err != nil {
		return err
	}
	after, err := encodeSnapshot(c.After)
	if err != nil {
		return err
	}
	if err := s.xactLock(tx, lockChangeLog, false); err != nil {
		return err
	}
	if err := s.notifyInTx(tx); err != nil {
		return err
	}
	rec := changeRecord{
		At: newDBTime(s.now()), ActorID: c.ActorID, Action: string(c.Action),
		TargetID: c.TargetID, Before: before, After: after,
	}
	return tx.Create(&rec).Error
}

// ChangeLog reads the change log and bounds its retention.
type ChangeLog struct{ s *Store }

var (
	_ ports.ChangeLog          = (*ChangeLog)(nil)
	_ ports.ChangeLogRetention = (*ChangeLog)(nil)
)

// ChangeLogRetention returns the change log's retention: its bounds and pruning.
func (s *Store) ChangeLogRetention() ports.ChangeLogRetention { return s.changes }

// pruneBatch bounds one pruning transaction, so that pruning a large
// backlog never holds SQLite's write lock (or a long PostgreSQL
// transaction) for long.
const pruneBatch = 5000

// SeqBounds returns the smallest and the largest seq held (0, 0 when empty).
func (l *ChangeLog) SeqBounds(ctx context.Context) (first, last int64, err error) {
	var b struct{ First, Last int64 }
	err = l.s.read.WithContext(ctx).Raw("SELECT COALESCE(MIN(seq), 0) AS first, COALESCE(MAX(seq), 0) AS last FROM change_log").Scan(&b).Error
	if err != nil {
		return 0, 0, translate(ctx, err, false)
	}
	return b.First, b.Last, nil
}

// Prune deletes the entries written before before, oldest first, in
// batches, never the newest entry.
func (l *ChangeLog) Prune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := l.s.write(ctx, func(tx *gorm.DB) error {
			res := tx.Exec(`DELETE FROM change_log WHERE seq IN (
				SELECT seq FROM change_log
				WHERE at < ? AND seq < (SELECT MAX(seq) FROM change_log)
				ORDER BY seq LIMIT ?)`, newDBTime(before), pruneBatch)
			n = res.RowsAffected
			return res.Error
		})
		if err != nil {
			return total, translate(ctx, err, false)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}

// ChangesAfter returns up to limit entries with seq > after, in seq order
// (limit <= 0: all of them).
func (l *ChangeLog) ChangesAfter(ctx context.Context, after int64, limit int) ([]domain.Change, error) {
	return l.find(ctx, l.s.read.WithContext(ctx).Where("seq > ?", after), limit)
}

// targetsAfterSQL reads what TargetsAfter returns, in the order of the
// primary key.
const targetsAfterSQL = "SELECT seq, target_id FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2"

// TargetsAfter returns the seq and target of up to limit entries with
// seq > after, in seq order. It reads two integer columns, never the
// snapshots, through readRows.
func (l *ChangeLog) TargetsAfter(ctx context.Context, after int64, limit int) ([]ports.ChangeTarget, error) {
	var out []ports.ChangeTarget
	err := l.s.readRows(ctx, targetsAfterSQL, []any{after, limit}, func(r rowScanner) error {
		var t ports.ChangeTarget
		if err := r.Scan(&t.Seq, &t.TargetID); err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	return out, err
}

// The statements of CatchUp: $1 is After, $2 Limit, $3 TargetID.
const (
	// catchUpBoundsSQL: the time of the first entry after $1, and the
	// first seq held; both walk the primary key to their one row.
	catchUpBoundsSQL = "SELECT (SELECT at FROM change_log WHERE seq > $1 ORDER BY seq LIMIT 1) AS next_at, " +
		"(SELECT COALESCE(MIN(seq), 0) FROM change_log) AS first_seq"
	// Internal entries are left out with a constant written in, so that
	// plans see it, as in auditFilter.
	publicEntry = "action <> '" + string(domain.ActionTokensRevoked) + "'"
	// catchUpTargetSQL: one user's entries, through change_log_target_seq
	// in its order.
	catchUpTargetSQL = "SELECT seq, at, actor_id, action, target_id, before, after FROM change_log " +
		"WHERE target_id = $3 AND seq > $1 AND " + publicEntry + " ORDER BY seq LIMIT $2"
	// catchUpAllSQL: every user's entries, through the primary key.
	catchUpAllSQL = "SELECT seq, at, actor_id, action, target_id, before, after FROM change_log " +
		"WHERE seq > $1 AND " + publicEntry + " ORDER BY seq LIMIT $2"
	// catchUpJoin puts the bounds on each entry of a page (and on a row of
	// NULLs when the page is empty), in one statement.
	catchUpJoin = "SELECT b.next_at, b.first_seq, p.seq, p.at, p.actor_id, p.action, p.target_id, p.before, p.after FROM (" +
		catchUpBoundsSQL + ") b LEFT JOIN (%s) p ON true"
)

// catchUpSQL is the statement of a CatchUp page: by target or of everyone.
var catchUpSQL = map[bool]string{
	true:  fmt.Sprintf(catchUpJoin, catchUpTargetSQL),
	false: fmt.Sprintf(catchUpJoin, catchUpAllSQL),
}

// CatchUp reads a page of q's entries and the log's bounds after q.After
// in one statement (through readRows). A subscription with since_seq is
// answered from it, its window check and its first page at once: a resume
// costs about what a read of a user by id does.
func (l *ChangeLog) CatchUp(ctx context.Context, q ports.CatchUpQuery) (ports.CatchUpPage, error) {
	var page ports.CatchUpPage
	var next nullTime
	if q.Limit <= 0 {
		err := l.s.readRows(ctx, catchUpBoundsSQL, []any{q.After}, func(r rowScanner) error {
			return r.Scan(&next, &page.FirstSeq)
		})
		page.NextAt = next.Time
		return page, err
	}
	args := []any{q.After, q.Limit}
	if q.TargetID != nil {
		args = append(args, *q.TargetID)
	}
	var recs []changeRecord
	err := l.s.readRows(ctx, catchUpSQL[q.TargetID != nil], args, func(r rowScanner) error {
		var seq, actor, target *int64
		var action *string
		var at nullTime
		var rec changeRecord
		if err := r.Scan(&next, &page.FirstSeq, &seq, &at, &actor, &action, &target, &rec.Before, &rec.After); err != nil || seq == nil {
			return err // no entry: the bounds alone
		}
		rec.Seq, rec.At, rec.ActorID, rec.Action, rec.TargetID = *seq, dbTime{at.Time}, *actor, *action, *target
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		return ports.CatchUpPage{}, err
	}
	// A join's rows come in no order of their own.
	slices.SortFunc(recs, func(a, b changeRecord) int { return cmp.Compare(a.Seq, b.Seq) })
	page.NextAt = next.Time
	page.Changes, err = changes(recs)
	return page, err
}

// Audit returns entries matching q in seq order. Since is inclusive and
// Until exclusive, so consecutive windows neither overlap nor leave gaps.
func (l *ChangeLog) Audit(ctx context.Context, q ports.AuditQuery) ([]domain.Change, error) {
	db := auditFilter(l.s.read.WithContext(ctx).Where("seq > ?", q.AfterSeq), q)
	return l.find(ctx, db, q.Limit)
}

// CountAudit counts entries matching q's filters (not AfterSeq or Limit),
// exactly up to limit; past it, like Users.Count, PostgreSQL answers with
// the planner's estimate.
func (l *ChangeLog) CountAudit(ctx context.Context, q ports.AuditQuery, limit int64) (int64, bool, error) {
	return l.s.count(ctx, l.s.read, func(db *gorm.DB) *gorm.DB { return auditFilter(db.Table("change_log"), q) }, limit)
}

// auditFilter applies q's filters (not AfterSeq or Limit) to db. Internal
// entries are never part of the audit trail.
func auditFilter(db *gorm.DB, q ports.AuditQuery) *gorm.DB {
	db = db.Where(publicEntry)
	if q.TargetID != nil {
		db = db.Where("target_id = ?", *q.TargetID)
	}
	if q.ActorID != nil {
		db = db.Where("actor_id = ?", *q.ActorID)
	}
	if q.Action != "" {
		db = db.Where("action = ?", string(q.Action))
	}
	if !q.Since.IsZero() {
		db = db.Where("at >= ?", newDBTime(q.Since))
	}
	if !q.Until.IsZero() {
		db = db.Where("at < ?", newDBTime(q.Until))
	}
	return db
}

func (l *ChangeLog) find(ctx context.Context, db *gorm.DB, limit int) ([]domain.Change, error) {
	db = db.Order("seq")
	if limit > 0 {
		db = db.Limit(limit)
	}
	var recs []changeRecord
	if err := db.Find(&recs).Error; err != nil {
		return nil, translate(ctx, err, false)
	}
	return changes(recs)
}

func changes(recs []changeRecord) ([]domain.Change, error) {
	return convertAll(recs, changeRecord.change)
}
