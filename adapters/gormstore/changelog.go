package gormstore

import (
	"context"
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
	db = db.Where("action <> '" + string(domain.ActionTokensRevoked) + "'") // a constant, written in so plans see it
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
	out := make([]domain.Change, len(recs))
	for i, r := range recs {
		c, err := r.change()
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}
