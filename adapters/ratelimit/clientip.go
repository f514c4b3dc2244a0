package ratelimit

import (
	"net/http"
	"net/netip"
	"strings"
)

// clientIP is the address of the client a request comes from. Forwarding
// headers are believed only from the trusted proxies: anyone else can write
// any X-Forwarded-For, and believing it would let a client pick a fresh
// bucket for every request. X-Forwarded-For is walked from the right, where
// the nearest proxy appended the address it saw, past every trusted proxy; the
// first untrusted hop is the client. X-Real-IP (one address, as nginx sets it)
// is used only when there is no X-Forwarded-For. The zero Addr means the
// socket address could not be read.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseHop(r.RemoteAddr)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	hops := forwardedFor(r.Header)
	if len(hops) == 0 {
		if real := parseHop(r.Header.Get("X-Real-IP")); real.IsValid() {
			return real
		}
		return peer
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		hop := parseHop(hops[i])
		if !hop.IsValid() {
			// Written by a trusted proxy, garbage is a misconfiguration: the
			// last address vouched for is the best there is.
			return client
		}
		client = hop
		if !isTrusted(hop, trusted) {
			return client
		}
	}
	return client // every hop is a trusted proxy: the first is the client
}

// forwardedFor returns the hops of every X-Forwarded-For line, in order.
func forwardedFor(h http.Header) []string {
	var hops []string
	for _, line := range h.Values("X-Forwarded-For") {
		for hop := range strings.SplitSeq(line, ",") {
			hops = append(hops, hop)
		}
	}
	return hops
}

// parseHop reads an address as proxies write it: bare, or with a port
// ("192.0.2.1:443", "[2001:db8::1]:443"). IPv4-mapped IPv6 addresses are
// read as the IPv4 address they are, so one client has one key.
func parseHop(s string) netip.Addr {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}
		}
		a = ap.Addr()
	}
	return a.WithZone("").Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

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
