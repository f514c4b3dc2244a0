package domain_test

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/userservice/userservice/domain"
)

func TestParseFilter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   domain.FilterParams
		want domain.FilterParams // f.Params() of the parsed filter
	}{
		{name: "empty", in: domain.FilterParams{}, want: domain.FilterParams{}},
		{
			name: "every field, canonicalised",
			in: domain.FilterParams{FirstName: "ZOË", LastName: "O'D", Email: "@EXAMPLE.com", Gender: " female ",
				Role: "admin", IPAddress: " ::ffff:10.0.0.0/104 "},
			want: domain.FilterParams{FirstName: "zoë", LastName: "o'd", Email: "@example.com", Gender: "Female",
				Role: "admin", IPAddress: "10.0.0.0/8"},
		},
		{
			name: "wildcard characters are kept literally",
			in:   domain.FilterParams{FirstName: "%", LastName: "_", Email: `a\%_`},
			want: domain.FilterParams{FirstName: "%", LastName: "_", Email: `a\%_`},
		},
		{
			// Substrings are not trimmed: a space is part of what is searched.
			name: "substring spaces kept",
			in:   domain.FilterParams{FirstName: " n L "},
			want: domain.FilterParams{FirstName: " n l "},
		},
		{
			name: "254 characters of two bytes",
			in:   domain.FilterParams{LastName: strings.Repeat("É", 254)},
			want: domain.FilterParams{LastName: strings.Repeat("é", 254)},
		},
		{
			name: "single address with a host mask",
			in:   domain.FilterParams{IPAddress: "2001:DB8::1/128"},
			want: domain.FilterParams{IPAddress: "2001:db8::1"},
		},
		{
			name: "exact email trimmed and folded, as uniqueness compares",
			in:   domain.FilterParams{EmailExact: " Ann.LEE@Example.COM "},
			want: domain.FilterParams{EmailExact: "ann.lee@example.com"},
		},
		{
			name: "CIDR block masked",
			in:   domain.FilterParams{IPAddress: "10.1.2.3/8"},
			want: domain.FilterParams{IPAddress: "10.0.0.0/8"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := domain.ParseFilter(tt.in)
			if err != nil {
				t.Fatalf("ParseFilter(%+v): %v", tt.in, err)
			}
			if got := f.Params(); got != tt.want {
				t.Fatalf("ParseFilter(%+v).Params() = %+v, want %+v", tt.in, got, tt.want)
			}
			if f.IsEmpty() != (tt.in == domain.FilterParams{}) {
				t.Fatalf("IsEmpty() = %v for %+v", f.IsEmpty(), tt.in)
			}
			again, err := domain.ParseFilter(f.Params())
			if err != nil || again != f {
				t.Fatalf("re-parsing Params() = %+v, %v; want %+v", again, err, f)
			}
		})
	}
}

