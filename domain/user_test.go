package domain_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/userservice/userservice/domain"
)

func validParams() domain.NewUserParams {
	return domain.NewUserParams{
		FirstName: " Jean-Luc ", LastName: "O’Doireidh", Email: " Jean-Luc@Example.COM ",
		Gender: "non-BINARY", IPAddress: "::ffff:192.0.2.1",
	}
}

func TestNewUser(t *testing.T) {
	t.Parallel()
	u, err := domain.NewUser(validParams(), t0)
	if err != nil {
		t.Fatalf("NewUser: %v", err)
	}
	want := domain.StoredUser{
		FirstName: "Jean-Luc", LastName: "O’Doireidh", Email: "jean-luc@example.com",
		Gender: "Non-binary", IPAddress: "192.0.2.1", Role: "user", Version: 1, CreatedAt: t0, UpdatedAt: t0,
	}
	if got := u.Stored(); got != want {
		t.Fatalf("NewUser stored = %+v, want %+v", got, want)
	}
	if u.HasPassword() || u.MustChangePassword() || u.TokenVersion() != 0 {
		t.Fatalf("new user has password %v, must change %v, token version %d", u.HasPassword(), u.MustChangePassword(), u.TokenVersion())
	}
}

func TestNewUserOptionalFieldsAndRole(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		edit   func(*domain.NewUserParams)
		wantID int64
		role   domain.Role
		ip     string
	}{
		{name: "role defaults to user", edit: func(*domain.NewUserParams) {}, role: domain.RoleUser, ip: "192.0.2.1"},
		{name: "admin kept", edit: func(p *domain.NewUserParams) { p.Role = domain.RoleAdmin }, role: domain.RoleAdmin, ip: "192.0.2.1"},
		{name: "superadmin kept", edit: func(p *domain.NewUserParams) { p.Role = domain.RoleSuperadmin }, role: domain.RoleSuperadmin, ip: "192.0.2.1"},
		{name: "no IP", edit: func(p *domain.NewUserParams) { p.IPAddress = "" }, role: domain.RoleUser},
		{name: "IPv6 canonical", edit: func(p *domain.NewUserParams) { p.IPAddress = "2001:DB8:0:0::1" }, role: domain.RoleUser, ip: "2001:db8::1"},
		{name: "id kept", edit: func(p *domain.NewUserParams) { p.ID = 42 }, wantID: 42, role: domain.RoleUser, ip: "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := validParams()
			tt.edit(&p)
			u, err := domain.NewUser(p, t0)
			if err != nil {
				t.Fatalf("NewUser: %v", err)
			}
			if u.Role() != tt.role || u.ID() != tt.wantID || u.Stored().IPAddress != tt.ip {
				t.Fatalf("NewUser = role %v, id %d, ip %q; want %v, %d, %q", u.Role(), u.ID(), u.Stored().IPAddress, tt.role, tt.wantID, tt.ip)
			}
			if tt.ip == "" && u.IP().IsValid() {
				t.Fatalf("IP = %v, want unset", u.IP())
			}
		})
	}
}

func TestNewUserReportsEveryInvalidField(t *testing.T) {
	t.Parallel()
	p := domain.NewUserParams{
		ID: -1, FirstName: " ", LastName: "R2D2", Email: "Zoë <zoe@example.com>",
		Gender: "robot", IPAddress: "fe80::1%eth0", Role: domain.RoleAdmin,
	}
	u, err := domain.NewUser(p, t0)
	if u != nil {
		t.Fatalf("NewUser returned a user with its error: %+v", u.Stored())
	}
	wantFields(t, err, "id", "first_name", "last_name", "email", "gender", "ip_address")
	if e := domain.AsError(err); e.Code != "validation_failed" {
		t.Fatalf("code = %q, want validation_failed", e.Code)
	}

	// Each field alone is reported alone.
	single := []struct {
		field string
		edit  func(*domain.NewUserParams)
	}{
		{"id", func(p *domain.NewUserParams) { p.ID = -5 }},
		{"first_name", func(p *domain.NewUserParams) { p.FirstName = "Zoë 😀" }},
		{"last_name", func(p *domain.NewUserParams) { p.LastName = "" }},
		{"email", func(p *domain.NewUserParams) { p.Email = "zoe@localhost" }},
		{"gender", func(p *domain.NewUserParams) { p.Gender = "" }},
		{"ip_address", func(p *domain.NewUserParams) { p.IPAddress = "10.0.0.0/8" }},
	}
	for _, tt := range single {
		t.Run(tt.field, func(t *testing.T) {
			t.Parallel()
			p := validParams()
			tt.edit(&p)
			_, err := domain.NewUser(p, t0)
			wantFields(t, err, tt.field)
		})
	}
}

