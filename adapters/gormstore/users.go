package gormstore

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// UserRepository is the user repository. Every write appends its change-log entry in
// its own transaction.
type UserRepository struct{ s *Store }

var _ ports.UserRepository = (*UserRepository)(nil)

// Create inserts u, keeping its id when non-zero (domain.ErrIDTaken when
// another user has it or had it: see retireUserID), and returns it as stored.
func (r *UserRepository) Create(ctx context.Context, u *domain.User, actor domain.Actor) (*domain.User, error) {
	rec := recordOf(u)
	var out *domain.User
	err := r.s.write(ctx, func(tx *gorm.DB) error {
		explicit := rec.ID != 0
		if err := r.s.xactLock(tx, lockUserIDs, !explicit); err != nil {
			return err
		}
		if explicit {
			retired, err := retiredUserIDs(tx, []int64{rec.ID})
			if err != nil {
				return err
			}
			if len(retired) > 0 {
				return domain.ErrIDTaken
			}
		}
		if err := tx.Create(&rec).Error; err != nil {
			return err
		}
		if explicit {
			if err := r.s.advanceUserIDs(tx, rec.ID); err != nil {
				return err
			}
		}
		var err error
		if out, err = rec.user(); err != nil {
			return err
		}
		actorID := actor.ID
		if actor.IsNewcomer() {
			actorID = rec.ID // a sign-up: the user creates themselves
		}
		return r.s.appendChange(tx, domain.Change{
			ActorID: actorID, Action: domain.ActionCreated, TargetID: rec.ID, After: out,
		})
	})
	if err != nil {
		return nil, translate(ctx, err, true)
	}
	return out, nil
}

// advanceUserIDs moves PostgreSQL's id sequence past an explicitly inserted
// id, so later drawn ids do not collide with it. The caller holds
// lockUserIDs exclusively: no id is drawn between the read of the sequence
// and setval. SQLite's AUTOINCREMENT already continues after the largest id.
func (s *Store) advanceUserIDs(tx *gorm.DB, id int64) error {
	if s.dialect != dialectPostgres {
		return nil
	}
	return tx.Exec(`SELECT setval(seq, ?) FROM (SELECT pg_get_serial_sequence('users', 'id')::regclass AS seq) AS s
		WHERE ? > COALESCE(pg_sequence_last_value(seq), 0)`, id, id).Error
}

// Get returns the user with id, or domain.ErrNotFound. On PostgreSQL it is
// read without GORM (getUserPostgres): the service's hottest read.
func (r *UserRepository) Get(ctx context.Context, id int64) (*domain.User, error) {
	if r.s.pg != nil {
		return r.s.getUserPostgres(ctx, id)
	}
	return r.getWhere(ctx, "id = ?", id)
}

// GetByEmail returns the user with email, or domain.ErrNotFound.
func (r *UserRepository) GetByEmail(ctx context.Context, email domain.Email) (*domain.User, error) {
	return r.getWhere(ctx, "email = ?", email.String())
}

func (r *UserRepository) getWhere(ctx context.Context, cond string, arg any) (*domain.User, error) {
	var rec userRecord
	if err := r.s.read.WithContext(ctx).Where(cond, arg).Take(&rec).Error; err != nil {
		return nil, translate(ctx, err, true)
	}
	u, err := rec.user()
	if err != nil {
		return nil, translate(ctx, err, true)
	}
	return u, nil
}

// lockUser reads the user with id and locks its row until the transaction
// ends: FOR UPDATE on PostgreSQL before a deletion, otherwise FOR NO KEY
// UPDATE, which still excludes every other writer of the row but lets a
// refresh token referencing the user be saved meanwhile. SQLite's write
// transaction already excludes every other writer.
func (s *Store) lockUser(tx *gorm.DB, id int64, forDelete bool) (*domain.User, error) {
	strength := "NO KEY UPDATE"
	if forDelete {
		strength = clause.LockingStrengthUpdate
	}
	var rec userRecord
	if err := tx.Clauses(clause.Locking{Strength: strength}).Where("id = ?", id).Take(&rec).Error; err != nil {
		return nil, err
	}
	return rec.user()
}

// superadminCount counts superadmins in tx. On PostgreSQL it first takes
// lockSuperadmins, held to commit: a concurrent demotion or deletion of a
// superadmin waits, then counts what this transaction committed.
func (s *Store) superadminCount(ctx context.Context, tx *gorm.DB) domain.SuperadminCount {
	return func() (int64, error) {
		if err := s.xactLock(tx, lockSuperadmins, false); err != nil {
			return 0, translate(ctx, err, false)
		}
		var n int64
		err := tx.Table("users").Where("role = ?", domain.RoleSuperadmin.String()).Count(&n).Error
		return n, translate(ctx, err, false)
	}
}

// Update runs fn on the locked user and saves the result, its version
// bumped, with its change entry. When fn leaves the user as it was, nothing
// is written. fn's own
// errors come back unchanged, after everything is rolled back.
func (r *UserRepository) Update(ctx context.Context, id int64, actor domain.Actor, fn ports.UpdateFunc) (*domain.User, error) {
	var out *domain.User
	err := r.s.write(ctx, func(tx *gorm.DB) error {
		u, err := r.s.lockUser(tx, id, false)
		if err != nil {
			return err
		}
		before := u.Clone()
		action, err := fn(u, r.s.superadminCount(ctx, tx))
		if err != nil {
			return callerError{err}
		}
		if sameStored(before.Stored(), u.Stored()) {
			out = u
			return nil
		}
		if u.ID() != id {
			return fmt.Errorf("gormstore: update of user %d changed its id to %d", id, u.ID())
		}
		if action == "" {
			return errors.New("gormstore: update changed the user but named no change action")
		}
		rec := recordOf(u)
		rec.Version = before.Version() + 1 // a visible write: a new ETag
		if err := tx.Table("users").Where("id = ?", id).Updates(rec.changes()).Error; err != nil {
			return err
		}
		if out, err = rec.user(); err != nil {
			return err
		}
		return r.s.appendChange(tx, domain.Change{
			ActorID: actor.ID, Action: action, TargetID: id, Before: before, After: out,
		})
	})
	if err != nil {
		return nil, translate(ctx, err, true)
	}
	return out, nil
}

