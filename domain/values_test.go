package domain_test

import (
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/userservice/userservice/domain"
)

const (
	msgNameRequired = "is required"
	msgNameTooLong  = "must be at most 100 characters"
	msgNameCharset  = "may contain only letters, spaces, apostrophes, hyphens and periods"
	msgNameUTF8     = "is not valid UTF-8"
)

func TestParseName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    string // the stored name when wantMsg is ""
		wantMsg string // the field error's message otherwise
	}{
		{name: "apostrophe", in: "O'Doireidh", want: "O'Doireidh"},
		{name: "typographic apostrophe", in: "O’Doireidh", want: "O’Doireidh"},
		{name: "hyphen", in: "Jean-Luc", want: "Jean-Luc"},
		{name: "precomposed diaeresis", in: "Zoë", want: "Zoë"},
		{name: "combining diaeresis", in: "Zoe\u0308", want: "Zoe\u0308"},
		{name: "spaces and periods", in: "J. R. R.", want: "J. R. R."},
		{name: "Cyrillic", in: "Дмитрий", want: "Дмитрий"},
		{name: "Han", in: "山田", want: "山田"},
		{name: "Devanagari with vowel signs", in: "हिन्दी", want: "हिन्दी"},
		{name: "trimmed ASCII space", in: "  Zoë \t\r\n", want: "Zoë"},
		{name: "trimmed Unicode space", in: "\u00a0Zoë\u3000", want: "Zoë"},
		{name: "single letter", in: "Q", want: "Q"},
		{name: "100 ASCII letters", in: strings.Repeat("a", 100), want: strings.Repeat("a", 100)},
		{name: "100 two-byte letters", in: strings.Repeat("é", 100), want: strings.Repeat("é", 100)},
		{name: "100 three-byte letters", in: strings.Repeat("山", 100), want: strings.Repeat("山", 100)},
		{name: "100 letters after trimming", in: "   " + strings.Repeat("a", 100) + "   ", want: strings.Repeat("a", 100)},
		// 50 letters and 50 combining marks: 100 runes (150 bytes).
		{name: "100 runes with marks", in: strings.Repeat("e\u0301", 50), want: strings.Repeat("e\u0301", 50)},

		{name: "empty", in: "", wantMsg: msgNameRequired},
		{name: "only spaces", in: " \t\n\u00a0", wantMsg: msgNameRequired},
		{name: "101 ASCII letters", in: strings.Repeat("a", 101), wantMsg: msgNameTooLong},
		{name: "101 two-byte letters", in: strings.Repeat("é", 101), wantMsg: msgNameTooLong},
		{name: "101 runes with marks", in: strings.Repeat("e\u0301", 50) + "e", wantMsg: msgNameTooLong},
		{name: "digit", in: "R2D2", wantMsg: msgNameCharset},
		{name: "non-ASCII digit", in: "Zoë٣", wantMsg: msgNameCharset},
		{name: "exclamation mark", in: "Zoë!", wantMsg: msgNameCharset},
		{name: "at sign", in: "zoe@example", wantMsg: msgNameCharset},
		{name: "percent", in: "Zo%", wantMsg: msgNameCharset},
		{name: "underscore", in: "Zo_ë", wantMsg: msgNameCharset},
		{name: "backslash", in: `O\Brien`, wantMsg: msgNameCharset},
		{name: "double quote", in: `"Zoë"`, wantMsg: msgNameCharset},
		{name: "emoji", in: "Zoë 😀", wantMsg: msgNameCharset},
		{name: "only punctuation", in: ".-'", wantMsg: "must contain a letter"},
		{name: "only a combining mark", in: "\u0301", wantMsg: "must contain a letter"},
		{name: "NUL", in: "Zo\x00ë", wantMsg: msgNameCharset},
		{name: "inner tab", in: "Jean\tLuc", wantMsg: msgNameCharset},
		{name: "inner newline", in: "Jean\nLuc", wantMsg: msgNameCharset},
		{name: "inner no-break space", in: "Jean\u00a0Luc", wantMsg: msgNameCharset},
		{name: "zero-width joiner", in: "Zo\u200dë", wantMsg: msgNameCharset},
		{name: "right-to-left override", in: "Zo\u202eë", wantMsg: msgNameCharset},
		{name: "invalid UTF-8", in: "Zo\xffë", wantMsg: msgNameUTF8},
		{name: "truncated UTF-8", in: "Zo\xc3", wantMsg: msgNameUTF8},
		// A 100-letter name followed by a bad byte is refused for the byte,
		// not counted as 101 characters.
		{name: "invalid UTF-8 after 100 letters", in: strings.Repeat("a", 100) + "\xff", wantMsg: msgNameUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseName("last_name", tt.in)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("ParseName(%q) error: %v", tt.in, err)
				}
				if got != tt.want {
					t.Fatalf("ParseName(%q) = %q, want %q", tt.in, got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseName(%q) = %q, want error %q", tt.in, got, tt.wantMsg)
			}
			want := []domain.FieldError{{Field: "last_name", Message: tt.wantMsg}}
			if fe := fieldErrors(t, err); !slices.Equal(fe, want) {
				t.Fatalf("ParseName(%q) fields = %v, want %v", tt.in, fe, want)
			}
			if got != "" {
				t.Fatalf("ParseName(%q) returned %q with its error", tt.in, got)
			}
		})
	}
}

