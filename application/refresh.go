package application

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// Refresh spends a refresh token and issues a new pair in its family.
// Presenting a spent token means it was copied: the store revokes its family,
// and here the owner's access tokens are revoked too (which, by bumping the
// token version, also ends the user's other refresh families).
func (a *Auth) Refresh(ctx context.Context, refreshToken string) (ports.TokenPair, error) {
	version, ok := refreshTokenVersion(refreshToken)
	if !ok {
		return ports.TokenPair{}, domain.ErrUnauthenticated
	}
	now := a.clock.Now()
	next, nextHash := newRefreshToken(version)
	userID, reused, err := a.refresh.Rotate(ctx, hashRefreshToken(refreshToken), ports.RefreshToken{
		Hash: nextHash, CreatedAt: now, ExpiresAt: now.Add(a.refreshTTL),
	}, now)
	if reused {
		a.log.WarnContext(ctx, "spent refresh token presented again; revoking the user's tokens", slog.Int64("user_id", userID))
		a.revokeTokens(ctx, userID)
		return ports.TokenPair{}, domain.ErrUnauthenticated
	}
	if err != nil {
		return ports.TokenPair{}, fmt.Errorf("rotate refresh token: %w", err)
	}

	u, err := a.repo.Get(ctx, userID)
	if errors.Is(err, domain.ErrNotFound) {
		return ports.TokenPair{}, domain.ErrUnauthenticated.Wrap(err)
	}
	if err != nil {
		return ports.TokenPair{}, fmt.Errorf("load user %d: %w", userID, err)
	}
	if u.TokenVersion() != version {
		// Issued before a password or role change or a revocation.
		if err := a.refresh.RevokeFamily(ctx, nextHash, userID, now); err != nil {
			a.log.WarnContext(ctx, "revoking an outdated refresh family failed", slog.Int64("user_id", userID), slog.Any("error", err))
		}
		return ports.TokenPair{}, domain.ErrUnauthenticated
	}
	access, err := a.issueAccess(u, now)
	if err != nil {
		return ports.TokenPair{}, err
	}
	return ports.TokenPair{
		AccessToken:            access,
		ExpiresIn:              a.expiresIn(),
		RefreshToken:           next,
		PasswordChangeRequired: u.MustChangePassword(),
	}, nil
}

// revokeTokens invalidates every access token of user id. It is internal
// bookkeeping, not a change of the user: no event, no new ETag, no audit
// entry. The client gets 401 whatever happens here, and a retry would find
// the family already revoked, so a failure can only be logged.
func (a *Auth) revokeTokens(ctx context.Context, id int64) {
	err := a.repo.UpdateInternal(ctx, id, func(u *domain.User) error {
		u.InvalidateTokens()
		return nil
	})
	if err != nil && !errors.Is(err, domain.ErrNotFound) {
		a.log.ErrorContext(ctx, "revoking access tokens after refresh token reuse failed", slog.Int64("user_id", id), slog.Any("error", err))
	}
}
