package gormstore

import (
	"context"

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
	rec := changeRecord{
		At: newDBTime(s.now()), ActorID: c.ActorID, Action: string(c.Action),
		TargetID: c.TargetID, Before: before, After: after,
	}
	return tx.Create(&rec).Error
}

// ChangeLog reads the change log.
type ChangeLog struct{ s *Store }

var _ ports.ChangeLog = (*ChangeLog)(nil)

// ChangesAfter returns up to limit entries with seq > after, in seq order
// (limit <= 0: all of them).
func (l *ChangeLog) ChangesAfter(ctx context.Context, after int64, limit int) ([]domain.Change, error) {
	return l.find(ctx, l.s.read.WithContext(ctx).Where("seq > ?", after), limit)
}

// Audit returns entries matching q in seq order. Since is inclusive and
// Until exclusive, so consecutive windows neither overlap nor leave gaps.
func (l *ChangeLog) Audit(ctx context.Context, q ports.AuditQuery) ([]domain.Change, error) {
	db := l.s.read.WithContext(ctx).Where("seq > ?", q.AfterSeq)
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
	return l.find(ctx, db, q.Limit)
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
