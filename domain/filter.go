package domain

import (
	"bytes"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Filter is the search semantics of the contract, shared by the repository
// (which turns it into SQL) and real-time subscriptions (Matches). Zero fields
// do not filter; all set fields apply together.
type Filter struct {
	// Substring filters hold folded text (see Fold): case-insensitive,
	// Unicode-aware, every character literal (no wildcards).
	FirstName string
	LastName  string
	Email     string
	Gender    Gender  // exact, canonical spelling
	Role      Role    // exact
	IP        IPRange // an address (a one-address range) or a CIDR block

	// EmailExact is one whole address, compared as uniqueness compares
	// (both folded), so at most one user matches.
	EmailExact Email
}

// FilterParams is raw filter input as a query string or a WebSocket message
// carries it; "" means the filter is not set.
type FilterParams struct {
	FirstName, LastName, Email, Gender, Role, IPAddress string

	EmailExact string
}

// maxSubstringLen bounds substring filters; a name never exceeds 100
// characters and an email 254 bytes, so longer input can match nothing.
const maxSubstringLen = 254

// ParseFilter validates p, reporting every bad field at once.
func ParseFilter(p FilterParams) (Filter, error) {
	var v ValidationError
	var f Filter
	sub := func(field, s string) string {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			v.Add(field, "must be valid UTF-8 text without NUL characters")
			return ""
		}
		if utf8.RuneCountInString(s) > maxSubstringLen {
			v.Add(field, "must be at most 254 characters")
			return ""
		}
		return Fold(s)
	}
	f.FirstName = sub("first_name", p.FirstName)
	f.LastName = sub("last_name", p.LastName)
	f.Email = sub("email", p.Email)
	var err error
	if p.EmailExact != "" {
		if f.EmailExact, err = ParseEmail(p.EmailExact); err != nil {
			v.Add("email_exact", "is not a valid email address")
		}
	}
	if p.Gender != "" {
		f.Gender, err = ParseGender(p.Gender)
		v.Check("gender", err)
	}
	if p.Role != "" {
		f.Role, err = ParseRole(p.Role)
		v.Check("role", err)
	}
	if p.IPAddress != "" {
		f.IP, err = ParseIPRange(p.IPAddress)
		v.Check("ip_address", err)
	}
	if err := v.Err(); err != nil {
		return Filter{}, err
	}
	return f, nil
}

// IsEmpty reports whether f matches every user.
func (f Filter) IsEmpty() bool { return f == Filter{} }

// Params returns f as raw params (canonical spellings; substrings folded).
func (f Filter) Params() FilterParams {
	p := FilterParams{FirstName: f.FirstName, LastName: f.LastName, Email: f.Email,
		Gender: f.Gender.String(), Role: f.Role.String(), EmailExact: f.EmailExact.String()}
	if f.IP.IsSet() {
		p.IPAddress = f.IP.String()
	}
	return p
}

// AtMostOne reports whether at most one user can match f: an exact email
// names one account at most, whatever the other filters say.
func (f Filter) AtMostOne() bool { return !f.EmailExact.IsZero() }

// Matches decides in memory what the repository's search decides in SQL.
// A property test holds the two equal.
func (f Filter) Matches(u *User) bool {
	if f.FirstName != "" && !strings.Contains(Fold(u.firstName), f.FirstName) {
		return false
	}
	if f.LastName != "" && !strings.Contains(Fold(u.lastName), f.LastName) {
		return false
	}
	if f.Email != "" && !strings.Contains(u.email.addr, f.Email) {
		return false
	}
	if !f.EmailExact.IsZero() && f.EmailExact != u.email {
		return false
	}
	if !f.Gender.IsZero() && f.Gender != u.gender {
		return false
	}
	if !f.Role.IsZero() && f.Role != u.role {
		return false
	}
	if f.IP.IsSet() && !f.IP.Contains(u.ip) {
		return false
	}
	return true
}

// IPRange is an inclusive range of addresses in the 16-byte IPv6 space, in
// which IPv4 addresses sit at their IPv4-mapped position. Storage keeps each
// address's 16-byte key (IPKey) and tests lo <= key <= hi, which any B-tree
// index serves on both SQL dialects; Contains uses the very same comparison.
type IPRange struct {
	prefix netip.Prefix
	lo, hi [16]byte
}

// ParseIPRange accepts an address (exact match) or a CIDR block.
func ParseIPRange(s string) (IPRange, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		p, err = netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return IPRange{}, invalid("ip_address", "must be an IPv4 or IPv6 address or CIDR block")
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		p = p.Masked()
	} else {
		a, err := ParseIP(s)
		if err != nil {
			return IPRange{}, invalid("ip_address", "must be an IPv4 or IPv6 address or CIDR block")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	r := IPRange{prefix: p}
	r.lo = IPKey(p.Addr())
	r.hi = r.lo
	hostBits := p.Addr().BitLen() - p.Bits()
	for i := 15; hostBits > 0; i-- {
		n := min(hostBits, 8)
		r.hi[i] |= byte(1<<n - 1)
		hostBits -= n
	}
	return r, nil
}

// IsSet reports whether r filters anything.
func (r IPRange) IsSet() bool { return r.prefix.IsValid() }

// Bounds returns the inclusive 16-byte keys of the range.
func (r IPRange) Bounds() (lo, hi [16]byte) { return r.lo, r.hi }

// Contains reports whether a (a stored, canonical address) lies in r.
func (r IPRange) Contains(a netip.Addr) bool {
	if !r.IsSet() || !a.IsValid() {
		return false
	}
	k := IPKey(a)
	return bytes.Compare(k[:], r.lo[:]) >= 0 && bytes.Compare(k[:], r.hi[:]) <= 0
}

// String is the canonical spelling: an address for a one-address range,
// otherwise CIDR notation.
func (r IPRange) String() string {
	if r.prefix.IsSingleIP() {
		return r.prefix.Addr().String()
	}
	return r.prefix.String()
}

// IPKey is an address's 16-byte sort key (IPv4 mapped into IPv6).
func IPKey(a netip.Addr) [16]byte { return a.As16() }
