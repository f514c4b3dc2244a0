package application

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/userservice/userservice/domain"
)

func TestIntrospect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.authz.set(shippedPolicy)
	super := f.seed(t, 1, domain.RoleSuperadmin, "secret-one")
	u := f.seed(t, 2, domain.RoleUser, "secret-two")

	in, err := f.auth.Introspect(ctx, actorOf(super), "access:2:0")
	if err != nil || !in.Active || in.Subject != u.ID() || in.Role != domain.RoleUser || in.Claims.UserID != u.ID() {
		t.Fatalf("a live token: %+v, %v", in, err)
	}
	// The policy decides who may ask.
	if _, err := f.auth.Introspect(ctx, actorOf(u), "access:2:0"); !errors.Is(err, domain.ErrForbidden) {
		t.Errorf("a user introspecting: %v, want ErrForbidden", err)
	}
	forced := actorOf(super)
	forced.PasswordChangeRequired = true
	if _, err := f.auth.Introspect(ctx, forced, "access:2:0"); !errors.Is(err, domain.ErrPasswordChange) {
		t.Errorf("during a forced password change: %v", err)
	}
	// A revocation makes the token inactive at once; so does anything else.
	if _, err := f.users.ChangeRole(ctx, actorOf(super), u.ID(), "admin"); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"revoked": "access:2:0", "no such user": "access:9:0", "garbage": "x"} {
		in, err := f.auth.Introspect(ctx, actorOf(super), tok)
		if err != nil || in.Active {
			t.Errorf("%s: %+v, %v, want inactive", name, in, err)
		}
	}
	if in, err := f.auth.Introspect(ctx, actorOf(super), "access:2:1"); err != nil || !in.Active || in.Role != domain.RoleAdmin {
		t.Errorf("the current token after the role change: %+v, %v", in, err)
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.seed(t, 1, domain.RoleUser, "secret-one")
	first, err := f.auth.Login(ctx, "user1@example.com", "secret-one", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.auth.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.auth.Login(ctx, "user1@example.com", "secret-one", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	// Revoking a spent token of the family ends the family's live one too,
	// without a sign-in: holding the token is the proof.
	if err := f.auth.Revoke(ctx, first.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := f.auth.Refresh(ctx, second.RefreshToken); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Errorf("the family after a revocation: %v", err)
	}
	if _, err := f.auth.Refresh(ctx, other.RefreshToken); err != nil {
		t.Errorf("another login's family: %v", err)
	}
	for _, unknown := range []string{"", "x", second.RefreshToken + "x", first.RefreshToken} {
		if err := f.auth.Revoke(ctx, unknown); err != nil {
			t.Errorf("Revoke(%q) = %v, want nil (RFC 7009)", unknown, err)
		}
	}
	if err := f.auth.Revoke(ctx, first.AccessToken); !errors.Is(err, domain.ErrUnsupportedTokenType) {
		t.Errorf("revoking an access token: %v, want ErrUnsupportedTokenType", err)
	}
}
