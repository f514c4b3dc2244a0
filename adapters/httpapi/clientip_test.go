package httpapi

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		realIP     string
		want       string
	}{
		{name: "direct", peer: "198.51.100.7:5000", want: "198.51.100.7"},
		{name: "untrusted peer's XFF ignored", peer: "198.51.100.7:5000", xff: []string{"203.0.113.9"}, want: "198.51.100.7"},
		{name: "untrusted peer's X-Real-IP ignored", peer: "198.51.100.7:5000", realIP: "203.0.113.9", want: "198.51.100.7"},
		{name: "trusted proxy", peer: "10.0.0.1:5000", xff: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "spoofed hops left of the client", peer: "10.0.0.1:5000", xff: []string{"6.6.6.6, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "chain of trusted proxies", peer: "10.0.0.1:5000", xff: []string{"1.1.1.1, 203.0.113.9, 10.0.0.2", "10.0.0.3"}, want: "203.0.113.9"},
		{name: "every hop trusted", peer: "10.0.0.1:5000", xff: []string{"10.0.0.3, 10.0.0.2"}, want: "10.0.0.3"},
		{name: "garbage from a trusted proxy", peer: "10.0.0.1:5000", xff: []string{"nonsense, 10.0.0.2"}, want: "10.0.0.2"},
		{name: "garbage past the client", peer: "10.0.0.1:5000", xff: []string{"nonsense, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "hop with port", peer: "10.0.0.1:5000", xff: []string{"203.0.113.9:4711"}, want: "203.0.113.9"},
		{name: "X-Real-IP from a trusted proxy", peer: "10.0.0.1:5000", realIP: "203.0.113.9", want: "203.0.113.9"},
		{name: "XFF wins over X-Real-IP", peer: "10.0.0.1:5000", xff: []string{"203.0.113.9"}, realIP: "203.0.113.8", want: "203.0.113.9"},
		{name: "trusted proxy, no headers", peer: "10.0.0.1:5000", want: "10.0.0.1"},
		{name: "IPv4-mapped peer", peer: "[::ffff:10.0.0.1]:5000", xff: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "IPv6", peer: "[fd00::1]:5000", xff: []string{"[2001:db8::1]:443"}, want: "2001:db8::1"},
		{name: "bad peer", peer: "somewhere", want: "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if tc.realIP != "" {
				r.Header.Set("X-Real-IP", tc.realIP)
			}
			if got := clientIP(r, trusted).String(); got != tc.want {
				t.Fatalf("clientIP = %s, want %s", got, tc.want)
			}
		})
	}
}
