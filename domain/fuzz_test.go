package domain_test

import (
	"net/netip"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/userservice/userservice/domain"
)

// FuzzParseFilter: ParseFilter never panics, refuses only with field errors,
// and a parsed filter's Params re-parse to the very same Filter (what a
// WebSocket subscription or a cursor relies on when it stores the params).
func FuzzParseFilter(f *testing.F) {
	f.Add("", "", "", "", "", "")
	f.Add("ZOË", "O'D", "@EXAMPLE.com", " female ", "admin", "::ffff:10.0.0.0/104")
	f.Add("%", "_", `a\%_`, "NON-BINARY", "user", "2001:DB8::1/64")
	f.Add("ΣΊΣΥΦΟΣ", "\u212Aelvin", "İ", "Genderfluid", "superadmin", "10.1.2.3/8")
	f.Add("\xff", "a\x00", strings.Repeat("a", 255), "robot", "Admin", "10.0.0.0/33")
	f.Add(strings.Repeat("\u023a", 254), " ", "\u023a", "Male", "", "fe80::1%eth0")
	f.Fuzz(func(t *testing.T, first, last, email, gender, role, ip string) {
		in := domain.FilterParams{FirstName: first, LastName: last, Email: email, Gender: gender, Role: role, IPAddress: ip}
		flt, err := domain.ParseFilter(in)
		if err != nil {
			if len(fieldErrors(t, err)) == 0 {
				t.Fatalf("ParseFilter(%+v) refused without a field error: %v", in, err)
			}
			if flt != (domain.Filter{}) {
				t.Fatalf("ParseFilter(%+v) returned %+v with its error", in, flt)
			}
			return
		}
		p := flt.Params()
		for _, s := range []string{p.FirstName, p.LastName, p.Email} {
			if domain.Fold(s) != s || !utf8.ValidString(s) || utf8.RuneCountInString(s) > 254 {
				t.Fatalf("ParseFilter(%+v) kept substring %q unfolded or too long", in, s)
			}
		}
		again, err := domain.ParseFilter(p)
		if err != nil {
			t.Fatalf("ParseFilter(%+v).Params() = %+v does not re-parse: %v", in, p, err)
		}
		if again != flt {
			t.Fatalf("ParseFilter(%+v) = %+v, but its Params %+v re-parse to %+v", in, flt, p, again)
		}
		if flt.IsEmpty() != (p == domain.FilterParams{}) {
			t.Fatalf("IsEmpty() = %v with params %+v", flt.IsEmpty(), p)
		}
	})
}

// FuzzParseIPRange: ParseIPRange never panics, a parsed range re-parses from
// its String to itself, and Contains agrees with netip.Prefix.Contains for the
// canonical block on addresses drawn anywhere and next to the block (the
// first keep bits of the address are the block's own).
func FuzzParseIPRange(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/8", "192.0.2.1", "::ffff:10.0.0.0/104", "::ffff:0:0/95", "2001:db8::/64", "::/0", "0.0.0.0/0",
		"2001:db8::1/128", " 10.1.2.3/31 ", "fe80::1%eth0", "10.0.0.0/33", "::ffff:1.2.3.4/100", "garbage",
	} {
		f.Add(s, uint64(0x20010db800000000), uint64(1), uint8(64))
		f.Add(s, uint64(0), uint64(0x0000ffff0a000001), uint8(100))
	}
	f.Fuzz(func(t *testing.T, s string, hi, lo uint64, keep uint8) {
		r, err := domain.ParseIPRange(s)
		if err != nil {
			wantFields(t, err, "ip_address")
			if r.IsSet() {
				t.Fatalf("ParseIPRange(%q) returned a set range with its error", s)
			}
			return
		}
		if !r.IsSet() {
			t.Fatalf("ParseIPRange(%q) returned an unset range", s)
		}
		again, err := domain.ParseIPRange(r.String())
		if err != nil || again != r {
			t.Fatalf("ParseIPRange(%q) = %v, but its String re-parses to %v, %v", s, r, again, err)
		}
		p := canonicalPrefix(t, r)
		checkBounds(t, r, p)

		var b [16]byte
		for i := range 8 {
			b[i] = byte(hi >> (56 - 8*i))
			b[8+i] = byte(lo >> (56 - 8*i))
		}
		near := withNetworkBits(b, to16(p).Addr().As16(), int(keep)%129)
		checkContains(t, r, p, netip.AddrFrom16(b))
		checkContains(t, r, p, near)
		checkContains(t, r, p, netip.AddrFrom4([4]byte(b[12:])))
		if r.Contains(netip.Addr{}) {
			t.Fatalf("%v contains the unset address", r)
		}
	})
}

// FuzzParseEmail: ParseEmail never panics, and an accepted address is its
// input trimmed and lower-cased (never another address), already folded,
// within the limit, and re-parses to itself (what storage keeps is valid input).
func FuzzParseEmail(f *testing.F) {
	for _, s := range []string{
		"zoe@example.com", " ZOË@Example.COM ", "\u212Aate@example.com", "用户@例子.广告", "Zoë <zoe@example.com>",
		`"zo e"@example.com`, "zoe@localhost", "a@[192.0.2.1]", "a%b_c@example.com", "zo\xffe@example.com",
		strings.Repeat("a", 242) + "@example.com",
		// Folds from 254 to 255 bytes.
		"\u023a" + strings.Repeat("a", 240) + "@example.com",
		"a@exam\u0131ple.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := domain.ParseEmail(s)
		if err != nil {
			wantFields(t, err, "email")
			if !e.IsZero() {
				t.Fatalf("ParseEmail(%q) returned %q with its error", s, e)
			}
			return
		}
		addr := e.String()
		if addr != strings.Map(unicode.ToLower, strings.TrimSpace(s)) {
			t.Fatalf("ParseEmail(%q) = %q: not the address given, lower-cased", s, addr)
		}
		if domain.Fold(addr) != addr {
			t.Fatalf("ParseEmail(%q) = %q, not folded", s, addr)
		}
		if len(addr) > 254 || !utf8.ValidString(addr) || strings.Count(addr, "@") == 0 {
			t.Fatalf("ParseEmail(%q) = %q: not a valid stored address", s, addr)
		}
		again, err := domain.ParseEmail(addr)
		if err != nil || again != e {
			t.Fatalf("ParseEmail(%q) = %q, which re-parses to %q, %v", s, addr, again, err)
		}
	})
}
