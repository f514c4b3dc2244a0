package application

import (
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// countingVerifier accepts "ok:N" tokens until their expiry, refuses the
// rest, and counts what it is asked.
type countingVerifier struct {
	mu     sync.Mutex
	asked  map[string]int
	expiry time.Time
	refuse bool // refuse everything from now on (a removed key)
}

func (v *countingVerifier) VerifyAccess(token string, now time.Time) (ports.AccessClaims, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.asked[token]++
	if v.refuse || len(token) < 3 || token[:3] != "ok:" || !now.Before(v.expiry) {
		return ports.AccessClaims{}, domain.ErrUnauthenticated
	}
	id, err := strconv.ParseInt(token[3:], 10, 64)
	if err != nil {
		return ports.AccessClaims{}, domain.ErrUnauthenticated
	}
	return ports.AccessClaims{UserID: id, TokenVersion: 1, ExpiresAt: v.expiry}, nil
}

func (v *countingVerifier) count(token string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.asked[token]
}

func TestVerifiedTokensAreRememberedBriefly(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v := &countingVerifier{asked: map[string]int{}, expiry: t0.Add(10 * time.Second)}
	r := rememberVerified(v)
	verify := func(token string, at time.Time) error {
		t.Helper()
		c, err := r.VerifyAccess(token, at)
		if err == nil && strconv.FormatInt(c.UserID, 10) != token[3:] {
			t.Fatalf("%s: claims of user %d", token, c.UserID)
		}
		return err
	}

	// Verified once, then answered from memory within verifiedFor.
	for _, at := range []time.Time{t0, t0.Add(verifiedFor / 2), t0.Add(verifiedFor - time.Nanosecond)} {
		if err := verify("ok:7", at); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.count("ok:7"); n != 1 {
		t.Fatalf("the verifier was asked %d times within %v, want 1", n, verifiedFor)
	}
	// Past verifiedFor, or on a clock that went back, the verifier is asked
	// again, and its refusal (a removed key) stands.
	if err := verify("ok:7", t0.Add(-time.Millisecond)); err != nil || v.count("ok:7") != 2 {
		t.Fatalf("a clock that went back: %v, asked %d times", err, v.count("ok:7"))
	}
	v.mu.Lock()
	v.refuse = true
	v.mu.Unlock()
	if err := verify("ok:7", t0.Add(verifiedFor)); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("after the verifier stopped accepting it, %v past %v", err, verifiedFor)
	}
	v.mu.Lock()
	v.refuse = false
	v.mu.Unlock()

	// Expiry is checked on every use, whatever is remembered.
	late := v.expiry.Add(-time.Millisecond)
	if err := verify("ok:8", late); err != nil {
		t.Fatal(err)
	}
	if err := verify("ok:8", v.expiry); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("at its expiry a remembered token gave %v", err)
	}
	if n := v.count("ok:8"); n != 2 {
		t.Fatalf("the expired token was not taken back to the verifier (%d asks)", n)
	}

	// Refusals are not remembered; another spelling is another token.
	for range 2 {
		if err := verify("no:9", t0); !errors.Is(err, domain.ErrUnauthenticated) {
			t.Fatal(err)
		}
	}
	if n := v.count("no:9"); n != 2 {
		t.Fatalf("a refused token was asked %d times, want 2", n)
	}
}

func TestVerifiedTokensAreBounded(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v := &countingVerifier{asked: map[string]int{}, expiry: t0.Add(time.Hour)}
	r := rememberVerified(v)
	for i := range 3 * maxVerified {
		if _, err := r.VerifyAccess("ok:"+strconv.Itoa(i), t0); err != nil {
			t.Fatal(err)
		}
		if n := len(r.tokens); n > maxVerified {
			t.Fatalf("%d tokens remembered, bound %d", n, maxVerified)
		}
	}
	// The most recent one is still remembered.
	last := "ok:" + strconv.Itoa(3*maxVerified-1)
	if _, err := r.VerifyAccess(last, t0); err != nil || v.count(last) != 1 {
		t.Fatalf("the latest token: %v, asked %d times", err, v.count(last))
	}
}
