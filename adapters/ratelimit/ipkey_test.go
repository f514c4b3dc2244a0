package ratelimit

import (
	"net/netip"
	"testing"
)

func TestIPKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"198.51.100.7":          "198.51.100.7",
		"2001:db8:1:2:3:4:5:6":  "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::99": "2001:db8:1:2::/64",
	} {
		if got := ipKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("ipKey(%s) = %s, want %s", in, got, want)
		}
	}
	if got := ipKey(netip.Addr{}); got != "unknown" {
		t.Errorf("ipKey of no address = %s, want unknown", got)
	}
}
