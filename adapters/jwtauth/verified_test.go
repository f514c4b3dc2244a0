package jwtauth

import (
	"strconv"
	"testing"
	"time"

	"github.com/userservice/userservice/ports"
)

// TestVerifiedTokensAreRememberedBriefly holds the memory of verified tokens
// to its rules: within verifiedFor, before the token's expiry, on a clock
// that did not go back, and under the same keys only; and bounded.
func TestVerifiedTokensAreRememberedBriefly(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ringA, ringB := &keyRing{}, &keyRing{}
	var v verifiedTokens
	claims := ports.AccessClaims{UserID: 7, TokenVersion: 1, ExpiresAt: t0.Add(10 * time.Second)}
	v.remember("tok", ringA, claims, t0)

	for _, c := range []struct {
		what string
		ring *keyRing
		at   time.Time
		want bool
	}{
		{"at once", ringA, t0, true},
		{"just within verifiedFor", ringA, t0.Add(verifiedFor - time.Nanosecond), true},
		{"at verifiedFor", ringA, t0.Add(verifiedFor), false},
		{"on a clock that went back", ringA, t0.Add(-time.Nanosecond), false},
		{"under other keys (a reload)", ringB, t0, false},
		{"with no keys (HS256 only)", nil, t0, false},
	} {
		if got, ok := v.lookup("tok", c.ring, c.at); ok != c.want || (ok && got.UserID != 7) {
			t.Errorf("%s: remembered %v (%+v), want %v", c.what, ok, got, c.want)
		}
	}
	if _, ok := v.lookup("other", ringA, t0); ok {
		t.Error("a token never verified was remembered")
	}
	late := ports.AccessClaims{UserID: 8, ExpiresAt: t0.Add(time.Millisecond)}
	v.remember("late", ringA, late, t0)
	if _, ok := v.lookup("late", ringA, t0.Add(time.Millisecond)); ok {
		t.Error("a remembered token outlived its expiry")
	}

	for i := range 3 * maxVerified {
		v.remember("t"+strconv.Itoa(i), ringA, claims, t0)
		if n := len(v.tokens); n > maxVerified {
			t.Fatalf("%d tokens remembered, bound %d", n, maxVerified)
		}
	}
	if _, ok := v.lookup("t"+strconv.Itoa(3*maxVerified-1), ringA, t0); !ok {
		t.Error("the latest token was not remembered")
	}
}
