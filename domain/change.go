package domain

import "time"

// ChangeAction names what a change-log entry records.
type ChangeAction string

// The actions written to the change log.
const (
	ActionCreated         ChangeAction = "created"
	ActionUpdated         ChangeAction = "updated"
	ActionRoleChanged     ChangeAction = "role_changed"
	ActionPasswordChanged ChangeAction = "password_changed"
	ActionDeleted         ChangeAction = "deleted"
	// ActionTokensRevoked records internal bookkeeping, not a change of the
	// user: every access token of the target was ended (a spent refresh
	// token was presented again). It is in the log only so that every
	// instance learns of the revocation; it is no event and no audit entry.
	ActionTokensRevoked ChangeAction = "tokens_revoked"
)

// Internal reports whether the entry is bookkeeping that clients never see:
// no event, no audit entry.
func (a ChangeAction) Internal() bool { return a == ActionTokensRevoked }

// ParseStoredChangeAction accepts every action the log holds, internal ones
// included: it reads the log back, where ParseChangeAction reads what a
// client asks for.
func ParseStoredChangeAction(s string) (ChangeAction, error) {
	if a := ChangeAction(s); a.Internal() {
		return a, nil
	}
	return ParseChangeAction(s)
}

// ParseChangeAction accepts one of the public actions above, the ones the
// audit trail shows.
func ParseChangeAction(s string) (ChangeAction, error) {
	switch a := ChangeAction(s); a {
	case ActionCreated, ActionUpdated, ActionRoleChanged, ActionPasswordChanged, ActionDeleted:
		return a, nil
	}
	return "", invalid("action", "must be one of created, updated, role_changed, password_changed, deleted")
}

// Change is one entry of the change log: written in the same transaction as
// the change it records, numbered by Seq in commit order. Before is nil for a
// creation, After nil for a deletion.
type Change struct {
	Seq      int64
	At       time.Time
	ActorID  int64 // 0: the command-line operator
	Action   ChangeAction
	TargetID int64
	Before   *User
	After    *User
}

// User returns the state an event shows: After, or Before for a deletion.
func (c Change) User() *User {
	if c.After != nil {
		return c.After
	}
	return c.Before
}

// Matches reports whether the change concerns a user matching f before or
// after it, so a subscriber sees the update that moves a user out of a filter.
func (c Change) Matches(f Filter) bool {
	return (c.Before != nil && f.Matches(c.Before)) || (c.After != nil && f.Matches(c.After))
}
