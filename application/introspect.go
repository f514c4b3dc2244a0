package application

import (
	"context"
	"errors"
	"fmt"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// Introspect tells a resource server whether token is an access token in
// force (RFC 7662). The caller needs tokens.introspect. The token is checked
// exactly as a request bearing it would be, by Authenticate, so a revoked
// token (password or role change, refresh-token reuse, deleted user) is
// inactive here at the same moment it stops working on a request. Anything
// that is not an active access token (a refresh token, garbage) is inactive,
// not an error: the RFC gives the caller no more than that.
func (a *Auth) Introspect(ctx context.Context, actor domain.Actor, token string) (ports.Introspection, error) {
	if err := requireNoPasswordChange(actor); err != nil {
		return ports.Introspection{}, err
	}
	if err := authorize(ctx, a.authz, actor, domain.PermTokensIntrospect, nil, domain.Role{}); err != nil {
		return ports.Introspection{}, err
	}
	owner, err := a.Authenticate(ctx, token)
	if errors.Is(err, domain.ErrUnauthenticated) {
		return ports.Introspection{}, nil
	}
	if err != nil {
		return ports.Introspection{}, err
	}
	// Authenticate verified the token a moment ago; reading its claims again
	// cannot fail but for the clock crossing its expiry in between, which
	// makes it inactive as well.
	claims, err := a.verifier.VerifyAccess(token, a.clock.Now())
	if err != nil {
		return ports.Introspection{}, nil
	}
	return ports.Introspection{Active: true, Claims: claims, Role: owner.Role, Subject: owner.ID}, nil
}

// Revoke revokes a refresh token's family (RFC 7009) for whoever holds it:
// the token is the proof, as it is for a refresh. An unknown, spent or
// already revoked token changes nothing and is no error, so a client cannot
// learn whether a string was ever a token. An access token cannot be revoked
// alone (it expires with ACCESS_TOKEN_TTL) and is domain.ErrUnsupportedTokenType.
func (a *Auth) Revoke(ctx context.Context, token string) error {
	if _, ok := refreshTokenVersion(token); ok {
		if err := a.refresh.RevokeFamilyOf(ctx, hashRefreshToken(token), a.clock.Now()); err != nil {
			return fmt.Errorf("revoke refresh family: %w", err)
		}
		return nil
	}
	if _, err := a.verifier.VerifyAccess(token, a.clock.Now()); err == nil {
		return domain.ErrUnsupportedTokenType
	}
	return nil
}
