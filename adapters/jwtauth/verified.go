package jwtauth

import (
	"sync"
	"time"

	"github.com/userservice/userservice/ports"
)

// verifiedFor is how long an access token this verifier accepted is taken
// as verified again without checking its signature: the token's own expiry
// is still checked on every use, and a change of the keys in force forgets
// everything at once.
const verifiedFor = time.Second

// maxVerified bounds the tokens remembered at once.
const maxVerified = 4096

// verifiedTokens remembers, for verifiedFor, the access tokens VerifyAccess
// accepted, exactly as presented, each with the key ring it was verified
// under. A client sends the same access token with every request, and
// checking its signature and decoding its claims cost more CPU than the
// rest of a token check (about 20 us for HS256 under make bench; an Ed25519
// signature costs more). A remembered token is served only before its
// expiry, within verifiedFor of its verification, by a clock that did not
// go back, and while the same keys are in force: a key removed (or added)
// by a reload refuses what it signed at once, not a second later.
// Refusals are never remembered; the token version and role are checked
// by the caller after this, as ever.
type verifiedTokens struct {
	mu     sync.RWMutex
	tokens map[string]verifiedToken
}

type verifiedToken struct {
	claims ports.AccessClaims
	ring   *keyRing  // the keys in force when it was verified (nil: HS256 only)
	at     time.Time // when it was verified
}

func (e verifiedToken) fresh(ring *keyRing, now time.Time) bool {
	return e.ring == ring && !now.Before(e.at) && now.Sub(e.at) < verifiedFor && now.Before(e.claims.ExpiresAt)
}

// lookup returns the claims of token if it was verified under ring within
// verifiedFor and has not expired.
func (v *verifiedTokens) lookup(token string, ring *keyRing, now time.Time) (ports.AccessClaims, bool) {
	v.mu.RLock()
	e, ok := v.tokens[token]
	v.mu.RUnlock()
	if ok && e.fresh(ring, now) {
		return e.claims, true
	}
	return ports.AccessClaims{}, false
}

// remember records that token was verified under ring at now.
func (v *verifiedTokens) remember(token string, ring *keyRing, claims ports.AccessClaims, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.tokens == nil {
		v.tokens = map[string]verifiedToken{}
	}
	if len(v.tokens) >= maxVerified {
		for t, e := range v.tokens {
			if !e.fresh(ring, now) {
				delete(v.tokens, t)
			}
		}
		if len(v.tokens) >= maxVerified {
			clear(v.tokens)
		}
	}
	v.tokens[token] = verifiedToken{claims: claims, ring: ring, at: now}
}
