package application

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// UpdateProfile changes user id's profile and, optionally, password.
//
// Changing one's own email or password needs the current password. Password
// checks and hashing are slow, so they run before the repository's
// transaction, never while it holds the row lock. The user is read twice
// (here, then locked) and the policy asked once per permission, here: the
// decision depends on the actor and the target's id and role only, so it is
// asked again on the locked row only when its role changed meanwhile.
func (s *Users) UpdateProfile(ctx context.Context, actor domain.Actor, id int64, req ports.UpdateUserRequest) (*domain.User, error) {
	forced := actor.PasswordChangeRequired
	if forced && (actor.ID != id || req.Password == nil) {
		return nil, domain.ErrPasswordChange
	}
	write := userWrite{perm: domain.PermUsersUpdate, password: req.Password != nil}
	target, err := s.target(ctx, actor, id, write)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()

	// Validate everything first, reporting every field at once.
	var v domain.ValidationError
	preview := target.Clone()
	v.Check("profile", preview.ApplyProfile(req.Patch, now))
	if req.Password != nil {
		v.Check("password", domain.CheckPassword("password", *req.Password))
	}
	if err := v.Err(); err != nil {
		return nil, err
	}

	self := actor.IsSelf(target)
	verified := false
	if self && (req.Password != nil || preview.Email() != target.Email()) {
		// A stale If-Match is answered before current_password is looked
		// at: were it answered after, 412 against 422 would tell a right
		// guess from a wrong one without the guess counting as a failure.
		if ifMatchFails(req.IfMatch, target) {
			return nil, domain.ErrStale
		}
		if err := s.checkCurrentPassword(ctx, target, req.CurrentPassword, req.Client); err != nil {
			return nil, err
		}
		verified = true
	}
	var newHash string
	if req.Password != nil {
		if forced {
			// The forced change exists to get rid of a password someone else
			// knows; keeping it would defeat it.
			if same, _, err := s.hasher.Verify(target.PasswordHash(), *req.Password); err == nil && same {
				var v domain.ValidationError
				v.Add("password", "must differ from the current password")
				return nil, v.Err()
			}
		}
		if newHash, err = s.hasher.Hash(*req.Password); err != nil {
			return nil, fmt.Errorf("hash password: %w", err)
		}
	}

	updated, err := s.repo.Update(ctx, id, actor, func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
		if u.Role() != target.Role() {
			if err := authorizeWrite(ctx, s.authz, actor, u, write); err != nil {
				return "", err
			}
		}
		if ifMatchFails(req.IfMatch, u) {
			return "", domain.ErrStale
		}
		if verified && u.PasswordHash() != target.PasswordHash() {
			// The password was changed after current_password was checked.
			return "", domain.ErrStale
		}
		before := u.Clone()
		if err := u.ApplyProfile(req.Patch, now); err != nil {
			return "", err
		}
		profileChanged := !sameProfile(before, u)
		if !profileChanged {
			*u = *before // keep updated_at: nothing changed, nothing is written
		}
		if newHash == "" {
			return domain.ActionUpdated, nil
		}
		u.SetPasswordHash(newHash, now)
		if profileChanged {
			return domain.ActionUpdated, nil
		}
		return domain.ActionPasswordChanged, nil
	})
	if err != nil {
		return nil, fmt.Errorf("update user %d: %w", id, err)
	}
	return updated, nil
}

// checkCurrentPassword verifies the current password the actor gave for
// their own account. A wrong one counts as a failed login for the account
// from client's network, and past that budget the password is not checked.
func (s *Users) checkCurrentPassword(ctx context.Context, u *domain.User, current *string, client netip.Addr) error {
	if current == nil || *current == "" {
		return domain.ErrPasswordRequired
	}
	done, err := s.throttle.Attempt(ctx, throttleAccount(u, ""), client)
	if err != nil {
		return err
	}
	if !u.HasPassword() {
		done(true)
		return domain.ErrPasswordIncorrect
	}
	ok, _, err := s.hasher.Verify(u.PasswordHash(), *current)
	done(err != nil || !ok)
	if err != nil {
		// An unreadable stored hash matches nothing; the cause is for logs.
		return domain.ErrPasswordIncorrect.Wrap(err)
	}
	if !ok {
		return domain.ErrPasswordIncorrect
	}
	return nil
}

// sameProfile reports whether a and b differ at most in updated_at.
func sameProfile(a, b *domain.User) bool {
	sa, sb := a.Stored(), b.Stored()
	sa.UpdatedAt = sb.UpdatedAt
	return sa == sb
}
