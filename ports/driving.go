package ports

import (
	"context"

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
	EnsureSuperadmin(ctx context.Context, actor domain.Actor, email, password string) (user *domain.User, created bool, err error)
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
// when absent; IfMatch, when not empty, must equal the user's current ETag.
type UpdateUserRequest struct {
	Patch           domain.ProfilePatch
	Password        *string
	CurrentPassword *string
	IfMatch         string
}