func TestParseFilterErrors(t *testing.T) {
	t.Parallel()
	const (
		msgText = "must be valid UTF-8 text without NUL characters"
		msgLong = "must be at most 254 characters"
	)
	tests := []struct {
		name string
		in   domain.FilterParams
		want []string // fields
		msg  string   // the first field's message, when checked
	}{
		{
			name: "every field at once",
			in: domain.FilterParams{FirstName: "\xff", LastName: "a\x00", Email: strings.Repeat("a", 255),
				Gender: "robot", Role: "Admin", IPAddress: "10.0.0.0/33"},
			want: []string{"first_name", "last_name", "email", "gender", "role", "ip_address"},
		},
		{name: "invalid UTF-8", in: domain.FilterParams{FirstName: "Zo\xc3"}, want: []string{"first_name"}, msg: msgText},
		{name: "NUL", in: domain.FilterParams{LastName: "\x00"}, want: []string{"last_name"}, msg: msgText},
		{name: "NUL in email", in: domain.FilterParams{Email: "a\x00@b"}, want: []string{"email"}, msg: msgText},
		{name: "255 characters", in: domain.FilterParams{Email: strings.Repeat("a", 255)}, want: []string{"email"}, msg: msgLong},
		{name: "255 two-byte characters", in: domain.FilterParams{FirstName: strings.Repeat("é", 255)}, want: []string{"first_name"}, msg: msgLong},
		{name: "unknown gender", in: domain.FilterParams{Gender: "robot"}, want: []string{"gender"}},
		{name: "blank gender", in: domain.FilterParams{Gender: " "}, want: []string{"gender"}},
		{name: "role in the wrong case", in: domain.FilterParams{Role: "Admin"}, want: []string{"role"}},
		{name: "bad IP", in: domain.FilterParams{IPAddress: "10.0.0.256"}, want: []string{"ip_address"}},
		{name: "IP with zone", in: domain.FilterParams{IPAddress: "fe80::1%eth0"}, want: []string{"ip_address"}},
		{name: "blank IP", in: domain.FilterParams{IPAddress: " "}, want: []string{"ip_address"}},
		{name: "good and bad fields", in: domain.FilterParams{FirstName: "ok", Gender: "male", Role: "boss"}, want: []string{"role"}},
		{name: "exact email that is a substring", in: domain.FilterParams{EmailExact: "@example.com"}, want: []string{"email_exact"}},
		{name: "exact email with a display name", in: domain.FilterParams{EmailExact: "Ann <ann@example.com>"}, want: []string{"email_exact"}},
		{name: "blank exact email", in: domain.FilterParams{EmailExact: " "}, want: []string{"email_exact"}},
		{name: "exact email too long", in: domain.FilterParams{EmailExact: strings.Repeat("a", 250) + "@b.cd"}, want: []string{"email_exact"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := domain.ParseFilter(tt.in)
			wantFields(t, err, tt.want...)
			if f != (domain.Filter{}) {
				t.Fatalf("ParseFilter returned %+v with its error", f)
			}
			if tt.msg != "" {
				if got := fieldErrors(t, err)[0].Message; got != tt.msg {
					t.Fatalf("message = %q, want %q", got, tt.msg)
				}
			}
		})
	}
}

// population is a fixed set of users for Matches, keyed by a short name.
// Names with %, _ or \ cannot come from NewUser; storage is trusted, and
// Matches must treat them literally all the same.
func population(t *testing.T) map[string]*domain.User {
	t.Helper()
	rows := map[string]domain.StoredUser{
		"zoe":    {FirstName: "Zoë", LastName: "O'Doireidh", Email: "zoe.odoireidh@example.com", Gender: "Female", Role: "admin", IPAddress: "10.1.2.3"},
		"zoeNFD": {FirstName: "Zoe\u0308", LastName: "Zoeller", Email: "zoe_z@example.org", Gender: "Female", Role: "user", IPAddress: "2001:db8::1"},
		"jl":     {FirstName: "Jean-Luc", LastName: "Picard", Email: "jl%picard@starfleet.example", Gender: "Male", Role: "superadmin", IPAddress: "192.0.2.1"},
		"sis":    {FirstName: "Σίσυφος", LastName: "Κόρινθος", Email: "sisyphus@example.gr", Gender: "Non-binary", Role: "user"},
		"lit":    {FirstName: `Per\cent`, LastName: "100%_Literal", Email: "a_b%c@example.com", Gender: "Agender", Role: "user", IPAddress: "10.200.0.1"},
	}
	users := make(map[string]*domain.User, len(rows))
	id := int64(0)
	for name, s := range rows {
		id++
		s.ID = id
		users[name] = restore(t, s)
	}
	return users
}

