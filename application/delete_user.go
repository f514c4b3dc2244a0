package application

import (
	"context"
	"fmt"

	"github.com/userservice/userservice/domain"
)

// Delete removes user id; the last superadmin stays, whatever the policy says.
func (s *Users) Delete(ctx context.Context, actor domain.Actor, id int64) error {
	if err := requireNoPasswordChange(actor); err != nil {
		return err
	}
	if _, err := s.target(ctx, actor, id, userWrite{perm: domain.PermUsersDelete}); err != nil {
		return err
	}
	_, err := s.repo.Delete(ctx, id, actor, func(u *domain.User, superadmins domain.SuperadminCount) error {
		// Checked again on the locked row: its role may have changed since.
		if err := authorizeWrite(ctx, s.authz, actor, u, userWrite{perm: domain.PermUsersDelete}); err != nil {
			return err
		}
		return u.CheckDelete(superadmins)
	})
	if err != nil {
		return fmt.Errorf("delete user %d: %w", id, err)
	}
	return nil
}