func TestParseEmail(t *testing.T) {
	t.Parallel()
	const domainPart = "@example.com" // 12 bytes
	tests := []struct {
		name string
		in   string
		want string // "" means the address is refused
	}{
		{name: "plain", in: "zoe@example.com", want: "zoe@example.com"},
		{name: "trimmed", in: " \t zoe@example.com\r\n", want: "zoe@example.com"},
		{name: "lower-cased", in: "Zoe@Example.COM", want: "zoe@example.com"},
		{name: "Unicode lower-cased", in: "ZOË@EXAMPLE.COM", want: "zoë@example.com"},
		{name: "Kelvin sign folded", in: "\u212Aate@example.com", want: "kate@example.com"},
		{name: "Unicode local part and domain", in: "zoë@exämple.com", want: "zoë@exämple.com"},
		{name: "non-Latin", in: "用户@例子.广告", want: "用户@例子.广告"},
		{name: "atext symbols", in: "a%b_c+d!#$&'*/=?^`{|}~-@example.com", want: "a%b_c+d!#$&'*/=?^`{|}~-@example.com"},
		{name: "dotted local part and subdomains", in: "first.last@mail.example.co.uk", want: "first.last@mail.example.co.uk"},
		{name: "254 bytes", in: strings.Repeat("a", 242) + domainPart, want: strings.Repeat("a", 242) + domainPart},
		{name: "254 bytes after trimming", in: "  " + strings.Repeat("a", 242) + domainPart + "  ", want: strings.Repeat("a", 242) + domainPart},
		{name: "254 bytes of two-byte runes", in: strings.Repeat("é", 121) + domainPart, want: strings.Repeat("é", 121) + domainPart},

		{name: "dotted capital I lower-cased", in: "\u0130@example.com", want: "i@example.com"},

		// Folding would store another address than the one typed.
		{name: "dotless i in the domain", in: "a@exam\u0131ple.com"},
		{name: "dotless i in the local part", in: "\u0131@example.com"},
		{name: "long s", in: "a\u017fb@example.com"},
		{name: "final sigma", in: "\u03b1\u03c2@example.gr"},
		{name: "micro sign", in: "\u00b5@example.com"},
		{name: "empty", in: ""},
		{name: "only spaces", in: "   "},
		{name: "255 bytes", in: strings.Repeat("a", 243) + domainPart},
		// 134 characters but 256 bytes: the limit counts bytes.
		{name: "256 bytes of fewer runes", in: strings.Repeat("é", 122) + domainPart},
		// U+023A folds to the three-byte U+2C65: the stored (folded) form
		// would be 255 bytes.
		{name: "folds to 255 bytes", in: "\u023a" + strings.Repeat("a", 240) + domainPart},
		{name: "display name", in: "Zoë <zoe@example.com>"},
		{name: "quoted display name", in: `"Zoë" <zoe@example.com>`},
		{name: "angle brackets only", in: "<zoe@example.com>"},
		{name: "trailing comment", in: "zoe@example.com (Zoë)"},
		{name: "two addresses", in: "zoe@example.com, bob@example.com"},
		{name: "quoted local part", in: `"zoe"@example.com`},
		{name: "quoted local part with space", in: `"zo e"@example.com`},
		{name: "no dot in domain", in: "zoe@localhost"},
		{name: "leading dot in domain", in: "zoe@.example.com"},
		{name: "trailing dot in domain", in: "zoe@example.com."},
		{name: "double dot in domain", in: "zoe@example..com"},
		{name: "no at sign", in: "zoe.example.com"},
		{name: "no local part", in: "@example.com"},
		{name: "no domain", in: "zoe@"},
		{name: "two at signs", in: "zoe@home@example.com"},
		{name: "space in local part", in: "zo e@example.com"},
		{name: "space in domain", in: "zoe@exam ple.com"},
		{name: "NUL", in: "zo\x00e@example.com"},
		{name: "invalid UTF-8", in: "zo\xffe@example.com"},
		{name: "right-to-left override", in: "zo\u202ee@example.com"},
		{name: "zero-width joiner", in: "zo\u200de@example.com"},
		{name: "no-break space", in: "zo\u00a0e@example.com"},
		{name: "C1 control", in: "zo\u0085e@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseEmail(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseEmail(%q) = %q, want an error", tt.in, got)
				}
				wantFields(t, err, "email")
				if !got.IsZero() {
					t.Fatalf("ParseEmail(%q) returned %q with its error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEmail(%q) error: %v", tt.in, err)
			}
			if got.String() != tt.want {
				t.Fatalf("ParseEmail(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseEmailRequiredMessage(t *testing.T) {
	t.Parallel()
	_, err := domain.ParseEmail(" ")
	want := []domain.FieldError{{Field: "email", Message: "is required"}}
	if fe := fieldErrors(t, err); !slices.Equal(fe, want) {
		t.Fatalf("fields = %v, want %v", fe, want)
	}
}

func TestParseGender(t *testing.T) {
	t.Parallel()
	canonical := []string{"Male", "Female", "Non-binary", "Agender", "Bigender", "Genderqueer", "Polygender", "Genderfluid"}
	if got := domain.Genders(); len(got) != len(canonical) {
		t.Fatalf("Genders() = %v, want %v", got, canonical)
	}
	for i, g := range domain.Genders() {
		if g.String() != canonical[i] {
			t.Fatalf("Genders()[%d] = %q, want %q", i, g, canonical[i])
		}
	}
	for _, c := range canonical {
		for _, in := range []string{c, strings.ToLower(c), strings.ToUpper(c), swapCase(c), " " + c + "\t"} {
			t.Run(in, func(t *testing.T) {
				t.Parallel()
				got, err := domain.ParseGender(in)
				if err != nil {
					t.Fatalf("ParseGender(%q) error: %v", in, err)
				}
				if got.String() != c || got.IsZero() {
					t.Fatalf("ParseGender(%q) = %q, want %q", in, got, c)
				}
			})
		}
	}
	refused := []string{
		"", " ", "M", "F", "Man", "Woman", "Other", "Non binary", "Nonbinary", "Non-binary-", "Male\x00",
		// strings.EqualFold does not equate dotless ı (or dotted İ) with i.
		"B\u0131gender", "B\u0130GENDER",
	}
	for _, in := range refused {
		t.Run("refused "+in, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseGender(in)
			if err == nil {
				t.Fatalf("ParseGender(%q) = %q, want an error", in, got)
			}
			wantFields(t, err, "gender")
		})
	}
}

// swapCase swaps the case of every letter: "Non-binary" -> "nON-BINARY".
func swapCase(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsUpper(r) {
			return unicode.ToLower(r)
		}
		return unicode.ToUpper(r)
	}, s)
}

