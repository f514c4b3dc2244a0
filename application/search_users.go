package application

import (
	"context"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// Search returns a page of the users matching every filter of req.
func (s *Users) Search(ctx context.Context, actor domain.Actor, req ports.PageRequest) (ports.Page, error) {
	if err := requireNoPasswordChange(actor); err != nil {
		return ports.Page{}, err
	}
	if err := authorize(ctx, s.authz, actor, domain.PermUsersSearch, nil, domain.Role{}); err != nil {
		return ports.Page{}, err
	}
	f, ferr := domain.ParseFilter(req.Filter)
	q, err := s.parsePage(req, f, ferr)
	if err != nil {
		return ports.Page{}, err
	}
	return s.fetchPage(ctx, q)
}
