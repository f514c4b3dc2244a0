package ratelimit

import "net/netip"

// ipKey is the bucket key of a client address. An IPv6 client is keyed by
// its /64: one subscriber gets a whole /64 and can use a new address for
// every request, so a per-address bucket would not limit it at all.
func ipKey(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is4():
		return a.String()
	default:
		p, _ := a.Prefix(64) // cannot fail: a valid IPv6 address has 128 bits
		return p.String()
	}
}