func TestParseRole(t *testing.T) {
	t.Parallel()
	want := []domain.Role{domain.RoleUser, domain.RoleAdmin, domain.RoleSuperadmin}
	if got := domain.Roles(); !slices.Equal(got, want) {
		t.Fatalf("Roles() = %v, want %v", got, want)
	}
	tests := []struct {
		in   string
		want domain.Role
		ok   bool
	}{
		{"user", domain.RoleUser, true},
		{"admin", domain.RoleAdmin, true},
		{"superadmin", domain.RoleSuperadmin, true},
		{in: "Admin"},
		{in: "ADMIN"},
		{in: "User"},
		{in: "SuperAdmin"},
		{in: " admin"},
		{in: "admin "},
		{in: "super admin"},
		{in: "super_admin"},
		{in: "root"},
		{in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseRole(tt.in)
			if !tt.ok {
				if err == nil {
					t.Fatalf("ParseRole(%q) = %v, want an error", tt.in, got)
				}
				wantFields(t, err, "role")
				if !got.IsZero() {
					t.Fatalf("ParseRole(%q) returned %v with its error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want || got.String() != tt.in {
				t.Fatalf("ParseRole(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseIP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string // canonical spelling; "" means refused
		is4  bool
	}{
		{name: "IPv4", in: "192.0.2.1", want: "192.0.2.1", is4: true},
		{name: "IPv4 trimmed", in: " 192.0.2.1\n", want: "192.0.2.1", is4: true},
		{name: "IPv4 zero", in: "0.0.0.0", want: "0.0.0.0", is4: true},
		{name: "IPv6 full form compressed", in: "2001:0db8:0000:0000:0000:0000:0000:0001", want: "2001:db8::1"},
		{name: "IPv6 upper case", in: "2001:DB8::ABCD", want: "2001:db8::abcd"},
		{name: "IPv6 first longest zero run", in: "2001:db8:0:0:1:0:0:1", want: "2001:db8::1:0:0:1"},
		{name: "IPv6 longest zero run wins", in: "2001:0:0:1:0:0:0:1", want: "2001:0:0:1::1"},
		{name: "IPv6 single zero group not compressed", in: "2001:db8:0:1:1:1:1:1", want: "2001:db8:0:1:1:1:1:1"},
		{name: "IPv6 unspecified", in: "0:0:0:0:0:0:0:0", want: "::"},
		{name: "IPv6 loopback", in: "0:0:0:0:0:0:0:1", want: "::1"},
		{name: "IPv4-mapped dotted", in: "::ffff:192.0.2.1", want: "192.0.2.1", is4: true},
		{name: "IPv4-mapped hex", in: "::FFFF:c000:0201", want: "192.0.2.1", is4: true},
		{name: "IPv4-compatible stays IPv6", in: "::192.0.2.1", want: "::c000:201"},
		{name: "NAT64 stays IPv6", in: "64:ff9b::192.0.2.1", want: "64:ff9b::c000:201"},

		{name: "empty", in: ""},
		{name: "IPv6 zone", in: "fe80::1%eth0"},
		{name: "IPv6 numeric zone", in: "fe80::1%1"},
		{name: "IPv4-mapped with zone", in: "::ffff:192.0.2.1%eth0"},
		{name: "octet over 255", in: "256.0.0.1"},
		{name: "three octets", in: "192.0.2"},
		{name: "leading zero octet", in: "192.0.2.01"},
		{name: "CIDR", in: "192.0.2.0/24"},
		{name: "port", in: "192.0.2.1:80"},
		{name: "bracketed", in: "[::1]"},
		{name: "bad hex", in: "2001:db8::g"},
		{name: "two double colons", in: "2001::db8::1"},
		{name: "host name", in: "example.com"},
		{name: "NUL", in: "192.0.2.1\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseIP(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseIP(%q) = %v, want an error", tt.in, got)
				}
				wantFields(t, err, "ip_address")
				if got.IsValid() {
					t.Fatalf("ParseIP(%q) returned %v with its error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseIP(%q) error: %v", tt.in, err)
			}
			if got.String() != tt.want || got.Is4() != tt.is4 || got.Zone() != "" {
				t.Fatalf("ParseIP(%q) = %v (Is4 %v), want %v (Is4 %v)", tt.in, got, got.Is4(), tt.want, tt.is4)
			}
		})
	}
}

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"7 ASCII", strings.Repeat("x", 7), false},
		{"8 ASCII", strings.Repeat("x", 8), true},
		{"128 ASCII", strings.Repeat("x", 128), true},
		{"129 ASCII", strings.Repeat("x", 129), false},
		{"7 two-byte runes (14 bytes)", strings.Repeat("é", 7), false},
		{"8 two-byte runes", strings.Repeat("é", 8), true},
		{"128 emoji (512 bytes)", strings.Repeat("😀", 128), true},
		{"129 emoji", strings.Repeat("😀", 129), false},
		{"spaces count", "        ", true},
		{"empty", "", false},
		{"invalid UTF-8", strings.Repeat("\xff", 10), false},
		{"invalid UTF-8 among valid runes", "password\xff", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := domain.CheckPassword("new_password", tt.in)
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckPassword(%q) error: %v", tt.in, err)
				}
				return
			}
			want := []domain.FieldError{{Field: "new_password", Message: "must be 8 to 128 characters"}}
			if fe := fieldErrors(t, err); !slices.Equal(fe, want) {
				t.Fatalf("CheckPassword(%q) fields = %v, want %v", tt.in, fe, want)
			}
		})
	}
}

