package application

import (
	"context"
	"fmt"

	"github.com/userservice/userservice/domain"
)

// ChangeRole gives user id a new role. The policy decides who may grant what
// to whom; the domain keeps anyone from changing their own role and the last
// superadmin from being demoted, whatever the policy says.
func (s *Users) ChangeRole(ctx context.Context, actor domain.Actor, id int64, role string) (*domain.User, error) {
	if err := requireNoPasswordChange(actor); err != nil {
		return nil, err
	}
	// The role names are public (the contract lists them), so refusing an
	// unknown one before asking the policy tells nobody anything; a policy
	// could not be asked about it anyway.
	to, err := domain.ParseRole(role)
	if err != nil {
		return nil, err
	}
	if _, err := s.target(ctx, actor, id, userWrite{perm: domain.PermUsersRoleUpdate, newRole: to}); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	updated, err := s.repo.Update(ctx, id, actor, func(u *domain.User, superadmins domain.SuperadminCount) (domain.ChangeAction, error) {
		// Checked again on the locked row: its role may have changed since.
		if err := authorizeWrite(ctx, s.authz, actor, u, userWrite{perm: domain.PermUsersRoleUpdate, newRole: to}); err != nil {
			return "", err
		}
		if err := u.ChangeRole(actor, to, superadmins, now); err != nil {
			return "", err
		}
		return domain.ActionRoleChanged, nil
	})
	if err != nil {
		return nil, fmt.Errorf("change role of user %d: %w", id, err)
	}
	return updated, nil
}
