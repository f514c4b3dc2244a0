package domain

import "time"

// Actor is who performs a use case: a signed-in user, or the operator at the
// command line (ID 0), who acts with superadmin rights.
type Actor struct {
	ID   int64
	Role Role
	// PasswordChangeRequired marks a user signed in with a password they did
	// not choose: until they change it, they may do nothing else.
	PasswordChangeRequired bool
}

// Operator is the actor of command-line administration (migrate, superadmin,
// import): someone with access to the database and the binary.
func Operator() Actor { return Actor{ID: 0, Role: RoleSuperadmin} }

// Newcomer is the actor of a self-service sign-up: nobody yet. The change log
// records the new user as the actor of their own creation.
func Newcomer() Actor { return Actor{} }

// IsNewcomer reports whether a is the zero actor of a sign-up.
func (a Actor) IsNewcomer() bool { return a.ID == 0 && a.Role.IsZero() }

// IsOperator reports whether a is the command-line operator.
func (a Actor) IsOperator() bool { return a.ID == 0 && a.Role == RoleSuperadmin }

// IsSelf reports whether a is the user u.
func (a Actor) IsSelf(u *User) bool { return a.ID != 0 && u != nil && a.ID == u.id }

// SuperadminCount returns how many superadmins exist, u included, counted
// under a lock that holds until the surrounding transaction ends, so two
// concurrent demotions cannot both see "another one is left".
type SuperadminCount func() (int64, error)

// ChangeRole applies the invariants no policy may break: nobody changes their
// own role, and the last superadmin cannot be demoted. A real change bumps the
// token version, so tokens issued under the old role stop working at once.
func (u *User) ChangeRole(actor Actor, to Role, count SuperadminCount, now time.Time) error {
	if to.IsZero() {
		return invalid("role", "is required")
	}
	if actor.IsSelf(u) {
		return ErrOwnRoleChange
	}
	if u.role == to {
		return nil
	}
	if u.role == RoleSuperadmin {
		if err := requireAnotherSuperadmin(count); err != nil {
			return err
		}
	}
	u.role = to
	u.RevokeTokens(now)
	return nil
}

// CheckDelete applies the deletion invariant: the last superadmin stays.
func (u *User) CheckDelete(count SuperadminCount) error {
	if u.role != RoleSuperadmin {
		return nil
	}
	return requireAnotherSuperadmin(count)
}

func requireAnotherSuperadmin(count SuperadminCount) error {
	n, err := count()
	if err != nil {
		return err
	}
	if n <= 1 {
		return ErrLastSuperadmin
	}
	return nil
}
