package ports

import (
	"context"
	"net/netip"
	"time"

	"github.com/userservice/userservice/domain"
)

// UserService is every user use case. Each call names its actor and is
// authorized inside, so every driving adapter is checked the same way.
type UserService interface {
	Me(ctx context.Context, actor domain.Actor) (*domain.User, error)
	Get(ctx context.Context, actor domain.Actor, id int64) (*domain.User, error)
	List(ctx context.Context, actor domain.Actor, req PageRequest) (Page, error)
	Search(ctx context.Context, actor domain.Actor, req PageRequest) (Page, error)
	Create(ctx context.Context, actor domain.Actor, req CreateUserRequest) (*domain.User, error)
	UpdateProfile(ctx context.Context, actor domain.Actor, id int64, req UpdateUserRequest) (*domain.User, error)
	ChangeRole(ctx context.Context, actor domain.Actor, id int64, role string) (*domain.User, error)
	Delete(ctx context.Context, actor domain.Actor, id int64) error
	// EnsureSuperadmin creates the user as superadmin, or promotes an existing
	// one and sets its password. Only the command-line operator may call it.
	EnsureSuperadmin(ctx context.Context, actor domain.Actor, req SuperadminRequest) (user *domain.User, created bool, err error)
}

// SuperadminRequest names the superadmin to create or promote. The profile
// fields are used when the account is created (an existing account keeps its
// own); empty ones take neutral placeholders the superadmin can edit later.
type SuperadminRequest struct {
	Email, Password             string
	FirstName, LastName, Gender string
}

// PageRequest asks for one page of list or search. Filter is ignored by List.
type PageRequest struct {
	Filter domain.FilterParams
	Sort   string
	Page   int    // >= 1; 0 means 1
	Size   int    // 1..100; 0 means 50
	Cursor string // opaque, from Page.NextCursor; continues that order and filter
}

// Page is one page of users with the contract's envelope figures.
type Page struct {
	Items      []*domain.User
	Total      int64
	TotalExact bool
	Page       int
	Size       int
	Pages      int64
	NextCursor string // "" on the last page
}

// CreateUserRequest is a new user and its clear-text password.
type CreateUserRequest struct {
	User     domain.NewUserParams
	Role     string // "" means user
	Password string
}

// UpdateUserRequest changes a profile. Password and CurrentPassword are nil
// when absent; IfMatch, when not nil, must admit the user's current version.
type UpdateUserRequest struct {
	Patch           domain.ProfilePatch
	Password        *string
	CurrentPassword *string
	IfMatch         *IfMatch
	// Client is the address the request came from (the zero Addr when not
	// known): a wrong CurrentPassword counts as a failed login from there.
	Client netip.Addr
}

// IfMatch is a conditional write's precondition (HTTP's If-Match): the
// versions (domain.User.Version) the client expects the user to be at, or,
// with Any, whatever version it is at. A header naming no version of this
// service leaves both empty: nothing matches.
type IfMatch struct {
	Any      bool
	Versions []int64
}

// AuthService signs users up and in, rotates and revokes refresh tokens, and
// turns an access token into the actor every other use case needs.
type AuthService interface {
	// SignUp creates a user with role user (any role in the request is ignored).
	SignUp(ctx context.Context, req CreateUserRequest) (*domain.User, error)
	// Login checks email and password and issues a token pair. A wrong email
	// or password gives the same error (domain.ErrBadCredentials) in about the
	// same time. client is the address the login came from (the zero Addr
	// when not known): failures are limited per account and client network.
	Login(ctx context.Context, email, password string, client netip.Addr) (TokenPair, error)
	// Refresh spends a refresh token and issues a new pair in its family.
	Refresh(ctx context.Context, refreshToken string) (TokenPair, error)
	// Logout revokes the refresh token's family if actor owns it.
	Logout(ctx context.Context, actor domain.Actor, refreshToken string) error
	// Authenticate verifies an access token against the user's current state
	// (existence, token version) and returns the actor it stands for.
	Authenticate(ctx context.Context, accessToken string) (domain.Actor, error)
	// Introspect tells actor, who needs the tokens.introspect permission,
	// whether token is an access token in force now (RFC 7662): valid,
	// unexpired and not revoked. Anything else is Active false, not an error.
	Introspect(ctx context.Context, actor domain.Actor, token string) (Introspection, error)
	// Revoke revokes the family of a refresh token (RFC 7009): holding it is
	// the proof. An unknown token is no error; an access token is
	// domain.ErrUnsupportedTokenType, as access tokens cannot be revoked one
	// by one (they expire).
	Revoke(ctx context.Context, token string) error
}

// Introspection is what Introspect reports of an active token; the zero
// value is an inactive one.
type Introspection struct {
	Active  bool
	Claims  AccessClaims
	Role    domain.Role
	Subject int64
}

// TokenPair is what a login or refresh returns.
type TokenPair struct {
	AccessToken            string
	ExpiresIn              int64 // seconds
	RefreshToken           string
	PasswordChangeRequired bool
}

// AuditService reads the change log for auditors.
type AuditService interface {
	Audit(ctx context.Context, actor domain.Actor, req AuditRequest) (AuditPage, error)
}

// AuditRequest filters the audit log; zero fields do not filter.
type AuditRequest struct {
	TargetID *int64
	ActorID  *int64
	Action   string // a domain.ChangeAction name
	Since    time.Time
	Until    time.Time
	Cursor   string // opaque, from AuditPage.NextCursor
	Size     int    // 1..100; 0 means 50
}

// AuditPage is one page of change-log entries in seq order, in the same
// envelope as user pages.
type AuditPage struct {
	Items      []domain.Change
	Total      int64
	TotalExact bool
	Page       int
	Size       int
	Pages      int64
	NextCursor string
}
