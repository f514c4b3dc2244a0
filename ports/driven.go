package ports

import (
	"context"
	"net/netip"
	"time"

	"github.com/userservice/userservice/domain"
)

// Clock tells the time; tests inject a fixed one. Times are UTC, truncated to
// microseconds (what PostgreSQL stores), so a round trip changes nothing.
type Clock interface {
	Now() time.Time
}

// UpdateFunc changes u inside the repository's transaction, with u's row
// locked. superadmins counts superadmins under a lock held to commit. It
// returns the action to record; when it leaves u unchanged nothing is written.
// An error rolls everything back.
type UpdateFunc func(u *domain.User, superadmins domain.SuperadminCount) (domain.ChangeAction, error)

// DeleteCheck vets a deletion inside the repository's transaction.
type DeleteCheck func(u *domain.User, superadmins domain.SuperadminCount) error

// UserRepository stores users. Every write appends its change-log entry in the
// same transaction. Errors are domain errors: ErrNotFound, ErrEmailTaken,
// ErrIDTaken, ErrUnavailable, or internal.
type UserRepository interface {
	// Create inserts u (its ID kept when non-zero and free) and returns it as
	// stored. With domain.Newcomer() as actor (a sign-up) the change-log entry
	// names the new user as its own actor.
	Create(ctx context.Context, u *domain.User, actor domain.Actor) (*domain.User, error)
	Get(ctx context.Context, id int64) (*domain.User, error)
	GetByEmail(ctx context.Context, email domain.Email) (*domain.User, error)
	// Update runs fn on the locked user and saves the result with its change entry.
	Update(ctx context.Context, id int64, actor domain.Actor, fn UpdateFunc) (*domain.User, error)
	// Delete runs check on the locked user, then deletes it and returns it as it was.
	Delete(ctx context.Context, id int64, actor domain.Actor, check DeleteCheck) (*domain.User, error)
	// UpdateInternal runs fn on the locked user and saves internal
	// bookkeeping that is no change of the user: the password hash (replaced
	// by a hash of the same password) and the token version. It appends no
	// change-log entry, so no event, no new ETag and no audit entry follow.
	// When fn changed anything else, nothing is written and an internal
	// error returns: a silent write can never hide a visible change.
	UpdateInternal(ctx context.Context, id int64, fn func(u *domain.User) error) error
	// Search returns up to q.Limit users matching q.Filter in q.Sort order.
	Search(ctx context.Context, q SearchQuery) ([]*domain.User, error)
	// Count counts users matching f exactly up to limit; past it the count may
	// be an estimate, and exact is false.
	Count(ctx context.Context, f domain.Filter, limit int64) (n int64, exact bool, err error)
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// PasswordHashClasses groups the users that have a password by the
	// first 7 bytes of their hash (the algorithm and, for bcrypt, the cost:
	// what verifying it costs), with how many users each group has and one
	// of its hashes.
	PasswordHashClasses(ctx context.Context) ([]PasswordHashClass, error)
}

// PasswordHashClass is one group of PasswordHashClasses.
type PasswordHashClass struct {
	Sample string // one stored hash of the group
	Count  int64
}

// SearchQuery is one page of a search. With After set, the page starts
// strictly after that key (keyset); otherwise Offset rows are skipped.
type SearchQuery struct {
	Filter domain.Filter
	Sort   domain.Sort
	After  *domain.SortKey
	Offset int
	Limit  int
}

// ChangeLog reads the ordered change log that every write appends to.
type ChangeLog interface {
	// ChangesAfter returns up to limit entries with seq > after, in seq order.
	// Seq follows commit order: no entry with a smaller seq commits later.
	ChangesAfter(ctx context.Context, after int64, limit int) ([]domain.Change, error)
	// Audit returns entries matching q in seq order.
	Audit(ctx context.Context, q AuditQuery) ([]domain.Change, error)
	// CountAudit counts entries matching q (AfterSeq and Limit ignored)
	// exactly up to limit; past it the count may be an estimate (exact false).
	CountAudit(ctx context.Context, q AuditQuery, limit int64) (n int64, exact bool, err error)
	// TargetsAfter is ChangesAfter for a reader that needs only to know
	// whose account changed: the seq and target of each entry, without its
	// snapshots.
	TargetsAfter(ctx context.Context, after int64, limit int) ([]ChangeTarget, error)
	// CatchUp reads a page of what a subscription resuming after q.After
	// missed, together with what tells whether q.After is still within
	// reach, in one read.
	CatchUp(ctx context.Context, q CatchUpQuery) (CatchUpPage, error)
}

// ChangeTarget is the seq and the target user of a change-log entry.
type ChangeTarget struct {
	Seq, TargetID int64
}

// CatchUpQuery asks for the public entries (internal ones left out) with
// seq > After, of TargetID's user when set, in seq order, up to Limit; a
// Limit of 0 asks for none (the bounds only).
type CatchUpQuery struct {
	After    int64
	TargetID *int64
	Limit    int
}

