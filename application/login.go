package application

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// Login checks email and password and issues a token pair in a new refresh
// family. Whatever is wrong (malformed or unknown email, no password set,
// wrong password) gives domain.ErrBadCredentials after one password
// verification, so neither the answer nor its timing tells whether the email
// is registered. Failures are counted per account and client network; past
// the budget the login is refused before the password is looked at, so a
// refused guess cannot be a hit.
func (a *Auth) Login(ctx context.Context, email, password string, client netip.Addr) (ports.TokenPair, error) {
	u, err := a.loginUser(ctx, email)
	if err != nil {
		return ports.TokenPair{}, err
	}
	account := throttleAccount(u, email)
	done, err := a.throttle.Attempt(ctx, account, client)
	if err != nil {
		return ports.TokenPair{}, err
	}
	if u == nil || !u.HasPassword() {
		// Only its cost matters: a stored hash of another account, chosen
		// so that such logins cost what real ones do (standIns).
		_, _, _ = a.hasher.Verify(a.standIns.pick(ctx, account), password)
		done(true)
		return ports.TokenPair{}, domain.ErrBadCredentials
	}
	ok, needsRehash, err := a.hasher.Verify(u.PasswordHash(), password)
	done(err != nil || !ok)
	if err != nil {
		a.log.WarnContext(ctx, "stored password hash cannot be verified", slog.Int64("user_id", u.ID()), slog.Any("error", err))
		return ports.TokenPair{}, domain.ErrBadCredentials
	}
	if !ok {
		return ports.TokenPair{}, domain.ErrBadCredentials
	}
	if needsRehash {
		a.upgradeHash(ctx, u, password)
	}

	now := a.clock.Now()
	access, err := a.issueAccess(u, now)
	if err != nil {
		return ports.TokenPair{}, err
	}
	refresh, hash := newRefreshToken(u.TokenVersion())
	err = a.refresh.Save(ctx, ports.RefreshToken{
		Hash: hash, UserID: u.ID(), FamilyID: newFamilyID(),
		CreatedAt: now, ExpiresAt: now.Add(a.refreshTTL),
	})
	if err != nil {
		return ports.TokenPair{}, fmt.Errorf("save refresh token: %w", err)
	}
	return ports.TokenPair{
		AccessToken:            access,
		ExpiresIn:              a.expiresIn(),
		RefreshToken:           refresh,
		PasswordChangeRequired: u.MustChangePassword(),
	}, nil
}

// loginUser finds the account of email; nil when there is none. Only
// infrastructure failures are errors.
func (a *Auth) loginUser(ctx context.Context, email string) (*domain.User, error) {
	addr, err := domain.ParseEmail(email)
	if err != nil {
		return nil, nil
	}
	u, err := a.repo.GetByEmail(ctx, addr)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up login: %w", err)
	}
	return u, nil
}

// upgradeHash re-hashes a verified password made with outdated parameters.
// The password is the same, so tokens stay valid. Failing only postpones the
// upgrade to the next login, so it does not fail the login.
func (a *Auth) upgradeHash(ctx context.Context, u *domain.User, password string) {
	hash, err := a.hasher.Hash(password)
	if err != nil {
		a.log.WarnContext(ctx, "password rehash failed", slog.Int64("user_id", u.ID()), slog.Any("error", err))
		return
	}
	old := u.PasswordHash()
	// The same password under a new hash is no change of the user: no
	// event, no new ETag, no audit entry.
	err = a.repo.UpdateInternal(ctx, u.ID(), func(locked *domain.User) error {
		// A password changed since the check is not ours to replace.
		if locked.PasswordHash() == old {
			locked.UpgradePasswordHash(hash)
		}
		return nil
	})
	if err != nil {
		a.log.WarnContext(ctx, "storing upgraded password hash failed", slog.Int64("user_id", u.ID()), slog.Any("error", err))
	}
}