func TestFilterMatches(t *testing.T) {
	t.Parallel()
	users := population(t)
	all := []string{"jl", "lit", "sis", "zoe", "zoeNFD"}
	zoeAll := domain.FilterParams{FirstName: "OË", LastName: "doi", Email: "ODOI", Gender: "female", Role: "admin", IPAddress: "10.1.0.0/16"}
	but := func(edit func(*domain.FilterParams)) domain.FilterParams {
		p := zoeAll
		edit(&p)
		return p
	}
	tests := []struct {
		name string
		p    domain.FilterParams
		want []string
	}{
		{"empty filter", domain.FilterParams{}, all},

		{"first name upper case finds lower", domain.FilterParams{FirstName: "ZOË"}, []string{"zoe"}},
		{"first name lower case", domain.FilterParams{FirstName: "zoë"}, []string{"zoe"}},
		// Fold does not normalise: precomposed and decomposed ë differ.
		{"no accent folding or normalisation", domain.FilterParams{FirstName: "zoe"}, []string{"zoeNFD"}},
		{"Greek capitals find final sigma", domain.FilterParams{FirstName: "ΣΊΣΥΦΟΣ"}, []string{"sis"}},
		{"final sigma finds medial sigma", domain.FilterParams{FirstName: "ς"}, []string{"sis"}},
		{"hyphen", domain.FilterParams{FirstName: "n-l"}, []string{"jl"}},
		{"backslash is literal", domain.FilterParams{FirstName: `r\c`}, []string{"lit"}},
		{"backslash does not escape", domain.FilterParams{FirstName: `\c`}, []string{"lit"}},
		{"escaped letter is not a letter", domain.FilterParams{FirstName: `r\e`}, nil},

		{"last name substring", domain.FilterParams{LastName: "O"}, []string{"zoe", "zoeNFD"}},
		{"apostrophe", domain.FilterParams{LastName: "'"}, []string{"zoe"}},
		{"percent is literal", domain.FilterParams{LastName: "%"}, []string{"lit"}},
		{"underscore is literal", domain.FilterParams{LastName: "_"}, []string{"lit"}},
		{"percent is not a wildcard", domain.FilterParams{LastName: "1%l"}, nil},
		{"underscore is not a wildcard", domain.FilterParams{LastName: "1_0"}, nil},
		{"literal percent and underscore", domain.FilterParams{LastName: "0%_L"}, []string{"lit"}},

		{"email substring", domain.FilterParams{Email: "@EXAMPLE."}, []string{"lit", "sis", "zoe", "zoeNFD"}},
		{"email underscore", domain.FilterParams{Email: "_"}, []string{"lit", "zoeNFD"}},
		{"email percent", domain.FilterParams{Email: "%"}, []string{"jl", "lit"}},
		{"email wildcards literal", domain.FilterParams{Email: "b%c"}, []string{"lit"}},
		{"exact email any case", domain.FilterParams{EmailExact: "ZOE.ODOIREIDH@example.COM"}, []string{"zoe"}},
		{"exact email, not a substring", domain.FilterParams{EmailExact: "odoireidh@example.com"}, nil},
		{"exact email wildcards literal", domain.FilterParams{EmailExact: "a_b%c@example.com"}, []string{"lit"}},
		{"exact email and a filter it fails", domain.FilterParams{EmailExact: "zoe.odoireidh@example.com", Role: "user"}, nil},

		{"gender any case", domain.FilterParams{Gender: "FEMALE"}, []string{"zoe", "zoeNFD"}},
		{"gender exact, not substring", domain.FilterParams{Gender: "Male"}, []string{"jl"}},
		{"gender non-binary", domain.FilterParams{Gender: "non-binary"}, []string{"sis"}},
		{"role user", domain.FilterParams{Role: "user"}, []string{"lit", "sis", "zoeNFD"}},
		{"role superadmin", domain.FilterParams{Role: "superadmin"}, []string{"jl"}},

		{"exact IPv4", domain.FilterParams{IPAddress: "10.1.2.3"}, []string{"zoe"}},
		{"exact IPv6", domain.FilterParams{IPAddress: "2001:DB8:0::1"}, []string{"zoeNFD"}},
		{"IPv4 CIDR", domain.FilterParams{IPAddress: "10.0.0.0/8"}, []string{"lit", "zoe"}},
		{"IPv4-mapped CIDR", domain.FilterParams{IPAddress: "::ffff:10.0.0.0/104"}, []string{"lit", "zoe"}},
		{"IPv6 CIDR", domain.FilterParams{IPAddress: "2001:db8::/32"}, []string{"zoeNFD"}},
		{"every IPv4 address", domain.FilterParams{IPAddress: "0.0.0.0/0"}, []string{"jl", "lit", "zoe"}},
		// IPv4 addresses sit at their IPv4-mapped position in the IPv6 space,
		// so ::/0 holds every address; a user without an address never matches.
		{"every address", domain.FilterParams{IPAddress: "::/0"}, []string{"jl", "lit", "zoe", "zoeNFD"}},
		{"no match", domain.FilterParams{IPAddress: "198.51.100.0/24"}, nil},

		{"all six together", zoeAll, []string{"zoe"}},
		{"all six but first name", but(func(p *domain.FilterParams) { p.FirstName = "zoe" }), nil},
		{"all six but last name", but(func(p *domain.FilterParams) { p.LastName = "Picard" }), nil},
		{"all six but email", but(func(p *domain.FilterParams) { p.Email = ".org" }), nil},
		{"all six but gender", but(func(p *domain.FilterParams) { p.Gender = "Male" }), nil},
		{"all six but role", but(func(p *domain.FilterParams) { p.Role = "user" }), nil},
		{"all six but IP", but(func(p *domain.FilterParams) { p.IPAddress = "10.1.2.4" }), nil},
		{"gender and role", domain.FilterParams{Gender: "Female", Role: "user"}, []string{"zoeNFD"}},
		{"substring and IP", domain.FilterParams{FirstName: "zo", IPAddress: "10.0.0.0/8"}, []string{"zoe"}},
		{"role and IP", domain.FilterParams{Role: "user", IPAddress: "::/0"}, []string{"lit", "zoeNFD"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := domain.ParseFilter(tt.p)
			if err != nil {
				t.Fatalf("ParseFilter(%+v): %v", tt.p, err)
			}
			var got []string
			for name, u := range users {
				if f.Matches(u) {
					got = append(got, name)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("filter %+v matches %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestIPRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, str string
		lo, hi  string // bounds, spelled as IPv6 addresses
		inside  []string
		outside []string
	}{
		{
			in: "192.0.2.1", str: "192.0.2.1", lo: "::ffff:192.0.2.1", hi: "::ffff:192.0.2.1",
			inside:  []string{"192.0.2.1"},
			outside: []string{"192.0.2.0", "192.0.2.2", "::c000:201", "2001:db8::1"},
		},
		{in: " ::ffff:192.0.2.1\t", str: "192.0.2.1", lo: "::ffff:192.0.2.1", hi: "::ffff:192.0.2.1", inside: []string{"192.0.2.1"}},
		{in: "192.0.2.1/32", str: "192.0.2.1", lo: "::ffff:192.0.2.1", hi: "::ffff:192.0.2.1", inside: []string{"192.0.2.1"}, outside: []string{"192.0.2.2"}},
		{
			in: "2001:0DB8::1", str: "2001:db8::1", lo: "2001:db8::1", hi: "2001:db8::1",
			inside:  []string{"2001:db8::1"},
			outside: []string{"2001:db8::", "2001:db8::2", "0.0.0.1"},
		},
		{in: "2001:db8::1/128", str: "2001:db8::1", lo: "2001:db8::1", hi: "2001:db8::1", inside: []string{"2001:db8::1"}, outside: []string{"2001:db8::2"}},
		{
			in: "192.0.2.0/24", str: "192.0.2.0/24", lo: "::ffff:192.0.2.0", hi: "::ffff:192.0.2.255",
			inside:  []string{"192.0.2.0", "192.0.2.128", "192.0.2.255"},
			outside: []string{"192.0.1.255", "192.0.3.0", "::c000:200"},
		},
		{
			in: "10.0.0.0/8", str: "10.0.0.0/8", lo: "::ffff:10.0.0.0", hi: "::ffff:10.255.255.255",
			inside:  []string{"10.0.0.0", "10.1.2.3", "10.255.255.255"},
			outside: []string{"9.255.255.255", "11.0.0.0", "::a00:1"},
		},
		{in: "10.1.2.3/8", str: "10.0.0.0/8", lo: "::ffff:10.0.0.0", hi: "::ffff:10.255.255.255"},
		{in: "::ffff:10.0.0.0/104", str: "10.0.0.0/8", lo: "::ffff:10.0.0.0", hi: "::ffff:10.255.255.255", inside: []string{"10.9.9.9"}, outside: []string{"11.0.0.0"}},
		{in: "::ffff:10.1.2.3/128", str: "10.1.2.3", lo: "::ffff:10.1.2.3", hi: "::ffff:10.1.2.3", inside: []string{"10.1.2.3"}},
		{
			in: "0.0.0.0/0", str: "0.0.0.0/0", lo: "::ffff:0.0.0.0", hi: "::ffff:255.255.255.255",
			inside:  []string{"0.0.0.0", "127.0.0.1", "255.255.255.255"},
			outside: []string{"::", "::fffe:ffff:ffff", "::1:0:0:0", "2001:db8::1"},
		},
		{in: "::ffff:0:0/96", str: "0.0.0.0/0", lo: "::ffff:0.0.0.0", hi: "::ffff:255.255.255.255", inside: []string{"1.2.3.4"}, outside: []string{"::1"}},
		{
			in: "2001:db8::/64", str: "2001:db8::/64", lo: "2001:db8::", hi: "2001:db8::ffff:ffff:ffff:ffff",
			inside:  []string{"2001:db8::", "2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff"},
			outside: []string{"2001:db8:0:1::", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "10.0.0.1"},
		},
		{in: "2001:db8::1/64", str: "2001:db8::/64", lo: "2001:db8::", hi: "2001:db8::ffff:ffff:ffff:ffff"},
		{
			in: "::/0", str: "::/0", lo: "::", hi: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
			inside: []string{"::", "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "10.0.0.1", "0.0.0.0"},
		},
		{
			// The IPv4-compatible block is not the IPv4-mapped one.
			in: "::/96", str: "::/96", lo: "::", hi: "::ffff:ffff",
			inside:  []string{"::1", "::c000:201"},
			outside: []string{"192.0.2.1"},
		},
		{
			// A block wider than ::ffff:0:0/96 stays IPv6 and holds all of IPv4.
			in: "::ffff:0:0/95", str: "::fffe:0:0/95", lo: "::fffe:0:0", hi: "::ffff:ffff:ffff",
			inside:  []string{"::fffe:0:1", "10.0.0.1"},
			outside: []string{"::1:0:0:0", "::fffd:ffff:ffff"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			r, err := domain.ParseIPRange(tt.in)
			if err != nil {
				t.Fatalf("ParseIPRange(%q): %v", tt.in, err)
			}
			if !r.IsSet() || r.String() != tt.str {
				t.Fatalf("ParseIPRange(%q) = %q (set %v), want %q", tt.in, r, r.IsSet(), tt.str)
			}
			again, err := domain.ParseIPRange(r.String())
			if err != nil || again != r {
				t.Fatalf("ParseIPRange(%q) = %v, %v; want %v", r.String(), again, err, r)
			}
			lo, hi := r.Bounds()
			if got, want := netip.AddrFrom16(lo), netip.MustParseAddr(tt.lo); got != want {
				t.Errorf("lo = %v, want %v", got, want)
			}
			if got, want := netip.AddrFrom16(hi), netip.MustParseAddr(tt.hi); got != want {
				t.Errorf("hi = %v, want %v", got, want)
			}
			for _, s := range tt.inside {
				if a := netip.MustParseAddr(s); !r.Contains(a) {
					t.Errorf("%v does not contain %v", r, a)
				}
			}
			for _, s := range tt.outside {
				if a := netip.MustParseAddr(s); r.Contains(a) {
					t.Errorf("%v contains %v", r, a)
				}
			}
			if r.Contains(netip.Addr{}) {
				t.Errorf("%v contains the unset address", r)
			}
		})
	}
}

func TestIPRangeMappedEqualsIPv4(t *testing.T) {
	t.Parallel()
	pairs := [][2]string{
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"::FFFF:10.1.2.3/104", "10.0.0.0/8"},
		{"::ffff:0:0/96", "0.0.0.0/0"},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24"},
		{"::ffff:192.0.2.1/128", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
	}
	for _, p := range pairs {
		a, errA := domain.ParseIPRange(p[0])
		b, errB := domain.ParseIPRange(p[1])
		if errA != nil || errB != nil || a != b {
			t.Errorf("ParseIPRange(%q) = %v, %v; ParseIPRange(%q) = %v, %v; want equal", p[0], a, errA, p[1], b, errB)
		}
	}
}

func TestParseIPRangeErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"", " ", "garbage", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/08", "10.0.0.0/", "/8", "10.0.0.0/8/8",
		"10.0.0/8", "10.0.0.0 /8", "2001:db8::/129", "::ffff:10.0.0.0/129", "fe80::1%eth0", "fe80::%eth0/64",
		"10.0.0.256", "10.0.0.0-10.0.0.255", "*", "10.*", "[::1]/128",
	} {
		r, err := domain.ParseIPRange(in)
		if err == nil {
			t.Errorf("ParseIPRange(%q) = %v, want an error", in, r)
			continue
		}
		wantFields(t, err, "ip_address")
		if r.IsSet() {
			t.Errorf("ParseIPRange(%q) returned a set range with its error", in)
		}
	}
}

// refContains is the containment the contract means, decided by netip: IPv4
// addresses and blocks sit at their IPv4-mapped position in the IPv6 space
// (which is what storage compares), so p is widened to that space first.
func refContains(p netip.Prefix, a netip.Addr) bool {
	return a.IsValid() && to16(p).Contains(netip.AddrFrom16(a.As16()))
}

// to16 is p in the 16-byte space: an IPv4 block becomes its IPv4-mapped block.
func to16(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4() {
		return netip.PrefixFrom(netip.AddrFrom16(p.Addr().As16()), p.Bits()+96)
	}
	return p
}

// canonicalPrefix is the block r's String spells.
func canonicalPrefix(t testing.TB, r domain.IPRange) netip.Prefix {
	t.Helper()
	s := r.String()
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			t.Fatalf("IPRange.String() = %q: %v", s, err)
		}
		return p
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("IPRange.String() = %q: %v", s, err)
	}
	return netip.PrefixFrom(a, a.BitLen())
}

// checkContains compares r.Contains(a) with netip for the canonical block p
// (a stored address is canonical, hence unmapped).
func checkContains(t testing.TB, r domain.IPRange, p netip.Prefix, a netip.Addr) {
	t.Helper()
	a = a.Unmap()
	got := r.Contains(a)
	if want := refContains(p, a); got != want {
		t.Fatalf("%v.Contains(%v) = %v, want %v", r, a, got, want)
	}
	if a.Is4() == p.Addr().Is4() && got != p.Contains(a) {
		t.Fatalf("%v.Contains(%v) = %v, netip.Prefix.Contains says %v", r, a, got, p.Contains(a))
	}
	lo, hi := r.Bounds()
	k := domain.IPKey(a)
	if inBounds := string(lo[:]) <= string(k[:]) && string(k[:]) <= string(hi[:]); inBounds != got {
		t.Fatalf("%v: %v within bounds %v, Contains %v", r, a, inBounds, got)
	}
}

// checkBounds checks that r's bounds are the first and last address of p.
func checkBounds(t testing.TB, r domain.IPRange, p netip.Prefix) {
	t.Helper()
	p16 := to16(p)
	lo, hi := r.Bounds()
	first, last := netip.AddrFrom16(lo), netip.AddrFrom16(hi)
	if first != p16.Masked().Addr() {
		t.Fatalf("%v: lo = %v, want %v", r, first, p16.Masked().Addr())
	}
	if !p16.Contains(last) {
		t.Fatalf("%v: hi = %v lies outside %v", r, last, p16)
	}
	if next := last.Next(); next.IsValid() && p16.Contains(next) {
		t.Fatalf("%v: hi = %v is not the last address of %v", r, last, p16)
	}
	if prev := first.Prev(); prev.IsValid() && p16.Contains(prev) {
		t.Fatalf("%v: lo = %v is not the first address of %v", r, first, p16)
	}
}

// randomIn returns an address of p16 with random host bits.
func randomIn(rng *rand.Rand, p16 netip.Prefix) netip.Addr {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return withNetworkBits(b, p16.Addr().As16(), p16.Bits())
}

// withNetworkBits returns b with its first bits taken from network.
func withNetworkBits(b, network [16]byte, bits int) netip.Addr {
	for i := range b {
		n := min(max(bits-8*i, 0), 8)
		mask := ^byte(0xff >> n)
		b[i] = network[i]&mask | b[i]&^mask
	}
	return netip.AddrFrom16(b)
}

// TestIPRangeAgreesWithNetip draws random blocks in every spelling and random
// addresses (anywhere, inside, and just outside each bound) and holds
// Contains and Bounds to netip's answers. The seed is fixed so a failure
// reproduces.
func TestIPRangeAgreesWithNetip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(20240102, 30405))
	randomAddr := func(v4 bool) netip.Addr {
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if v4 {
			return netip.AddrFrom4([4]byte(b[:4]))
		}
		return netip.AddrFrom16(b)
	}
	for range 3000 {
		v4 := rng.IntN(2) == 0
		addr := randomAddr(v4)
		bits := rng.IntN(addr.BitLen() + 1)
		want := netip.PrefixFrom(addr, bits).Masked()

		spelling := netip.PrefixFrom(addr, bits).String() // not masked: ParseIPRange masks
		switch {
		case v4 && rng.IntN(3) == 0:
			spelling = netip.PrefixFrom(netip.AddrFrom16(addr.As16()), bits+96).String()
		case bits == addr.BitLen() && rng.IntN(2) == 0:
			spelling = addr.String()
		}
		r, err := domain.ParseIPRange(spelling)
		if err != nil {
			t.Fatalf("ParseIPRange(%q): %v", spelling, err)
		}
		if got := canonicalPrefix(t, r); got != want {
			t.Fatalf("ParseIPRange(%q) is %v, want %v", spelling, got, want)
		}
		checkBounds(t, r, want)

		p16 := to16(want)
		lo, hi := r.Bounds()
		candidates := []netip.Addr{
			randomAddr(true), randomAddr(false), randomIn(rng, p16), randomIn(rng, p16),
			netip.AddrFrom16(lo), netip.AddrFrom16(hi), netip.AddrFrom16(lo).Prev(), netip.AddrFrom16(hi).Next(),
		}
		if bits > 0 { // flip one network bit: just outside the block
			in := randomIn(rng, p16).As16()
			bit := 128 - want.Addr().BitLen() + rng.IntN(bits)
			in[bit/8] ^= 0x80 >> (bit % 8)
			candidates = append(candidates, netip.AddrFrom16(in))
		}
		for _, a := range candidates {
			if a.IsValid() {
				checkContains(t, r, want, a)
			}
		}
	}
}

func TestUnsetIPNeverMatchesAnIPFilter(t *testing.T) {
	t.Parallel()
	s := storedUser()
	s.IPAddress = ""
	u := restore(t, s)
	for _, ip := range []string{"::/0", "0.0.0.0/0", "::", "0.0.0.0", "::/96", "::ffff:0:0/96"} {
		f, err := domain.ParseFilter(domain.FilterParams{IPAddress: ip})
		if err != nil {
			t.Fatal(err)
		}
		if f.Matches(u) {
			t.Errorf("filter %q matches a user without an address", ip)
		}
	}
	if f, _ := domain.ParseFilter(domain.FilterParams{FirstName: "zo"}); !f.Matches(u) {
		t.Error("a user without an address is excluded by a filter on another field")
	}
}

func TestZeroIPRangeContainsNothing(t *testing.T) {
	t.Parallel()
	var r domain.IPRange
	for _, s := range []string{"::", "0.0.0.0", "10.1.2.3", "2001:db8::1"} {
		if r.Contains(netip.MustParseAddr(s)) {
			t.Errorf("the zero IPRange contains %s", s)
		}
	}
}