func str(s string) *string { return &s }

func TestApplyProfile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		patch domain.ProfilePatch
		edit  func(*domain.StoredUser) // the expected change; nil when refused
		bad   []string                 // the fields reported when refused
	}{
		{
			name: "every field",
			patch: domain.ProfilePatch{FirstName: str(" Zoë "), LastName: str("Jean-Luc"), Email: str("NEW@Example.com"),
				Gender: str("genderFLUID"), IPAddress: str("2001:0db8::0001")},
			edit: func(s *domain.StoredUser) {
				s.FirstName, s.LastName, s.Email, s.Gender, s.IPAddress = "Zoë", "Jean-Luc", "new@example.com", "Genderfluid", "2001:db8::1"
			},
		},
		{
			name:  "one field",
			patch: domain.ProfilePatch{LastName: str("Ng")},
			edit:  func(s *domain.StoredUser) { s.LastName = "Ng" },
		},
		{
			name:  "empty IP clears it",
			patch: domain.ProfilePatch{IPAddress: str("")},
			edit:  func(s *domain.StoredUser) { s.IPAddress = "" },
		},
		{
			name:  "IPv4-mapped stored unmapped",
			patch: domain.ProfilePatch{IPAddress: str("::ffff:198.51.100.9")},
			edit:  func(s *domain.StoredUser) { s.IPAddress = "198.51.100.9" },
		},
		{
			name:  "one invalid field among valid ones",
			patch: domain.ProfilePatch{FirstName: str("Ana"), LastName: str("Ng"), Email: str("not an email"), Gender: str("Male"), IPAddress: str("")},
			bad:   []string{"email"},
		},
		{
			name:  "invalid IP leaves the old one",
			patch: domain.ProfilePatch{FirstName: str("Ana"), IPAddress: str("999.1.1.1")},
			bad:   []string{"ip_address"},
		},
		{
			name:  "every invalid field reported",
			patch: domain.ProfilePatch{FirstName: str(""), LastName: str("1"), Email: str("@"), Gender: str("x"), IPAddress: str(" %")},
			bad:   []string{"first_name", "last_name", "email", "gender", "ip_address"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := restore(t, storedUser())
			before := u.Stored()
			err := u.ApplyProfile(tt.patch, t1)
			if tt.bad != nil {
				wantFields(t, err, tt.bad...)
				if got := u.Stored(); got != before {
					t.Fatalf("refused patch changed the user:\n got %+v\nwant %+v", got, before)
				}
				return
			}
			if err != nil {
				t.Fatalf("ApplyProfile: %v", err)
			}
			want := before
			tt.edit(&want)
			want.UpdatedAt = t1
			if got := u.Stored(); got != want {
				t.Fatalf("after ApplyProfile:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestProfilePatchIsEmpty(t *testing.T) {
	t.Parallel()
	if !(domain.ProfilePatch{}).IsEmpty() {
		t.Error("zero patch is not empty")
	}
	for _, p := range []domain.ProfilePatch{
		{FirstName: str("")}, {LastName: str("")}, {Email: str("")}, {Gender: str("")}, {IPAddress: str("")},
	} {
		if p.IsEmpty() {
			t.Errorf("patch %+v is empty", p)
		}
	}
}

func TestTokenVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		do       func(*domain.User)
		bump     bool
		hash     string
		touched  bool // updatedAt set to t1
		mustChng bool
	}{
		{name: "SetPasswordHash", do: func(u *domain.User) { u.SetPasswordHash("$new", t1) }, bump: true, hash: "$new", touched: true},
		{name: "RevokeTokens", do: func(u *domain.User) { u.RevokeTokens(t1) }, bump: true, hash: "$old", touched: true, mustChng: true},
		{name: "UpgradePasswordHash", do: func(u *domain.User) { u.UpgradePasswordHash("$upgraded") }, hash: "$upgraded", mustChng: true},
		{name: "SetInitialPassword", do: func(u *domain.User) { u.SetInitialPassword("$initial", false) }, hash: "$initial"},
		{
			name: "ChangeRole",
			do: func(u *domain.User) {
				if err := u.ChangeRole(domain.Operator(), domain.RoleAdmin, nil, t1); err != nil {
					t.Errorf("ChangeRole: %v", err)
				}
			},
			bump: true, hash: "$old", touched: true, mustChng: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := storedUser()
			s.PasswordHash, s.MustChangePassword = "$old", true
			u := restore(t, s)
			tt.do(u)
			wantVersion := s.TokenVersion
			if tt.bump {
				wantVersion++
			}
			wantUpdated := t0
			if tt.touched {
				wantUpdated = t1
			}
			if u.TokenVersion() != wantVersion || u.PasswordHash() != tt.hash || u.UpdatedAt() != wantUpdated || u.MustChangePassword() != tt.mustChng {
				t.Fatalf("after %s: token version %d, hash %q, updated %v, must change %v; want %d, %q, %v, %v",
					tt.name, u.TokenVersion(), u.PasswordHash(), u.UpdatedAt(), u.MustChangePassword(),
					wantVersion, tt.hash, wantUpdated, tt.mustChng)
			}
		})
	}
	t.Run("SetInitialPassword must change", func(t *testing.T) {
		t.Parallel()
		u := restore(t, storedUser())
		u.SetInitialPassword("$initial", true)
		if !u.MustChangePassword() || !u.HasPassword() {
			t.Fatalf("must change %v, has password %v; want both", u.MustChangePassword(), u.HasPassword())
		}
	})
}

func TestRestoreUserRoundTrip(t *testing.T) {
	t.Parallel()
	for _, ip := range []string{"", "192.0.2.7", "2001:db8::7"} {
		s := storedUser()
		s.IPAddress, s.MustChangePassword = ip, true
		u := restore(t, s)
		if got := u.Stored(); got != s {
			t.Errorf("Stored(RestoreUser(s)):\n got %+v\nwant %+v", got, s)
		}
		if u.IP().IsValid() != (ip != "") {
			t.Errorf("IP() = %v for stored %q", u.IP(), ip)
		}
	}
}

func TestRestoreUserRefusesCorruptRows(t *testing.T) {
	t.Parallel()
	for name, edit := range map[string]func(*domain.StoredUser){
		"unknown role": func(s *domain.StoredUser) { s.Role = "Admin" },
		"empty role":   func(s *domain.StoredUser) { s.Role = "" },
		"bad IP":       func(s *domain.StoredUser) { s.IPAddress = "not-an-ip" },
	} {
		s := storedUser()
		edit(&s)
		u, err := domain.RestoreUser(s)
		if u != nil || domain.KindOf(err) != domain.KindInternal || domain.AsError(err).Code != "corrupt_row" {
			t.Errorf("%s: RestoreUser = %v, %v; want nil and an internal corrupt_row error", name, u, err)
		}
	}
}

func TestCloneIsIndependent(t *testing.T) {
	t.Parallel()
	u := restore(t, storedUser())
	c := u.Clone()
	if err := c.ApplyProfile(domain.ProfilePatch{FirstName: str("Ana")}, t1); err != nil {
		t.Fatal(err)
	}
	c.RevokeTokens(t1)
	if u.FirstName() != "Zoë" || u.TokenVersion() != 3 || u.UpdatedAt() != t0 {
		t.Fatalf("changing the clone changed the original: %+v", u.Stored())
	}
	if c.FirstName() != "Ana" {
		t.Fatalf("clone first name = %q", c.FirstName())
	}
}

func TestUserAccessors(t *testing.T) {
	t.Parallel()
	s := storedUser()
	u := restore(t, s)
	if u.ID() != s.ID || u.FirstName() != s.FirstName || u.LastName() != s.LastName ||
		u.Email().String() != s.Email || u.Gender().String() != s.Gender || u.Role().String() != s.Role ||
		u.IP() != netip.MustParseAddr(s.IPAddress) || u.CreatedAt() != s.CreatedAt || u.PasswordHash() != s.PasswordHash {
		t.Fatalf("accessors disagree with %+v", s)
	}
	if !slices.Contains(domain.Genders(), u.Gender()) {
		t.Fatalf("gender %v is not one of Genders()", u.Gender())
	}
}
