package application

import (
	"context"
	"fmt"

	"github.com/userservice/userservice/domain"
)

// Logout revokes the refresh token's family if actor owns it; access tokens
// live out their short lifetime. It is allowed during a forced password
// change: ending a session never grants anything.
func (a *Auth) Logout(ctx context.Context, actor domain.Actor, refreshToken string) error {
	if err := a.refresh.RevokeFamily(ctx, hashRefreshToken(refreshToken), actor.ID, a.clock.Now()); err != nil {
		return fmt.Errorf("revoke refresh family: %w", err)
	}
	return nil
}
