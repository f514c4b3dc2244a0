package ratelimit_test

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/userservice/userservice/adapters/ratelimit"
	"github.com/userservice/userservice/domain"
)

// attempt asks l about one check of account's password from client and
// reports it failed (or not); it returns the refusal, if any.
func attempt(t *testing.T, l *ratelimit.Limiter, account, client string, failed bool) error {
	t.Helper()
	done, err := l.Attempt(t.Context(), account, netip.MustParseAddr(client))
	if err != nil {
		if !errors.Is(err, domain.ErrTooManyFailures) {
			t.Fatalf("Attempt(%s, %s): %v, want nil or ErrTooManyFailures", account, client, err)
		}
		if de := domain.AsError(err); de.RetryAfter < time.Second || de.RetryAfter > time.Minute {
			t.Fatalf("refused with RetryAfter %v, want 1s..1m", de.RetryAfter)
		}
		return err
	}
	done(failed)
	return nil
}

// With the shipped limits, failed checks are counted per account and client
// network: 5 failures from one /24 (or IPv6 /64) refuse that network, while
// another network, and another account, keep their budgets; right passwords
// are not counted at all.
func TestAttemptPerAccountAndNetwork(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, ratelimit.Config{Dir: shipped, RedisURL: b.redisURL(t)})
			for i := range 5 {
				if err := attempt(t, h.l, "user:1", fmt.Sprintf("192.0.2.%d", i+1), true); err != nil {
					t.Fatalf("failure %d from 192.0.2.0/24 refused", i+1)
				}
			}
			if attempt(t, h.l, "user:1", "192.0.2.200", false) == nil {
				t.Fatal("a 6th check from the same /24 was let through")
			}
			if attempt(t, h.l, "user:1", "192.0.3.1", false) != nil {
				t.Fatal("a check from another /24 was refused: the failures of one network lock the owner out")
			}
			if attempt(t, h.l, "user:2", "192.0.2.1", false) != nil {
				t.Fatal("another account was refused from the failing network")
			}
			// Right passwords give their tokens back.
			for i := range 12 {
				if attempt(t, h.l, "user:3", "198.51.100.7", false) != nil {
					t.Fatalf("successful check %d refused", i+1)
				}
			}
			// IPv6: one /64 is one network.
			for i := range 5 {
				if attempt(t, h.l, "user:4", fmt.Sprintf("2001:db8:0:1::%x", i+1), true) != nil {
					t.Fatalf("failure %d from 2001:db8:0:1::/64 refused", i+1)
				}
			}
			if attempt(t, h.l, "user:4", "2001:db8:0:1:ffff::1", false) == nil {
				t.Fatal("a 6th check from the same /64 was let through")
			}
			if attempt(t, h.l, "user:4", "2001:db8:0:2::1", false) != nil {
				t.Fatal("a check from another /64 was refused")
			}
			if n := h.counter(t, "userservice_ratelimit_limited_total", map[string]string{"rule": ratelimit.RuleFailures, "route": "-"}); n != 2 {
				t.Fatalf("limited_total{rule=%s} = %v, want 2", ratelimit.RuleFailures, n)
			}
		})
	}
}

const failureLimits = `
rules:
  - name: login-failures
    tokens: 2
    interval: 1m
  - name: login-failures-account
    tokens: 5
    interval: 1m
`

// The ceiling counts an account's failures from every network: past it
// even a clean network is refused (the price of a ceiling, SECURITY.md),
// and a check it refuses does not spend the network's budget.
func TestAttemptCeiling(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, ratelimit.Config{Dir: limitsDir(t, failureLimits), RedisURL: b.redisURL(t)})
			for i := range 5 {
				if attempt(t, h.l, "user:1", fmt.Sprintf("203.0.%d.1", i/2), true) != nil {
					t.Fatalf("failure %d (of the ceiling's 5) refused", i+1)
				}
			}
			if attempt(t, h.l, "user:1", "203.0.99.1", false) == nil {
				t.Fatal("a clean network was let through past the account's ceiling")
			}
			if attempt(t, h.l, "user:2", "203.0.99.1", true) != nil {
				t.Fatal("another account was refused: the refused check spent the network's budget")
			}
		})
	}
}

// Concurrent checks reserve before they verify: a burst of guesses from one
// network cannot all pass a look at the bucket and then all fail.
func TestAttemptReserves(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ratelimit.Config{Dir: shipped})
	var granted atomic.Int64
	var dones []func(bool)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			done, err := h.l.Attempt(t.Context(), "user:1", netip.MustParseAddr("192.0.2.9"))
			if err == nil {
				granted.Add(1)
				mu.Lock()
				dones = append(dones, done)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if n := granted.Load(); n != 5 {
		t.Fatalf("30 concurrent checks from one network: %d let through, want 5", n)
	}
	for _, done := range dones {
		done(true)
	}
}
