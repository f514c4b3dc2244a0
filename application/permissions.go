package application

import (
	"context"
	"errors"
	"fmt"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

var _ ports.AccessService = (*Users)(nil)

// Permissions answers which actions on user id actor may take now. Each
// answer asks the question its action asks, in the same words: the policy
// through authorizeWrite (reads through authorize) with the same write, and the
// domain's invariants (one's own role, the last superadmin) through the same
// domain methods, run on a copy. A user interface that offers only these
// actions offers exactly what the API would accept; the tests hold each
// answer to the action's real outcome.
func (s *Users) Permissions(ctx context.Context, actor domain.Actor, id int64) (ports.UserPermissions, error) {
	// As Get: reading the user is what the other answers build on.
	u, err := s.Get(ctx, actor, id)
	if err != nil {
		return ports.UserPermissions{}, err
	}
	p := ports.UserPermissions{Read: true, Roles: []domain.Role{}}
	// Each write is asked through authorizeWrite, the check the write
	// itself goes through.
	may := func(w userWrite) (bool, error) {
		err := authorizeWrite(ctx, s.authz, actor, u, w)
		if errors.Is(err, domain.ErrForbidden) {
			return false, nil
		}
		return err == nil, err
	}
	superadmins := s.superadminCount(ctx)
	if p.Update, err = may(userWrite{perm: domain.PermUsersUpdate}); err != nil {
		return p, err
	}
	if p.Password, err = may(userWrite{perm: domain.PermUsersUpdate, password: true}); err != nil {
		return p, err
	}
	if p.Delete, err = may(userWrite{perm: domain.PermUsersDelete}); err != nil {
		return p, err
	}
	if p.Delete {
		p.Delete = ruleRefusal(u.CheckDelete(superadmins)) == nil
	}
	now := s.clock.Now()
	for _, r := range domain.Roles() {
		ok, err := may(userWrite{perm: domain.PermUsersRoleUpdate, newRole: r})
		if err != nil {
			return p, err
		}
		if ok && ruleRefusal(u.Clone().ChangeRole(actor, r, superadmins, now)) == nil {
			p.Roles = append(p.Roles, r)
		}
	}
	if p.Audit, err = allowed(ctx, s.authz, actor, domain.PermAuditRead, nil, domain.Role{}); err != nil {
		return p, err
	}
	return p, nil
}

// Capabilities answers, for each action that has no target user, the
// question that action asks (List and Search ask users.list and
// users.search with no target, Create asks users.create with the role).
func (s *Users) Capabilities(ctx context.Context, actor domain.Actor) (ports.Capabilities, error) {
	if err := requireNoPasswordChange(actor); err != nil {
		return ports.Capabilities{}, err
	}
	c := ports.Capabilities{Create: []domain.Role{}}
	var err error
	for perm, to := range map[domain.Permission]*bool{
		domain.PermUsersList: &c.List, domain.PermUsersSearch: &c.Search, domain.PermUsersImport: &c.Import,
		domain.PermAuditRead: &c.Audit, domain.PermPolicyRead: &c.Policy, domain.PermSubscribeSearch: &c.SubscribeSearch,
	} {
		if *to, err = allowed(ctx, s.authz, actor, perm, nil, domain.Role{}); err != nil {
			return c, err
		}
	}
	for _, r := range domain.Roles() {
		ok, err := allowed(ctx, s.authz, actor, domain.PermUsersCreate, nil, r)
		if err != nil {
			return c, err
		}
		if ok {
			c.Create = append(c.Create, r)
		}
	}
	return c, nil
}

// allowed is authorize as a yes or no; only a failure to decide is an error.
func allowed(ctx context.Context, az ports.Authorizer, actor domain.Actor, perm domain.Permission, target *domain.User, newRole domain.Role) (bool, error) {
	err := authorize(ctx, az, actor, perm, target, newRole)
	if errors.Is(err, domain.ErrForbidden) {
		return false, nil
	}
	return err == nil, err
}

// superadminCount counts superadmins for the invariants' checks. Outside
// the write's transaction it is a snapshot: the write checks again under
// its lock, so a stale answer can only offer an action that is then refused.
func (s *Users) superadminCount(ctx context.Context) domain.SuperadminCount {
	return func() (int64, error) {
		f, err := domain.ParseFilter(domain.FilterParams{Role: domain.RoleSuperadmin.String()})
		if err != nil {
			return 0, err
		}
		n, _, err := s.repo.Count(ctx, f, exactCountLimit)
		if err != nil {
			return 0, fmt.Errorf("count superadmins: %w", err)
		}
		return n, nil
	}
}

// ruleRefusal keeps a domain rule's refusal and drops anything else, which
// would be the count failing: then the action is not offered.
func ruleRefusal(err error) error {
	if err != nil && domain.KindOf(err) == domain.KindInternal {
		return domain.ErrForbidden
	}
	return err
}

// Policy answers every question the service can ask the policy, for each
// role, and lists those answered yes. Asking the Authorizer (rather than
// reading the files) shows what is in force, wildcards and inheritance
// resolved, exactly as every action is decided.
func (s *Users) Policy(ctx context.Context, actor domain.Actor) (ports.PolicyMatrix, error) {
	if err := requireNoPasswordChange(actor); err != nil {
		return ports.PolicyMatrix{}, err
	}
	if err := authorize(ctx, s.authz, actor, domain.PermPolicyRead, nil, domain.Role{}); err != nil {
		return ports.PolicyMatrix{}, err
	}
	m := ports.PolicyMatrix{Roles: domain.Roles(), Permissions: domain.Permissions(), Grants: []ports.PolicyGrant{}}
	newRoles := append([]domain.Role{{}}, domain.Roles()...)
	for _, role := range m.Roles {
		// Hypothetical actor and targets: only ids and roles matter.
		who := domain.Actor{ID: 1, Role: role}
		for _, perm := range m.Permissions {
			type question struct {
				relation string
				target   *domain.User
			}
			questions := []question{{"none", nil}}
			for _, tr := range domain.Roles() {
				other, err := domain.RestoreUser(domain.StoredUser{ID: 2, Role: tr.String()})
				if err != nil {
					return m, err
				}
				questions = append(questions, question{"other", other})
				if tr == role {
					self, err := domain.RestoreUser(domain.StoredUser{ID: 1, Role: tr.String()})
					if err != nil {
						return m, err
					}
					questions = append(questions, question{"self", self})
				}
			}
			for _, q := range questions {
				for _, nr := range newRoles {
					err := authorize(ctx, s.authz, who, perm, q.target, nr)
					if errors.Is(err, domain.ErrForbidden) {
						continue
					}
					if err != nil {
						return m, err
					}
					g := ports.PolicyGrant{Role: role, Permission: perm, Relation: q.relation, NewRole: nr}
					if q.target != nil {
						g.TargetRole = q.target.Role()
					}
					m.Grants = append(m.Grants, g)
				}
			}
		}
	}
	return m, nil
}
