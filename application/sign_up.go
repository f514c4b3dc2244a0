package application

import (
	"context"
	"fmt"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// SignUp lets anyone create an account; it always has role user, whatever
// role the request names.
func (a *Auth) SignUp(ctx context.Context, req ports.CreateUserRequest) (*domain.User, error) {
	p := req.User
	p.ID = 0
	p.Role = domain.RoleUser
	u, err := newUserWithPassword(a.hasher, p, req.Password, nil, a.clock.Now())
	if err != nil {
		return nil, err
	}
	// Nobody is signed in yet: the actor is anonymous (ID 0 but not the
	// operator, whose role is superadmin).
	created, err := a.repo.Create(ctx, u, domain.Newcomer())
	if err != nil {
		return nil, fmt.Errorf("sign up: %w", err)
	}
	return created, nil
}
