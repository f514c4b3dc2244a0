package application

import (
	"context"
	"fmt"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// Create makes a user with any role (create-admin).
func (s *Users) Create(ctx context.Context, actor domain.Actor, req ports.CreateUserRequest) (*domain.User, error) {
	if err := requireNoPasswordChange(actor); err != nil {
		return nil, err
	}
	role := domain.RoleUser
	var roleErr error
	if req.Role != "" {
		role, roleErr = domain.ParseRole(req.Role)
	}
	// An unreadable role is asked about as "some role", so an actor who may
	// not create users hears 403, not the validation details of the request.
	if err := authorizeWrite(ctx, s.authz, actor, nil, userWrite{perm: domain.PermUsersCreate, newRole: role}); err != nil {
		return nil, err
	}
	p := req.User
	p.ID = 0 // ids are kept only by imports
	p.Role = role
	u, err := newUserWithPassword(s.hasher, p, req.Password, roleErr, s.clock.Now())
	if err != nil {
		return nil, err
	}
	created, err := s.repo.Create(ctx, u, actor)
	if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	return created, nil
}

// newUserWithPassword validates a new user and its password together, so a
// client learns every problem at once (earlier failures such as an unreadable
// role are passed in as extra), then hashes the password.
func newUserWithPassword(hasher ports.PasswordHasher, p domain.NewUserParams, password string, extra error, now time.Time) (*domain.User, error) {
	var v domain.ValidationError
	v.Check("role", extra)
	u, err := domain.NewUser(p, now)
	v.Check("user", err)
	v.Check("password", domain.CheckPassword("password", password))
	if err := v.Err(); err != nil {
		return nil, err
	}
	hash, err := hasher.Hash(password)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	u.SetInitialPassword(hash, false)
	return u, nil
}