// CatchUpPage answers a CatchUpQuery.
type CatchUpPage struct {
	Changes []domain.Change
	// NextAt is when the first entry of the whole log after After (public
	// or not) was made; zero when there is none.
	NextAt time.Time
	// FirstSeq is the smallest seq held (0 when the log is empty): entries
	// below it were pruned.
	FirstSeq int64
}

// AuditQuery filters the change log; nil and zero fields do not filter.
type AuditQuery struct {
	TargetID *int64
	ActorID  *int64
	Action   domain.ChangeAction
	Since    time.Time
	Until    time.Time
	AfterSeq int64
	Limit    int
}

// PasswordHasher hashes and verifies passwords with a slow, salted hash.
type PasswordHasher interface {
	Hash(password string) (string, error)
	// Verify reports whether password matches hash, and whether hash was made
	// with parameters older than the current ones (so it should be replaced).
	Verify(hash, password string) (ok, needsRehash bool, err error)
}

// Authorizer decides whether an actor may perform a permission, given the
// target user's attributes. It returns nil, domain.ErrForbidden, or an
// internal error.
type Authorizer interface {
	Authorize(ctx context.Context, req AuthzRequest) error
}

// AuthzRequest is one authorization question.
type AuthzRequest struct {
	Actor      domain.Actor
	Permission domain.Permission
	Target     *domain.User // nil when the action has no target user
	NewRole    domain.Role  // for role changes and creations with a role
}

// AccessClaims is what a verified access token says.
type AccessClaims struct {
	UserID       int64
	TokenVersion int64 // must equal the user's current version, or the token is revoked
	ID           string
	IssuedAt     time.Time
	ExpiresAt    time.Time
	Issuer       string // iss
	Audience     string // aud
}

// TokenIssuer signs short-lived access tokens.
type TokenIssuer interface {
	IssueAccess(userID, tokenVersion int64, now time.Time) (token string, claims AccessClaims, err error)
}

// TokenVerifier checks an access token's signature, algorithm, issuer,
// audience and expiry. Any failure is domain.ErrUnauthenticated.
type TokenVerifier interface {
	VerifyAccess(token string, now time.Time) (AccessClaims, error)
}

// KeySet publishes the public keys that verify access tokens, so other
// services can check them without a shared secret.
type KeySet interface {
	// PublicKeys lists the keys that verify, the signing key first; empty
	// when tokens are signed with a shared secret.
	PublicKeys() []JWK
}

// JWK is a public key in the members of RFC 7517 (kty, crv, x, kid, alg,
// use). It never holds a private part.
type JWK struct {
	KeyType   string // kty: "OKP"
	Curve     string // crv: "Ed25519"
	X         string // x: the public key, base64url
	KeyID     string // kid: the RFC 7638 thumbprint
	Algorithm string // alg: "EdDSA"
	Use       string // use: "sig"
}

// RefreshToken is a stored refresh token: only the SHA-256 hash of the random
// token is kept. Tokens rotated from one login share a family.
type RefreshToken struct {
	Hash      string // hex SHA-256 of the token
	UserID    int64
	FamilyID  string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// RefreshTokenStore keeps refresh tokens with rotation and reuse detection.
type RefreshTokenStore interface {
	// Save stores a new token (a fresh family at login).
	Save(ctx context.Context, t RefreshToken) error
	// Rotate spends the unspent, unexpired token with hash oldHash and stores
	// next in its family (next.UserID and FamilyID are filled in), atomically.
	// Presenting a spent token revokes its whole family and returns reused=true
	// with the owner's id and domain.ErrUnauthenticated; an unknown, expired or
	// revoked token returns domain.ErrUnauthenticated.
	Rotate(ctx context.Context, oldHash string, next RefreshToken, now time.Time) (userID int64, reused bool, err error)
	// RevokeFamily revokes the family of the token with hash, if userID owns it.
	RevokeFamily(ctx context.Context, hash string, userID int64, now time.Time) error
	// RevokeFamilyOf revokes the family of the token with hash whoever owns
	// it: holding the token is the proof (RFC 7009). An unknown hash changes
	// nothing and is no error.
	RevokeFamilyOf(ctx context.Context, hash string, now time.Time) error
}

// LoginThrottle limits guesses at passwords without letting anyone lock an
// account's owner out: failed checks of an account's password are counted
// per client network, and across all networks against a ceiling set far
// higher, so a network that has not failed keeps its budget whatever other
// networks do (until the ceiling).
type LoginThrottle interface {
	// Attempt is asked before account's password is checked for a client at
	// address client (the zero Addr when it is not known). It refuses with a
	// domain error of kind KindRateLimited, carrying when to retry, when the
	// account may not be guessed at from there now; the password must then
	// not be checked at all. Otherwise done must be called once with whether
	// the check failed: a failure stays counted, a success is not counted.
	Attempt(ctx context.Context, account string, client netip.Addr) (done func(failed bool), err error)
}
