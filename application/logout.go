package application

import (
	"context"
	"fmt"

	"github.com/userservice/userservice/domain"
)

// Logout revokes the refresh token's family if actor owns it; access tokens
// live out their short lifetime.
func (a *Auth) Logout(ctx context.Context, actor domain.Actor, refreshToken string) error {
	if err := requireNoPasswordChange(actor); err != nil {
		return err
	}
	if err := a.refresh.RevokeFamily(ctx, hashRefreshToken(refreshToken), actor.ID, a.clock.Now()); err != nil {
		return fmt.Errorf("revoke refresh family: %w", err)
	}
	return nil
}
