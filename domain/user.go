package domain

import (
	"net/netip"
	"time"
)

// User is the aggregate. Fields are unexported: a User comes from NewUser
// (validated input) or RestoreUser (trusted storage) and changes only through
// its methods, which keep the invariants and bump the token version when a
// change must invalidate existing tokens.
type User struct {
	id                 int64
	firstName          string
	lastName           string
	email              Email
	gender             Gender
	ip                 netip.Addr
	role               Role
	passwordHash       string
	mustChangePassword bool
	tokenVersion       int64
	version            int64
	createdAt          time.Time
	updatedAt          time.Time
}

// NewUserParams is raw input for a new user, as a client or a CSV row sends it.
type NewUserParams struct {
	ID        int64 // 0: assigned by storage
	FirstName string
	LastName  string
	Email     string
	Gender    string
	IPAddress string // optional: "" leaves it unset
	Role      Role   // zero: RoleUser
}

// NewUser validates p and reports every invalid field at once. The password
// hash is set separately (SetPasswordHash) because hashing is an adapter's job.
func NewUser(p NewUserParams, now time.Time) (*User, error) {
	var v ValidationError
	u := &User{id: p.ID, role: p.Role, version: 1, createdAt: now, updatedAt: now}
	if p.ID < 0 {
		v.Add("id", "must be a positive integer")
	}
	var err error
	u.firstName, err = ParseName("first_name", p.FirstName)
	v.Check("first_name", err)
	u.lastName, err = ParseName("last_name", p.LastName)
	v.Check("last_name", err)
	u.email, err = ParseEmail(p.Email)
	v.Check("email", err)
	u.gender, err = ParseGender(p.Gender)
	v.Check("gender", err)
	if p.IPAddress != "" {
		u.ip, err = ParseIP(p.IPAddress)
		v.Check("ip_address", err)
	}
	if u.role.IsZero() {
		u.role = RoleUser
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return u, nil
}

// StoredUser is a user as storage holds it. Only storage adapters use it, with
// RestoreUser; it performs no validation because the data was validated on the
// way in.
type StoredUser struct {
	ID                 int64
	FirstName          string
	LastName           string
	Email              string
	Gender             string
	IPAddress          string
	Role               string
	PasswordHash       string
	MustChangePassword bool
	TokenVersion       int64
	// Version counts the user's visible writes: NewUser makes version 1,
	// and storage bumps it with each later one, never with internal
	// bookkeeping. The HTTP adapter makes the ETag of it.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// RestoreUser rebuilds a User from storage. Unknown role or gender strings
// (a hand-edited row) are an internal error, not a panic.
func RestoreUser(s StoredUser) (*User, error) {
	role, err := ParseRole(s.Role)
	if err != nil {
		return nil, &Error{Kind: KindInternal, Code: "corrupt_row", Message: "stored user has an unknown role", Err: err}
	}
	u := &User{
		id: s.ID, firstName: s.FirstName, lastName: s.LastName, email: Email{s.Email},
		gender: Gender{s.Gender}, role: role, passwordHash: s.PasswordHash,
		mustChangePassword: s.MustChangePassword, tokenVersion: s.TokenVersion,
		version: s.Version, createdAt: s.CreatedAt, updatedAt: s.UpdatedAt,
	}
	if s.IPAddress != "" {
		if u.ip, err = netip.ParseAddr(s.IPAddress); err != nil {
			return nil, &Error{Kind: KindInternal, Code: "corrupt_row", Message: "stored user has an invalid ip_address", Err: err}
		}
	}
	return u, nil
}

// Stored returns the user as storage holds it (RestoreUser's inverse).
func (u *User) Stored() StoredUser {
	s := StoredUser{
		ID: u.id, FirstName: u.firstName, LastName: u.lastName, Email: u.email.addr,
		Gender: u.gender.name, Role: u.role.name, PasswordHash: u.passwordHash,
		MustChangePassword: u.mustChangePassword, TokenVersion: u.tokenVersion,
		Version: u.version, CreatedAt: u.createdAt, UpdatedAt: u.updatedAt,
	}
	if u.ip.IsValid() {
		s.IPAddress = u.ip.String()
	}
	return s
}

func (u *User) ID() int64                { return u.id }
func (u *User) FirstName() string        { return u.firstName }
func (u *User) LastName() string         { return u.lastName }
func (u *User) Email() Email             { return u.email }
func (u *User) Gender() Gender           { return u.gender }
func (u *User) IP() netip.Addr           { return u.ip }
func (u *User) Role() Role               { return u.role }
func (u *User) CreatedAt() time.Time     { return u.createdAt }
func (u *User) UpdatedAt() time.Time     { return u.updatedAt }
func (u *User) TokenVersion() int64      { return u.tokenVersion }
func (u *User) Version() int64           { return u.version }
func (u *User) PasswordHash() string     { return u.passwordHash }
func (u *User) HasPassword() bool        { return u.passwordHash != "" }
func (u *User) MustChangePassword() bool { return u.mustChangePassword }

// Clone returns an independent copy (for before/after snapshots).
func (u *User) Clone() *User {
	c := *u
	return &c
}

// ProfilePatch holds the profile fields a client may change; nil leaves a
// field as it is.
type ProfilePatch struct {
	FirstName *string
	LastName  *string
	Email     *string
	Gender    *string
	IPAddress *string // "" clears the address
}

// IsEmpty reports whether the patch changes nothing.
func (p ProfilePatch) IsEmpty() bool {
	return p.FirstName == nil && p.LastName == nil && p.Email == nil && p.Gender == nil && p.IPAddress == nil
}

// ApplyProfile validates every field of p and applies them all, or none.
func (u *User) ApplyProfile(p ProfilePatch, now time.Time) error {
	var v ValidationError
	next := *u
	var err error
	if p.FirstName != nil {
		next.firstName, err = ParseName("first_name", *p.FirstName)
		v.Check("first_name", err)
	}
	if p.LastName != nil {
		next.lastName, err = ParseName("last_name", *p.LastName)
		v.Check("last_name", err)
	}
	if p.Email != nil {
		next.email, err = ParseEmail(*p.Email)
		v.Check("email", err)
	}
	if p.Gender != nil {
		next.gender, err = ParseGender(*p.Gender)
		v.Check("gender", err)
	}
	if p.IPAddress != nil {
		if *p.IPAddress == "" {
			next.ip = netip.Addr{}
		} else {
			next.ip, err = ParseIP(*p.IPAddress)
			v.Check("ip_address", err)
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	next.updatedAt = now
	*u = next
	return nil
}

// SetPasswordHash stores a new password hash (already computed by a hasher).
// It clears a pending forced change and invalidates the user's existing tokens.
func (u *User) SetPasswordHash(hash string, now time.Time) {
	u.passwordHash = hash
	u.mustChangePassword = false
	u.tokenVersion++
	u.updatedAt = now
}

// SetInitialPassword stores the hash of a password the user did not choose
// (an import's default password): the user must change it at first login.
func (u *User) SetInitialPassword(hash string, mustChange bool) {
	u.passwordHash = hash
	u.mustChangePassword = mustChange
}

// UpgradePasswordHash replaces the hash of the same password with one made
// with current parameters. Tokens stay valid: the password did not change.
func (u *User) UpgradePasswordHash(hash string) {
	u.passwordHash = hash
}

// InvalidateTokens invalidates every token issued to the user so far as
// internal bookkeeping (a spent refresh token presented again): unlike
// RevokeTokens it leaves updated_at, so the user's public state, and with it
// the ETag, stays as it was.
func (u *User) InvalidateTokens() {
	u.tokenVersion++
}

// RevokeTokens invalidates every token issued to the user so far.
func (u *User) RevokeTokens(now time.Time) {
	u.tokenVersion++
	u.updatedAt = now
}
