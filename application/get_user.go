package application

import (
	"context"
	"errors"
	"fmt"

	"github.com/userservice/userservice/domain"
)

// Me returns the actor's own user.
func (s *Users) Me(ctx context.Context, actor domain.Actor) (*domain.User, error) {
	if err := requireNoPasswordChange(actor); err != nil {
		return nil, err
	}
	u, err := s.repo.Get(ctx, actor.ID)
	if errors.Is(err, domain.ErrNotFound) {
		// The token outlived its user (deleted since it was checked).
		return nil, domain.ErrUnauthenticated.Wrap(err)
	}
	if err != nil {
		return nil, fmt.Errorf("load user %d: %w", actor.ID, err)
	}
	if err := authorize(ctx, s.authz, actor, domain.PermUsersReadSelf, u, domain.Role{}); err != nil {
		return nil, err
	}
	return u, nil
}

// Get returns user id.
func (s *Users) Get(ctx context.Context, actor domain.Actor, id int64) (*domain.User, error) {
	if err := requireNoPasswordChange(actor); err != nil {
		return nil, err
	}
	return s.target(ctx, actor, id, userWrite{perm: domain.PermUsersRead})
}
