package domain

import (
	"net/mail"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Role is a user's role. Its field is unexported, so a Role can only come from
// the three values below or from ParseRole: a conversion cannot forge one.
type Role struct{ name string }

// The three roles, ranked user < admin < superadmin.
var (
	RoleUser       = Role{"user"}
	RoleAdmin      = Role{"admin"}
	RoleSuperadmin = Role{"superadmin"}
)

// Roles lists every role in rank order.
func Roles() []Role { return []Role{RoleUser, RoleAdmin, RoleSuperadmin} }

// ParseRole accepts exactly "user", "admin" or "superadmin".
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if s == r.name {
			return r, nil
		}
	}
	return Role{}, invalid("role", "must be one of user, admin, superadmin")
}

func (r Role) String() string { return r.name }

// IsZero reports whether r is the zero value (no role).
func (r Role) IsZero() bool { return r.name == "" }

// Gender is one of the eight genders of the contract, stored in its canonical spelling.
type Gender struct{ name string }

var genders = [...]string{"Male", "Female", "Non-binary", "Agender", "Bigender", "Genderqueer", "Polygender", "Genderfluid"}

// Genders lists every gender in the contract's order.
func Genders() []Gender {
	out := make([]Gender, len(genders))
	for i, g := range genders {
		out[i] = Gender{g}
	}
	return out
}

// ParseGender accepts any letter case and returns the canonical spelling.
func ParseGender(s string) (Gender, error) {
	s = strings.TrimSpace(s)
	for _, g := range genders {
		if strings.EqualFold(s, g) {
			return Gender{g}, nil
		}
	}
	return Gender{}, invalid("gender", "must be one of "+strings.Join(genders[:], ", "))
}

func (g Gender) String() string { return g.name }

// IsZero reports whether g is the zero value (no gender).
func (g Gender) IsZero() bool { return g.name == "" }

// Fold maps s to the form used for case-insensitive comparison: every rune is
// upper- then lower-cased, which folds case variants (ZOË, Zoë, final and
// medial sigma, the Kelvin sign) to one spelling. Storage keeps folded copies of
// searchable columns so SQL and Filter.Matches compare exactly the same strings.
func Fold(s string) string {
	return strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, s)
}

// Email is a validated address, stored lower-cased, which makes the unique
// index on it case-insensitive. It is never stored as another address: an
// address in which Fold would turn a lower-case letter into a different one
// (ı into i, ſ into s, final ς into σ) is refused, so what is stored is both
// what was typed, lower-cased, and the folded form uniqueness compares.
type Email struct{ addr string }

const maxEmailLen = 254

// ParseEmail trims, validates and lower-cases an address: a bare addr-spec
// (no display name), a domain with a dot, at most 254 bytes before and after
// lower-casing, and no letter that folding would turn into another.
func ParseEmail(s string) (Email, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Email{}, invalid("email", "is required")
	}
	if len(s) > maxEmailLen || !utf8.ValidString(s) {
		return Email{}, invalid("email", "is not a valid email address")
	}
	// net/mail lets any non-ASCII rune through; controls, format characters
	// (right-to-left overrides, zero-width joiners) and exotic spaces only
	// serve to make one address look like another.
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) {
			return Email{}, invalid("email", "is not a valid email address")
		}
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return Email{}, invalid("email", "is not a valid email address")
	}
	at := strings.LastIndexByte(s, '@')
	domainPart := s[at+1:]
	if !strings.Contains(domainPart, ".") || strings.HasPrefix(domainPart, ".") || strings.HasSuffix(domainPart, ".") {
		return Email{}, invalid("email", "is not a valid email address")
	}
	// The lower-cased form is the one stored, and lower-casing can lengthen
	// an address (U+023A takes two bytes, its lower case three), so the limit
	// holds for it too.
	lower := strings.Map(unicode.ToLower, s)
	if len(lower) > maxEmailLen {
		return Email{}, invalid("email", "is not a valid email address")
	}
	if Fold(lower) != lower {
		// Stored folded, a@examıple.com would become a@examiple.com: another
		// domain than the one typed. Stored as typed, it would escape the
		// unique index that folding serves.
		return Email{}, invalid("email", "contains a letter that would be compared as another (such as ı as i); write the address with the letters it is delivered to")
	}
	return Email{lower}, nil
}

func (e Email) String() string { return e.addr }

// IsZero reports whether e is the zero value.
func (e Email) IsZero() bool { return e.addr == "" }

const maxNameLen = 100

// ParseName validates a first or last name (field names the field for errors):
// 1..100 characters after trimming; letters, marks, spaces, apostrophes,
// hyphens and periods. The trimmed name is returned.
func ParseName(field, s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", invalid(field, "is not valid UTF-8")
	}
	s = strings.TrimSpace(s)
	n := utf8.RuneCountInString(s)
	if n == 0 {
		return "", invalid(field, "is required")
	}
	if n > maxNameLen {
		return "", invalid(field, "must be at most 100 characters")
	}
	letters := 0
	for _, r := range s {
		switch {
		case unicode.IsLetter(r):
			letters++
		case unicode.IsMark(r), r == ' ', r == '\'', r == '\u2019', r == '-', r == '.':
		default:
			return "", invalid(field, "may contain only letters, spaces, apostrophes, hyphens and periods")
		}
	}
	if letters == 0 {
		return "", invalid(field, "must contain a letter")
	}
	return s, nil
}

// ParseIP accepts an IPv4 or IPv6 address and returns its canonical form.
// IPv4-mapped IPv6 addresses are unmapped to IPv4 and zones are refused, so
// one address has exactly one stored spelling.
func ParseIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, invalid("ip_address", "must be a valid IPv4 or IPv6 address")
	}
	return a.Unmap(), nil
}

// Password length limits of the contract, in characters.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 128
)

// CheckPassword validates a clear-text password's length (8..128 characters).
func CheckPassword(field, p string) error {
	n := utf8.RuneCountInString(p)
	if !utf8.ValidString(p) || n < MinPasswordLen || n > MaxPasswordLen {
		return invalid(field, "must be 8 to 128 characters")
	}
	return nil
}