func TestFold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{"ZOË", "zoë"},
		{"Zoë", "zoë"},
		{"zoë", "zoë"},
		{"ΣΊΣΥΦΟΣ", "σίσυφοσ"}, // capital sigma folds to medial sigma
		{"σίσυφος", "σίσυφοσ"}, // so does final sigma
		{"Σ", "σ"},
		{"ς", "σ"},
		{"\u212A", "k"}, // KELVIN SIGN
		{"K", "k"},
		{"k", "k"},
		{"\u017F", "s"}, // LATIN SMALL LETTER LONG S
		{"ǅ", "ǆ"},      // titlecase digraph
		{"ẞ", "ß"},      // capital sharp s
		{"ß", "ß"},      // ß has no single-rune upper case: it stays, no "ss"
		// Turkish dotted and dotless i: Go's case tables (not Turkish rules)
		// map all four to ASCII i, so "istanbul" finds "İstanbul" and "ISTANBUL".
		{"İ", "i"},
		{"ı", "i"},
		{"I", "i"},
		{"i", "i"},
		{"İSTANBUL", "istanbul"},
		// No normalisation: a decomposed ë stays decomposed and differs from ë.
		{"ZOE\u0308", "zoe\u0308"},
		{"O'Doireidh-ÉÇ", "o'doireidh-éç"},
		{"100% _x_ \\", "100% _x_ \\"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := domain.Fold(tt.in); got != tt.want {
			t.Errorf("Fold(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestFoldEveryRune checks, for every Unicode scalar value, the properties the
// filters rely on: Fold is idempotent (a folded filter re-parses to itself),
// keeps the rune count (the 254-character limit holds after folding), and maps
// every case variant and every strings.EqualFold equivalent to one rune.
func TestFoldEveryRune(t *testing.T) {
	t.Parallel()
	fold := func(r rune) rune {
		rs := []rune(domain.Fold(string(r)))
		if len(rs) != 1 {
			t.Fatalf("Fold(%U) = %q: %d runes, want 1", r, string(rs), len(rs))
		}
		return rs[0]
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF { // surrogates are not scalar values
			continue
		}
		f := fold(r)
		if fold(f) != f {
			t.Errorf("Fold not idempotent on %U: %U then %U", r, f, fold(f))
		}
		for _, v := range []rune{unicode.ToUpper(r), unicode.ToLower(r), unicode.ToTitle(r)} {
			if fold(v) != f {
				t.Errorf("case variant %U of %U folds to %U, want %U", v, r, fold(v), f)
			}
		}
		for o := unicode.SimpleFold(r); o != r; o = unicode.SimpleFold(o) {
			if fold(o) != f {
				t.Errorf("%U and %U are EqualFold but fold to %U and %U", r, o, f, fold(o))
			}
		}
	}
}

func TestValueZeroes(t *testing.T) {
	t.Parallel()
	if !(domain.Role{}).IsZero() || domain.RoleUser.IsZero() {
		t.Error("Role.IsZero is wrong")
	}
	if !(domain.Gender{}).IsZero() || domain.Genders()[0].IsZero() {
		t.Error("Gender.IsZero is wrong")
	}
	e, err := domain.ParseEmail("a@b.co")
	if err != nil {
		t.Fatal(err)
	}
	if !(domain.Email{}).IsZero() || e.IsZero() {
		t.Error("Email.IsZero is wrong")
	}
}
