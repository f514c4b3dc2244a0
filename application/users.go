package application

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// Deps are the driven ports the use cases work with. Users needs Repo, Authz,
// Hasher, Clock and CursorKey; Auth needs Repo, Hasher, Clock, Tokens,
// Verifier, Refresh, Log and Authz (for introspection); Import needs Importer, Decoder, HashFormats,
// Hasher, Authz and Clock.
type Deps struct {
	Repo     ports.UserRepository
	Authz    ports.Authorizer
	Hasher   ports.PasswordHasher
	Clock    ports.Clock
	Tokens   ports.TokenIssuer
	Verifier ports.TokenVerifier
	Refresh  ports.RefreshTokenStore
	Changes  ports.ChangeLog
	// Importer, Decoder and HashFormats serve imports (NewImport).
	Importer    ports.UserImporter
	Decoder     ports.ImportDecoder
	HashFormats ports.PasswordHashFormats
	Log         *slog.Logger // nil: discard
	// Throttle limits failed password checks (logins, current_password) by
	// Auth and Users. nil limits nothing: only for callers that check no
	// password (the command-line operator's commands).
	Throttle ports.LoginThrottle
	// CursorKey authenticates page cursors (HMAC-SHA256). Every instance must
	// use the same key, so a cursor from one works on all; at least
	// MinCursorKeyLen bytes.
	CursorKey []byte
}

// logger is Log, or a logger that discards when there is none.
func (d Deps) logger() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

// MinCursorKeyLen is the shortest accepted Deps.CursorKey (256 bits).
const MinCursorKeyLen = 32

// Users implements the user use cases.
type Users struct {
	repo      ports.UserRepository
	authz     ports.Authorizer
	hasher    ports.PasswordHasher
	clock     ports.Clock
	throttle  ports.LoginThrottle
	cursorKey []byte
}

var _ ports.UserService = (*Users)(nil)

// NewUsers returns the user use cases. A CursorKey shorter than
// MinCursorKeyLen is a wiring mistake and panics: forgeable cursors would
// otherwise go unnoticed.
func NewUsers(deps Deps) *Users {
	if len(deps.CursorKey) < MinCursorKeyLen {
		panic(fmt.Sprintf("application.NewUsers: CursorKey must be at least %d bytes", MinCursorKeyLen))
	}
	return &Users{
		repo:      deps.Repo,
		authz:     deps.Authz,
		hasher:    deps.Hasher,
		clock:     deps.Clock,
		throttle:  throttleOf(deps),
		cursorKey: append([]byte(nil), deps.CursorKey...),
	}
}

// requireNoPasswordChange refuses an actor who signed in with a password they
// did not choose (docs/api.md): until they change it they may do nothing but
// that change, which UpdateProfile lets through itself.
func requireNoPasswordChange(actor domain.Actor) error {
	if actor.PasswordChangeRequired {
		return domain.ErrPasswordChange
	}
	return nil
}

// authorize asks the Authorizer one question. A nil target asks whether the
// actor holds perm for some user, a zero newRole whether for some role.
func authorize(ctx context.Context, az ports.Authorizer, actor domain.Actor, perm domain.Permission, target *domain.User, newRole domain.Role) error {
	err := az.Authorize(ctx, ports.AuthzRequest{Actor: actor, Permission: perm, Target: target, NewRole: newRole})
	if err != nil {
		return fmt.Errorf("authorize %s: %w", perm, err)
	}
	return nil
}

// target loads user id and asks authorizeWrite whether actor may make w on
// it (a read is w with a read permission: one question).
//
// When the user does not exist, the answer depends on whether the actor could
// make w's own permission on a user with that id of any role: ErrNotFound if
// so, ErrForbidden if not. Otherwise an actor refused on every such user could
// still tell taken ids from free ones by the 403/404 difference, probing a
// route they may not use.
func (s *Users) target(ctx context.Context, actor domain.Actor, id int64, w userWrite) (*domain.User, error) {
	u, err := s.repo.Get(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		if aerr := authorizeAnyRole(ctx, s.authz, actor, w.perm, id, w.roleAsked()); aerr != nil {
			return nil, aerr
		}
		return nil, fmt.Errorf("user %d: %w", id, err)
	}
	if err != nil {
		return nil, fmt.Errorf("load user %d: %w", id, err)
	}
	if err := authorizeWrite(ctx, s.authz, actor, u, w); err != nil {
		return nil, err
	}
	return u, nil
}

// authorizeAnyRole asks whether actor may perform perm on a user with id
// holding some role. The question is put with hypothetical users rather than
// with no target, because "no target" means an action on no user at all
// (listing, creating), which policies answer differently.
func authorizeAnyRole(ctx context.Context, az ports.Authorizer, actor domain.Actor, perm domain.Permission, id int64, newRole domain.Role) error {
	var refusal error
	for _, r := range domain.Roles() {
		// Only what a policy looks at: the id (self or other) and the role.
		hypothetical, err := domain.RestoreUser(domain.StoredUser{ID: id, Role: r.String()})
		if err != nil {
			return fmt.Errorf("hypothetical %s: %w", r, err)
		}
		err = authorize(ctx, az, actor, perm, hypothetical, newRole)
		if err == nil {
			return nil
		}
		if !errors.Is(err, domain.ErrForbidden) {
			return err
		}
		refusal = err
	}
	return refusal
}
