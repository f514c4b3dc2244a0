package application

import (
	"context"
	"errors"
	"fmt"

	"github.com/userservice/userservice/domain"
)

// Authenticate turns an access token into its actor, checking it against the
// user's current state: a deleted user, or a token version bumped by a
// password or role change or a revocation, makes the token invalid at once.
func (a *Auth) Authenticate(ctx context.Context, accessToken string) (domain.Actor, error) {
	claims, err := a.verifier.VerifyAccess(accessToken, a.clock.Now())
	if err != nil {
		return domain.Actor{}, fmt.Errorf("verify access token: %w", err)
	}
	u, err := a.repo.Get(ctx, claims.UserID)
	if errors.Is(err, domain.ErrNotFound) {
		return domain.Actor{}, domain.ErrUnauthenticated.Wrap(err)
	}
	if err != nil {
		return domain.Actor{}, fmt.Errorf("load user %d: %w", claims.UserID, err)
	}
	if claims.TokenVersion != u.TokenVersion() {
		return domain.Actor{}, domain.ErrUnauthenticated
	}
	return domain.Actor{ID: u.ID(), Role: u.Role(), PasswordChangeRequired: u.MustChangePassword()}, nil
}
