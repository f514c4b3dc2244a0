package gormstore

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// refreshRecord is a row of refresh_tokens.
type refreshRecord struct {
	Hash      string   `gorm:"column:hash;primaryKey"`
	UserID    int64    `gorm:"column:user_id"`
	FamilyID  string   `gorm:"column:family_id"`
	CreatedAt dbTime   `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt dbTime   `gorm:"column:expires_at"`
	SpentAt   nullTime `gorm:"column:spent_at"`
	RevokedAt nullTime `gorm:"column:revoked_at"`
}

func (refreshRecord) TableName() string { return "refresh_tokens" }

func refreshRecordOf(t ports.RefreshToken) refreshRecord {
	return refreshRecord{
		Hash: t.Hash, UserID: t.UserID, FamilyID: t.FamilyID,
		CreatedAt: newDBTime(t.CreatedAt), ExpiresAt: newDBTime(t.ExpiresAt),
	}
}

// RefreshTokens keeps refresh tokens with rotation and reuse detection.
type RefreshTokens struct{ s *Store }

var _ ports.RefreshTokenStore = (*RefreshTokens)(nil)

// Save stores a new token.
func (r *RefreshTokens) Save(ctx context.Context, t ports.RefreshToken) error {
	rec := refreshRecordOf(t)
	return translate(ctx, r.s.db.WithContext(ctx).Create(&rec).Error, false)
}

// Rotate spends the token with hash oldHash and stores next in its family,
// in one transaction with the old token's row locked, so of two concurrent
// presentations one rotates and the other is caught as a reuse. A reuse
// revokes the family and commits that revocation before reporting it.
func (r *RefreshTokens) Rotate(ctx context.Context, oldHash string, next ports.RefreshToken, now time.Time) (int64, bool, error) {
	var userID int64
	var reused bool
	err := r.s.write(ctx, func(tx *gorm.DB) error {
		var old refreshRecord
		err := tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).
			Where("hash = ?", oldHash).Take(&old).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			return domain.ErrUnauthenticated.Wrap(errors.New("unknown refresh token"))
		case err != nil:
			return err
		case old.RevokedAt.Valid:
			return domain.ErrUnauthenticated.Wrap(errors.New("revoked refresh token"))
		case old.SpentAt.Valid:
			// Someone holds a token that was already exchanged: the thief or
			// the owner, no telling which, so the whole family goes.
			userID, reused = old.UserID, true
			return revokeFamily(tx, old.FamilyID, now)
		case !now.Before(old.ExpiresAt.Time):
			return domain.ErrUnauthenticated.Wrap(errors.New("expired refresh token"))
		}
		if err := tx.Table("refresh_tokens").Where("hash = ?", oldHash).
			Update("spent_at", newDBTime(now)).Error; err != nil {
			return err
		}
		next.UserID, next.FamilyID = old.UserID, old.FamilyID
		rec := refreshRecordOf(next)
		if err := tx.Create(&rec).Error; err != nil {
			return err
		}
		userID = old.UserID
		return nil
	})
	switch {
	case err != nil:
		return 0, false, translate(ctx, err, false)
	case reused:
		return userID, true, domain.ErrUnauthenticated.Wrap(errors.New("refresh token reused: family revoked"))
	}
	return userID, false, nil
}

// RevokeFamily revokes the family of the token with hash, if userID owns
// it; otherwise it does nothing.
func (r *RefreshTokens) RevokeFamily(ctx context.Context, hash string, userID int64, now time.Time) error {
	return r.revokeFamilyWhere(ctx, now, "hash = ? AND user_id = ?", hash, userID)
}

// RevokeFamilyOf revokes the family of the token with hash whoever owns it;
// an unknown hash does nothing.
func (r *RefreshTokens) RevokeFamilyOf(ctx context.Context, hash string, now time.Time) error {
	return r.revokeFamilyWhere(ctx, now, "hash = ?", hash)
}

// revokeFamilyWhere revokes the family of the token the condition finds.
func (r *RefreshTokens) revokeFamilyWhere(ctx context.Context, now time.Time, cond string, args ...any) error {
	err := r.s.write(ctx, func(tx *gorm.DB) error {
		var old refreshRecord
		err := tx.Where(cond, args...).Take(&old).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return revokeFamily(tx, old.FamilyID, now)
	})
	return translate(ctx, err, false)
}

func revokeFamily(tx *gorm.DB, familyID string, now time.Time) error {
	return tx.Table("refresh_tokens").Where("family_id = ? AND revoked_at IS NULL", familyID).
		Update("revoked_at", newDBTime(now)).Error
}
