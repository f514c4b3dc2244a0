package application

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// The profile of a superadmin created from the command line without
// --first-name, --last-name or --gender: the required fields get neutral
// placeholders the superadmin can edit afterwards.
const (
	superadminFirstName = "Super"
	superadminLastName  = "Admin"
	superadminGender    = "Agender"
)

// EnsureSuperadmin creates email as a superadmin with password, or promotes
// the existing user and sets the password. Only the operator may: it is how
// the first superadmin comes to be.
func (s *Users) EnsureSuperadmin(ctx context.Context, actor domain.Actor, req ports.SuperadminRequest) (*domain.User, bool, error) {
	if !actor.IsOperator() {
		return nil, false, domain.ErrForbidden
	}
	params := domain.NewUserParams{
		FirstName: cmp.Or(req.FirstName, superadminFirstName), LastName: cmp.Or(req.LastName, superadminLastName),
		Gender: cmp.Or(req.Gender, superadminGender), Role: domain.RoleSuperadmin,
	}
	var v domain.ValidationError
	addr, err := domain.ParseEmail(req.Email)
	v.Check("email", err)
	v.Check("password", domain.CheckPassword("password", req.Password))
	// The profile is checked before anything is written, so a bad flag
	// changes nothing, even for an existing account.
	_, err = domain.ParseName("first_name", params.FirstName)
	v.Check("first_name", err)
	_, err = domain.ParseName("last_name", params.LastName)
	v.Check("last_name", err)
	_, err = domain.ParseGender(params.Gender)
	v.Check("gender", err)
	if err := v.Err(); err != nil {
		return nil, false, err
	}
	hash, err := s.hasher.Hash(req.Password)
	if err != nil {
		return nil, false, fmt.Errorf("hash password: %w", err)
	}

	existing, err := s.repo.GetByEmail(ctx, addr)
	switch {
	case err == nil:
		promoted, err := s.promote(ctx, actor, existing.ID(), hash)
		return promoted, false, err
	case !errors.Is(err, domain.ErrNotFound):
		return nil, false, fmt.Errorf("look up %s: %w", addr, err)
	}

	now := s.clock.Now()
	params.Email = addr.String()
	u, err := domain.NewUser(params, now)
	if err != nil {
		return nil, false, fmt.Errorf("new superadmin: %w", err)
	}
	u.SetInitialPassword(hash, false)
	created, err := s.repo.Create(ctx, u, actor)
	if errors.Is(err, domain.ErrEmailTaken) {
		// Registered between the look-up and the insert: promote it instead.
		if existing, err = s.repo.GetByEmail(ctx, addr); err != nil {
			return nil, false, fmt.Errorf("look up %s: %w", addr, err)
		}
		promoted, err := s.promote(ctx, actor, existing.ID(), hash)
		return promoted, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("create superadmin: %w", err)
	}
	return created, true, nil
}

// promote makes user id a superadmin with the password of hash.
func (s *Users) promote(ctx context.Context, actor domain.Actor, id int64, hash string) (*domain.User, error) {
	now := s.clock.Now()
	u, err := s.repo.Update(ctx, id, actor, func(u *domain.User, superadmins domain.SuperadminCount) (domain.ChangeAction, error) {
		wasSuperadmin := u.Role() == domain.RoleSuperadmin
		if err := u.ChangeRole(actor, domain.RoleSuperadmin, superadmins, now); err != nil {
			return "", err
		}
		u.SetPasswordHash(hash, now)
		if wasSuperadmin {
			return domain.ActionPasswordChanged, nil
		}
		return domain.ActionRoleChanged, nil
	})
	if err != nil {
		return nil, fmt.Errorf("promote user %d: %w", id, err)
	}
	return u, nil
}
