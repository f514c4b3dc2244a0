package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// The rules of the limits file that count failed password checks. They list
// no routes: the use cases apply them (through Attempt) where a password is
// checked, because only they know the account and whether the check failed.
const (
	// RuleFailures counts an account's failed checks from one client
	// network (IPv4 /24, IPv6 /64).
	RuleFailures = "login-failures"
	// RuleFailuresAccount counts an account's failed checks from every
	// network: the ceiling that a many-network attacker meets.
	RuleFailuresAccount = "login-failures-account"
)

var _ ports.LoginThrottle = (*Limiter)(nil)

// Attempt implements ports.LoginThrottle. A check reserves a token of the
// account's bucket for the client's network and of the account's ceiling
// before the password is verified, so concurrent guesses cannot all pass a
// look at the buckets and then all fail; a check that succeeds gives its
// tokens back, so only failures stay counted. A rule missing from the file,
// or a store that cannot be reached, limits nothing (as for Allow).
func (l *Limiter) Attempt(ctx context.Context, account string, client netip.Addr) (func(failed bool), error) {
	set := l.current.Load()
	if set == nil {
		return func(bool) {}, nil
	}
	acct := accountKey(account)
	type reserved struct {
		r   *rule
		key string
	}
	var held []reserved
	giveBack := func() {
		// The tokens go back even when the client has gone meanwhile: the
		// check it paid for did not fail.
		ctx := context.WithoutCancel(ctx)
		for _, h := range held {
			_ = h.r.store.Burst(ctx, h.r.name+":"+h.key, 1) // a lost refund only errs on the strict side
		}
	}
	for _, c := range [...]struct{ name, key string }{
		{RuleFailures, acct + ":" + networkKey(client)},
		{RuleFailuresAccount, acct},
	} {
		r := set.byName[c.name]
		if r == nil {
			continue
		}
		b, err := l.take(ctx, r, c.key)
		if err != nil {
			continue // let through: the store could not say
		}
		if !b.ok {
			giveBack()
			l.limited.WithLabelValues(r.name, "-").Inc()
			refused := *domain.ErrTooManyFailures
			refused.RetryAfter = max(b.untilFull(time.Now()), time.Second)
			return nil, &refused
		}
		held = append(held, reserved{r, c.key})
	}
	return func(failed bool) {
		if !failed {
			giveBack()
		}
	}, nil
}

// accountKey hashes the account's name, so the store (Redis) never holds
// email addresses.
func accountKey(account string) string {
	sum := sha256.Sum256([]byte(account))
	return hex.EncodeToString(sum[:16])
}

// networkKey is the client network a failure is counted for: the /24 of an
// IPv4 address, the /64 of an IPv6 one. One owner's addresses (a NAT, a
// DHCP pool, a mobile carrier's rotation) mostly stay in it, and an attacker
// needs many such networks, not many addresses, to multiply the budget.
func networkKey(a netip.Addr) string {
	a = a.Unmap()
	if a.Is4() {
		p, _ := a.Prefix(24) // cannot fail for an IPv4 address
		return p.String()
	}
	return ipKey(a) // IPv6: its /64; the zero Addr: "unknown"
}
