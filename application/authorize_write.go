package application

import (
	"context"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// userWrite says what a write does to a user: its own permission, and what
// else it touches that has a permission of its own.
type userWrite struct {
	// perm is the write itself: users.update, users.role.update,
	// users.create or users.delete; users.read when target reads.
	perm domain.Permission
	// password: the write sets the password (or a password hash).
	password bool
	// newRole is the role the write gives: a creation's, a role change's,
	// or the role an import row names; zero for none.
	newRole domain.Role
}

// authorizeWrite is the one check every write of a user goes through,
// whichever way it comes in (REST, WebSocket, CSV import): the write's own
// permission on target (nil for a creation), then users.password.update
// when it sets another account's password, and users.role.update when it
// would give target a role other than its own. Use cases call it before
// their slow work and again on the locked row, which may have changed
// meanwhile. TestEveryUserWriterIsAuthorized holds every writer to it.
func authorizeWrite(ctx context.Context, az ports.Authorizer, actor domain.Actor, target *domain.User, w userWrite) error {
	if err := authorize(ctx, az, actor, w.perm, target, w.roleAsked()); err != nil {
		return err
	}
	if target == nil {
		return nil
	}
	if w.password && !actor.IsSelf(target) {
		if err := authorize(ctx, az, actor, domain.PermUsersPasswordUpdate, target, domain.Role{}); err != nil {
			return err
		}
	}
	if w.perm != domain.PermUsersRoleUpdate && !w.newRole.IsZero() && w.newRole != target.Role() {
		if err := authorize(ctx, az, actor, domain.PermUsersRoleUpdate, target, w.newRole); err != nil {
			return err
		}
	}
	return nil
}

// roleAsked is the new role w's own permission is asked with: the role a
// creation or a role change gives. Other permissions are about no role.
func (w userWrite) roleAsked() domain.Role {
	if w.perm == domain.PermUsersRoleUpdate || w.perm == domain.PermUsersCreate {
		return w.newRole
	}
	return domain.Role{}
}
