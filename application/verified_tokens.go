package application

import (
	"sync"
	"time"

	"github.com/userservice/userservice/ports"
)

// verifiedFor is how long an access token the verifier accepted is taken as
// verified again without asking it: far below the minute within which a
// removed signing key must stop verifying, and the token's own expiry is
// still checked on every use.
const verifiedFor = time.Second

// maxVerified bounds the tokens remembered at once.
const maxVerified = 4096

// verifiedTokens is a ports.TokenVerifier that remembers, for verifiedFor,
// the tokens its verifier accepted, exactly as presented. A client sends
// the same access token with every request, and checking its signature and
// decoding its claims cost more CPU than anything else of a token check
// (about 20 us for HS256 measured under make bench; an asymmetric signature
// costs more). What a remembered token still has to pass is checked on
// every use: it is served from memory only before its expiry, within
// verifiedFor of its verification, and by the clock the verification used
// (a clock that went back asks the verifier again). Refusals are never
// remembered; the token version and role are checked after this, as before.
type verifiedTokens struct {
	verifier ports.TokenVerifier
	mu       sync.RWMutex
	tokens   map[string]verifiedToken
}

type verifiedToken struct {
	claims ports.AccessClaims
	at     time.Time // when the verifier accepted the token
}

var _ ports.TokenVerifier = (*verifiedTokens)(nil)

func rememberVerified(v ports.TokenVerifier) *verifiedTokens {
	return &verifiedTokens{verifier: v, tokens: map[string]verifiedToken{}}
}

func (e verifiedToken) fresh(now time.Time) bool {
	return !now.Before(e.at) && now.Sub(e.at) < verifiedFor && now.Before(e.claims.ExpiresAt)
}

// VerifyAccess answers from memory when it can, else asks the verifier.
func (v *verifiedTokens) VerifyAccess(token string, now time.Time) (ports.AccessClaims, error) {
	v.mu.RLock()
	e, ok := v.tokens[token]
	v.mu.RUnlock()
	if ok && e.fresh(now) {
		return e.claims, nil
	}
	claims, err := v.verifier.VerifyAccess(token, now)
	if err != nil {
		return claims, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.tokens) >= maxVerified {
		for t, e := range v.tokens {
			if !e.fresh(now) {
				delete(v.tokens, t)
			}
		}
		if len(v.tokens) >= maxVerified {
			clear(v.tokens)
		}
	}
	v.tokens[token] = verifiedToken{claims: claims, at: now}
	return claims, nil
}