// UpdateInternal runs fn on the locked user and saves its new password hash
// and token version, with no public change-log entry; see
// ports.UserRepository. Ending the user's tokens appends an internal entry
// (domain.ActionTokensRevoked) that readers other than the token check skip.
func (r *UserRepository) UpdateInternal(ctx context.Context, id int64, fn func(u *domain.User) error) error {
	err := r.s.write(ctx, func(tx *gorm.DB) error {
		u, err := r.s.lockUser(tx, id, false)
		if err != nil {
			return err
		}
		before := u.Stored()
		if err := fn(u); err != nil {
			return callerError{err}
		}
		after := u.Stored()
		if sameStored(before, after) {
			return nil
		}
		visible := after
		visible.PasswordHash, visible.TokenVersion = before.PasswordHash, before.TokenVersion
		if !sameStored(before, visible) {
			return fmt.Errorf("gormstore: an internal update of user %d changed more than its password hash and token version", id)
		}
		if err := tx.Table("users").Where("id = ?", id).
			Updates(map[string]any{"password_hash": after.PasswordHash, "token_version": after.TokenVersion}).Error; err != nil {
			return err
		}
		if after.TokenVersion == before.TokenVersion {
			return nil
		}
		// Ended tokens must reach every instance's token check, which
		// follows the change log: an internal entry, never an event or an
		// audit entry, tells them.
		return r.s.appendChange(tx, domain.Change{ActorID: id, Action: domain.ActionTokensRevoked, TargetID: id})
	})
	return translate(ctx, err, true)
}

// sameStored reports whether two states of a user are equal, comparing
// times as instants.
func sameStored(a, b domain.StoredUser) bool {
	timesEqual := a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
	a.CreatedAt, a.UpdatedAt = b.CreatedAt, b.UpdatedAt
	return timesEqual && a == b
}

// Delete runs check on the locked user, then deletes it (its refresh tokens
// go with it) and returns it as it was. check's errors come back unchanged.
func (r *UserRepository) Delete(ctx context.Context, id int64, actor domain.Actor, check ports.DeleteCheck) (*domain.User, error) {
	var out *domain.User
	err := r.s.write(ctx, func(tx *gorm.DB) error {
		// Shared, and before the row: an insert of an explicit id (which
		// takes it exclusively) then either sees this id retired or runs
		// before the deletion, against the row still there; it never slips
		// in between the delete and the retirement.
		if err := r.s.xactLock(tx, lockUserIDs, true); err != nil {
			return err
		}
		u, err := r.s.lockUser(tx, id, true)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(u, r.s.superadminCount(ctx, tx)); err != nil {
				return callerError{err}
			}
		}
		if err := tx.Exec("DELETE FROM users WHERE id = ?", id).Error; err != nil {
			return err
		}
		if err := retireUserID(tx, id); err != nil {
			return err
		}
		out = u
		return r.s.appendChange(tx, domain.Change{
			ActorID: actor.ID, Action: domain.ActionDeleted, TargetID: id, Before: u,
		})
	})
	if err != nil {
		return nil, translate(ctx, err, true)
	}
	return out, nil
}

// retireUserID records that id was deleted, in the deletion's transaction,
// so that no later account is given it: tokens name their account by id,
// and a deleted account's token must never authenticate anyone. Drawn ids
// never repeat (SQLite's AUTOINCREMENT, PostgreSQL's sequence moved past
// every explicit id); an explicit id (an import's) is refused when retired.
func retireUserID(tx *gorm.DB, id int64) error {
	return tx.Exec("INSERT INTO retired_user_ids (id) VALUES (?) ON CONFLICT DO NOTHING", id).Error
}

// retiredUserIDs returns those of ids that belonged to deleted users.
func retiredUserIDs(tx *gorm.DB, ids []int64) ([]int64, error) {
	var found []int64
	err := tx.Table("retired_user_ids").Where("id IN ?", ids).Pluck("id", &found).Error
	return found, err
}

// Ping reports whether the database answers.
func (r *UserRepository) Ping(ctx context.Context) error { return r.s.Ping(ctx) }

// PasswordHashClasses groups the users with a password by the first 7 bytes
// of their hash ("$2b$12$", "$argon2"). It reads every row: the caller asks
// rarely (minutes apart).
func (r *UserRepository) PasswordHashClasses(ctx context.Context) ([]ports.PasswordHashClass, error) {
	var rows []struct {
		Sample string
		N      int64
	}
	err := r.s.read.WithContext(ctx).Table("users").
		Select("min(password_hash) AS sample, count(*) AS n").
		Where("password_hash <> ''").
		Group("substr(password_hash, 1, 7)").
		Order("sample").
		Scan(&rows).Error
	if err != nil {
		return nil, translate(ctx, err, false)
	}
	out := make([]ports.PasswordHashClass, len(rows))
	for i, row := range rows {
		out[i] = ports.PasswordHashClass{Sample: row.Sample, Count: row.N}
	}
	return out, nil
}
