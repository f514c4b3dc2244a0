package application

import (
	"context"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// List returns a page of all users; req.Filter is ignored. It is the
// search without filters, under a permission of its own.
func (s *Users) List(ctx context.Context, actor domain.Actor, req ports.PageRequest) (ports.Page, error) {
	return s.page(ctx, actor, domain.PermUsersList, req, domain.Filter{}, nil)
}

// Search returns a page of the users matching every filter of req.
func (s *Users) Search(ctx context.Context, actor domain.Actor, req ports.PageRequest) (ports.Page, error) {
	f, ferr := domain.ParseFilter(req.Filter)
	return s.page(ctx, actor, domain.PermUsersSearch, req, f, ferr)
}

// page answers one page of f for actor holding perm; ferr, when not nil,
// is what was wrong with the filters, reported with the paging's own
// problems once the actor is authorized.
func (s *Users) page(ctx context.Context, actor domain.Actor, perm domain.Permission, req ports.PageRequest, f domain.Filter, ferr error) (ports.Page, error) {
	if err := requireNoPasswordChange(actor); err != nil {
		return ports.Page{}, err
	}
	if err := authorize(ctx, s.authz, actor, perm, nil, domain.Role{}); err != nil {
		return ports.Page{}, err
	}
	q, err := s.parsePage(req, f, ferr)
	if err != nil {
		return ports.Page{}, err
	}
	return s.fetchPage(ctx, q)
}
