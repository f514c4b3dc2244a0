package application

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

func TestLogin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	u := f.seed(t, 1, domain.RoleAdmin, "secret-one")

	pair, err := f.auth.Login(ctx, "USER1@example.com", "secret-one", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if pair.AccessToken != "access:1:0" || pair.ExpiresIn != int64(testAccessTTL.Seconds()) || pair.PasswordChangeRequired {
		t.Fatalf("pair %+v", pair)
	}
	sum := sha256.Sum256([]byte(pair.RefreshToken))
	stored := f.refresh.entry(t, hex.EncodeToString(sum[:]))
	if stored.UserID != u.ID() || stored.FamilyID == "" || !stored.CreatedAt.Equal(testNow) || !stored.ExpiresAt.Equal(testNow.Add(testRefreshTTL)) {
		t.Fatalf("stored refresh token %+v", stored)
	}
	if len(pair.RefreshToken) < 43 {
		t.Fatalf("refresh token %q is too short to hold 32 random bytes", pair.RefreshToken)
	}

	again, err := f.auth.Login(ctx, "user1@example.com", "secret-one", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	sum = sha256.Sum256([]byte(again.RefreshToken))
	if again.RefreshToken == pair.RefreshToken || f.refresh.entry(t, hex.EncodeToString(sum[:])).FamilyID == stored.FamilyID {
		t.Fatal("a second login reused the token or its family")
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, email, password string
		dummy                 bool // a stand-in hash must have been verified
	}{
		{"wrong password", "user1@example.com", "secret-two", false},
		{"unknown email", "nobody@example.com", "secret-one", true},
		{"malformed email", "nobody", "secret-one", true},
		{"no password set", "user2@example.com", "", true},
		{"unreadable hash", "user3@example.com", "secret-three", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.seed(t, 1, domain.RoleUser, "secret-one")
			f.seed(t, 2, domain.RoleUser, "")
			corrupt := f.seed(t, 3, domain.RoleUser, "")
			if _, err := f.repo.Update(context.Background(), corrupt.ID(), domain.Operator(), func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
				u.SetInitialPassword("corrupt", false)
				return domain.ActionUpdated, nil
			}); err != nil {
				t.Fatal(err)
			}
			_, err := f.auth.Login(context.Background(), tc.email, tc.password, netip.Addr{})
			if !errors.Is(err, domain.ErrBadCredentials) {
				t.Fatalf("got %v, want ErrBadCredentials", err)
			}
			// One verification in every case: of the account's own hash, or
			// of a stand-in, the stored hash of another account (user 1's or
			// user 3's, the only hashes stored).
			own := map[string]string{"user1@example.com": "hash:secret-one", "user3@example.com": "corrupt"}[tc.email]
			if n := f.hasher.verifyTotal(); n != 1 {
				t.Fatalf("%d verifications, want 1", n)
			}
			standIn := f.hasher.verifyCount("hash:secret-one") + f.hasher.verifyCount("corrupt")
			if tc.dummy && (own != "" || standIn != 1) || !tc.dummy && f.hasher.verifyCount(own) != 1 {
				t.Fatalf("verified %v, want a stand-in: %v", f.hasher.verified, tc.dummy)
			}
		})
	}
}

func TestLoginUpgradesAnOutdatedHash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	u := f.seed(t, 1, domain.RoleUser, "")
	if _, err := f.repo.Update(ctx, u.ID(), domain.Operator(), func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
		u.SetInitialPassword("old:secret-one", false)
		return domain.ActionUpdated, nil
	}); err != nil {
		t.Fatal(err)
	}
	before := f.repo.stored(t, u.ID())
	logged := len(f.repo.recorded(t))
	if _, err := f.auth.Login(ctx, "user1@example.com", "secret-one", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	after := f.repo.stored(t, u.ID())
	if after.PasswordHash != "hash:secret-one" {
		t.Fatalf("hash %q, want it re-made", after.PasswordHash)
	}
	if after.TokenVersion != before.TokenVersion {
		t.Fatal("upgrading the hash revoked the user's tokens")
	}
	// Internal bookkeeping: no change-log entry, the same updated_at.
	if n := len(f.repo.recorded(t)); n != logged || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("the upgrade was recorded as a change (%d entries, were %d; updated_at %v, was %v)", n, logged, after.UpdatedAt, before.UpdatedAt)
	}
	// The upgraded hash needs no further upgrade.
	if _, err := f.auth.Login(ctx, "user1@example.com", "secret-one", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if f.hashes() != 1 {
		t.Fatalf("%d hashes made, want 1", f.hashes())
	}
}

func TestLoginReportsForcedPasswordChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	u := f.seed(t, 1, domain.RoleUser, "")
	if _, err := f.repo.Update(ctx, u.ID(), domain.Operator(), func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
		u.SetInitialPassword("hash:default-pass", true)
		return domain.ActionUpdated, nil
	}); err != nil {
		t.Fatal(err)
	}
	pair, err := f.auth.Login(ctx, "user1@example.com", "default-pass", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if !pair.PasswordChangeRequired {
		t.Fatal("PasswordChangeRequired not reported")
	}
	actor, err := f.auth.Authenticate(ctx, pair.AccessToken)
	if err != nil || !actor.PasswordChangeRequired {
		t.Fatalf("actor %+v, %v", actor, err)
	}
}

func TestRefreshRotatesAndDetectsReuse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	u := f.seed(t, 1, domain.RoleUser, "secret-one")
	first, err := f.auth.Login(ctx, "user1@example.com", "secret-one", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.auth.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == "" || second.ExpiresIn != int64(testAccessTTL.Seconds()) {
		t.Fatalf("second pair %+v", second)
	}
	if _, err := f.auth.Authenticate(ctx, second.AccessToken); err != nil {
		t.Fatalf("the new access token: %v", err)
	}

	// The first token is spent: presenting it again is theft.
	if _, err := f.auth.Refresh(ctx, first.RefreshToken); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("reuse: got %v, want ErrUnauthenticated", err)
	}
	if got := f.repo.stored(t, u.ID()).TokenVersion; got != u.TokenVersion()+1 {
		t.Fatalf("token version %d: access tokens were not revoked", got)
	}
	if _, err := f.auth.Authenticate(ctx, second.AccessToken); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("access token after reuse: %v", err)
	}
	if _, err := f.auth.Refresh(ctx, second.RefreshToken); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("the family's live token after reuse: %v", err)
	}
}

func TestRefreshRefusesTokensOlderThanARevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	u := f.seed(t, 1, domain.RoleUser, "secret-one")
	pair, err := f.auth.Login(ctx, "user1@example.com", "secret-one", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.users.UpdateProfile(ctx, actorOf(u), u.ID(), ports.UpdateUserRequest{
		Password: ptr("brand new one"), CurrentPassword: ptr("secret-one"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.auth.Refresh(ctx, pair.RefreshToken); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("refresh after a password change: got %v, want ErrUnauthenticated", err)
	}
	fresh, err := f.auth.Login(ctx, "user1@example.com", "brand new one", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.auth.Refresh(ctx, fresh.RefreshToken); err != nil {
		t.Fatalf("a token issued after the change: %v", err)
	}
}

func TestRefreshRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	u := f.seed(t, 1, domain.RoleSuperadmin, "secret-one")
	victim := f.seed(t, 2, domain.RoleUser, "secret-two")
	pair, err := f.auth.Login(ctx, "user2@example.com", "secret-two", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	unknown, _ := newRefreshToken(0)
	for name, tok := range map[string]string{"empty": "", "garbage": "not a token", "unknown": unknown} {
		if _, err := f.auth.Refresh(ctx, tok); !errors.Is(err, domain.ErrUnauthenticated) {
			t.Errorf("%s: got %v, want ErrUnauthenticated", name, err)
		}
	}
	if err := f.users.Delete(ctx, actorOf(u), victim.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.auth.Refresh(ctx, pair.RefreshToken); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("deleted user: got %v, want ErrUnauthenticated", err)
	}
}

func TestLogout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	a := f.seed(t, 1, domain.RoleUser, "secret-one")
	f.seed(t, 2, domain.RoleUser, "secret-two")
	pa, err := f.auth.Login(ctx, "user1@example.com", "secret-one", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := f.auth.Login(ctx, "user2@example.com", "secret-two", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	// Someone else's token is not yours to revoke.
	if err := f.auth.Logout(ctx, actorOf(a), pb.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if err := f.auth.Logout(ctx, actorOf(a), pa.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := f.auth.Refresh(ctx, pa.RefreshToken); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("after logout: %v", err)
	}
	if _, err := f.auth.Refresh(ctx, pb.RefreshToken); err != nil {
		t.Fatalf("b's token after a's logout attempt: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	super := f.seed(t, 1, domain.RoleSuperadmin, "secret-one")
	u := f.seed(t, 2, domain.RoleUser, "secret-two")
	gone := f.seed(t, 3, domain.RoleUser, "secret-three")

	actor, err := f.auth.Authenticate(ctx, "access:2:0")
	if err != nil {
		t.Fatal(err)
	}
	if actor != (domain.Actor{ID: u.ID(), Role: domain.RoleUser}) {
		t.Fatalf("actor %+v", actor)
	}
	if _, err := f.users.ChangeRole(ctx, actorOf(super), u.ID(), "admin"); err != nil {
		t.Fatal(err)
	}
	if err := f.users.Delete(ctx, actorOf(super), gone.ID()); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"stale version": "access:2:0",
		"deleted user":  "access:3:0",
		"bad token":     "forged",
	} {
		if _, err := f.auth.Authenticate(ctx, tok); !errors.Is(err, domain.ErrUnauthenticated) {
			t.Errorf("%s: got %v, want ErrUnauthenticated", name, err)
		}
	}
	actor, err = f.auth.Authenticate(ctx, "access:2:1")
	if err != nil || actor.Role != domain.RoleAdmin {
		t.Fatalf("current version: %+v, %v", actor, err)
	}
}

// A login naming no account verifies a stored hash of another account, in
// the proportions of the stored hashes' kinds (costs): with three quarters
// of the accounts on an imported slow hash, about three quarters of unknown
// emails verify one. The choice is stable per email. Counted, not timed.
func TestUnknownEmailsMirrorTheStoredHashes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	for i := range 100 {
		u := f.seed(t, i+1, domain.RoleUser, "")
		hash := "hash:p" // the service's own kind
		if i%4 != 0 {
			hash = "$2b$12$imported" // an imported kind, costlier to verify
		}
		if _, err := f.repo.Update(ctx, u.ID(), domain.Operator(), func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
			u.SetInitialPassword(hash, false)
			return domain.ActionUpdated, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	const tries = 400
	for i := range tries {
		if _, err := f.auth.Login(ctx, fmt.Sprintf("nobody%d@example.com", i), "guess", netip.Addr{}); !errors.Is(err, domain.ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	imported, own := f.hasher.verifyCount("$2b$12$imported"), f.hasher.verifyCount("hash:p")
	if imported+own != tries || imported < tries*60/100 || imported > tries*90/100 {
		t.Fatalf("%d unknown emails verified %d imported and %d own hashes (and %d others), want about 3:1",
			tries, imported, own, f.hasher.verifyTotal()-imported-own)
	}
	// The same email always costs the same.
	for i := range 20 {
		email := fmt.Sprintf("nobody%d@example.com", i)
		before := f.hasher.verifyCount("$2b$12$imported")
		_, _ = f.auth.Login(ctx, email, "guess", netip.Addr{})
		first := f.hasher.verifyCount("$2b$12$imported") - before
		_, _ = f.auth.Login(ctx, email, "guess", netip.Addr{})
		if second := f.hasher.verifyCount("$2b$12$imported") - before - first; first != second {
			t.Fatalf("%s verified a different kind of hash the second time", email)
		}
	}
}
