package httpapi

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"
)

// ipExtractor is Echo's IPExtractor for the whole service: c.RealIP() is
// the client's address in the access log, the login throttle and the rate
// limits alike. Echo's own ExtractIPFromXFFHeader is not used: it gives up on
// a hop written with a port ("203.0.113.9:4711", as some load balancers
// write them) and falls back to the proxy's address, which would put every
// client behind that proxy in one rate-limit bucket, and it ignores
// X-Real-IP.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	return func(r *http.Request) string {
		if a := clientIP(r, trusted); a.IsValid() {
			return a.String()
		}
		return ""
	}
}

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
