package application

import (
	"context"
	"errors"
	"fmt"

	"github.com/userservice/userservice/domain"
)

// Authenticate turns an access token into its actor, checking it against the
// user's current state: a deleted user, or a token version bumped by a
// password or role change or a revocation, makes the token invalid at once
// on this instance, and within TokenStatesConfig.Lease on the others. The
// state comes from TokenStates when configured, else from the user's row.
func (a *Auth) Authenticate(ctx context.Context, accessToken string) (domain.Actor, error) {
	claims, err := a.verifier.VerifyAccess(accessToken, a.clock.Now())
	if err != nil {
		return domain.Actor{}, fmt.Errorf("verify access token: %w", err)
	}
	st, err := a.tokenState(ctx, claims.UserID)
	if errors.Is(err, domain.ErrNotFound) {
		return domain.Actor{}, domain.ErrUnauthenticated.Wrap(err)
	}
	if err != nil {
		return domain.Actor{}, fmt.Errorf("load user %d: %w", claims.UserID, err)
	}
	if claims.TokenVersion != st.version {
		return domain.Actor{}, domain.ErrUnauthenticated
	}
	return st.actor(claims.UserID), nil
}

func (a *Auth) tokenState(ctx context.Context, id int64) (tokenState, error) {
	if a.states != nil {
		return a.states.state(ctx, id)
	}
	u, err := a.repo.Get(ctx, id)
	if err != nil {
		return tokenState{}, err
	}
	return stateOf(u), nil
}
