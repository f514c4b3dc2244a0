package application

import (
	"context"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// List returns a page of all users; req.Filter is ignored.
func (s *Users) List(ctx context.Context, actor domain.Actor, req ports.PageRequest) (ports.Page, error) {
	if err := requireNoPasswordChange(actor); err != nil {
		return ports.Page{}, err
	}
	if err := authorize(ctx, s.authz, actor, domain.PermUsersList, nil, domain.Role{}); err != nil {
		return ports.Page{}, err
	}
	q, err := s.parsePage(req, domain.Filter{}, nil)
	if err != nil {
		return ports.Page{}, err
	}
	return s.fetchPage(ctx, q)
}
