package application

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userservice/userservice/adapters/gormstore"
	"github.com/userservice/userservice/adapters/rbac"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// fixedClock always tells the same time.
type fixedClock struct{ now time.Time }

func (c fixedClock) Now() time.Time { return c.now }

// fakeAuthz records every question and answers with decide (nil: allow).
type fakeAuthz struct {
	mu     sync.Mutex
	calls  []ports.AuthzRequest
	decide func(ports.AuthzRequest) error
}

func (a *fakeAuthz) Authorize(_ context.Context, req ports.AuthzRequest) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, req)
	if a.decide == nil {
		return nil
	}
	return a.decide(req)
}

func (a *fakeAuthz) set(decide func(ports.AuthzRequest) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.decide = decide
	a.calls = nil
}

func (a *fakeAuthz) recorded() []ports.AuthzRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

func denyAll(ports.AuthzRequest) error { return domain.ErrForbidden }

// shippedPolicy decides as the service does: the Casbin authorizer over the
// repository's policies/, loaded once for every test.
func shippedPolicy(req ports.AuthzRequest) error {
	a, err := shippedAuthorizer()
	if err != nil {
		return err
	}
	return a.Authorize(context.Background(), req)
}

var shippedAuthorizer = sync.OnceValues(func() (*rbac.Authorizer, error) {
	return rbac.New(filepath.Join("..", "policies"), nil)
})

// fakeHasher "hashes" p as "hash:p"; hashes starting "old:" verify but need
// a rehash, and "corrupt" cannot be read. It counts Verify calls per hash.
type fakeHasher struct {
	mu       sync.Mutex
	hashes   int
	verified map[string]int
}

func (h *fakeHasher) Hash(p string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hashes++
	return "hash:" + p, nil
}

func (h *fakeHasher) Verify(hash, p string) (bool, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.verified == nil {
		h.verified = map[string]int{}
	}
	h.verified[hash]++
	switch {
	case hash == "corrupt":
		return false, false, fmt.Errorf("unreadable hash")
	case hash == "old:"+p:
		return true, true, nil
	}
	return hash == "hash:"+p, false, nil
}

func (h *fakeHasher) verifyCount(hash string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.verified[hash]
}

// verifyTotal counts every Verify call.
func (h *fakeHasher) verifyTotal() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.verified {
		n += c
	}
	return n
}

func (h *fakeHasher) hashCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hashes
}

// fakeTokens issues readable access tokens "access:ID:VERSION".
type fakeTokens struct{}

func (fakeTokens) IssueAccess(userID, version int64, now time.Time) (string, ports.AccessClaims, error) {
	tok := fmt.Sprintf("access:%d:%d", userID, version)
	return tok, ports.AccessClaims{UserID: userID, TokenVersion: version, IssuedAt: now, ExpiresAt: now.Add(time.Minute)}, nil
}

func (fakeTokens) VerifyAccess(token string, _ time.Time) (ports.AccessClaims, error) {
	parts := strings.Split(token, ":")
	if len(parts) != 3 || parts[0] != "access" {
		return ports.AccessClaims{}, domain.ErrUnauthenticated
	}
	id, err1 := strconv.ParseInt(parts[1], 10, 64)
	v, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return ports.AccessClaims{}, domain.ErrUnauthenticated
	}
	return ports.AccessClaims{UserID: id, TokenVersion: v}, nil
}

// refreshSpy is the test repository's real refresh-token store, keeping a
// copy of each token saved (a login's) for the tests to read back.
type refreshSpy struct {
	ports.RefreshTokenStore
	mu    sync.Mutex
	saved map[string]ports.RefreshToken
}

func (s *refreshSpy) Save(ctx context.Context, t ports.RefreshToken) error {
	s.mu.Lock()
	s.saved[t.Hash] = t
	s.mu.Unlock()
	return s.RefreshTokenStore.Save(ctx, t)
}

// entry is the token saved with hash.
func (s *refreshSpy) entry(t *testing.T, hash string) ports.RefreshToken {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.saved[hash]
	if !ok {
		t.Fatalf("no refresh token with hash %s", hash)
	}
	return e
}

var (
	testNow       = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	testCursorKey = []byte("0123456789abcdef0123456789abcdef")
)

const (
	testAccessTTL  = 15 * time.Minute
	testRefreshTTL = 720 * time.Hour
)

// fixture wires both services to fresh fakes.
type fixture struct {
	repo    *testRepo
	authz   *fakeAuthz
	hasher  *fakeHasher
	refresh *refreshSpy
	users   *Users
	auth    *Auth
	// baseHashes counts the hashes made while wiring (Auth's dummy hash).
	baseHashes int
}

func newFixture(t *testing.T, opts ...gormstore.Option) *fixture {
	t.Helper()
	f := &fixture{repo: newTestRepo(t, opts...), authz: &fakeAuthz{}, hasher: &fakeHasher{}}
	f.refresh = &refreshSpy{RefreshTokenStore: f.repo.store.RefreshTokens(), saved: map[string]ports.RefreshToken{}}
	deps := Deps{
		Repo: f.repo, Authz: f.authz, Hasher: f.hasher, Clock: fixedClock{testNow},
		Tokens: fakeTokens{}, Verifier: fakeTokens{}, Refresh: f.refresh, CursorKey: testCursorKey,
	}
	f.users = NewUsers(deps)
	f.auth = NewAuth(deps, AuthConfig{AccessTTL: testAccessTTL, RefreshTTL: testRefreshTTL})
	f.baseHashes = f.hasher.hashCount()
	return f
}

// hashes counts the passwords hashed since wiring.
func (f *fixture) hashes() int { return f.hasher.hashCount() - f.baseHashes }

// seed stores a user with role and password, named by n (unique per fixture).
func (f *fixture) seed(t *testing.T, n int, role domain.Role, password string) *domain.User {
	t.Helper()
	u, err := domain.NewUser(domain.NewUserParams{
		FirstName: "Ann", LastName: "Lee" + strings.Repeat("e", n%7),
		Email: fmt.Sprintf("user%d@example.com", n), Gender: "Female", Role: role,
	}, testNow.Add(time.Duration(n)*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if password != "" {
		u.SetInitialPassword("hash:"+password, false)
	}
	created, err := f.repo.Create(context.Background(), u, domain.Operator())
	if err != nil {
		t.Fatal(err)
	}
	return created
}

func actorOf(u *domain.User) domain.Actor {
	return domain.Actor{ID: u.ID(), Role: u.Role(), PasswordChangeRequired: u.MustChangePassword()}
}

func ptr[T any](v T) *T { return &v }

// fieldsOf lists the fields named by a validation error.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	e := domain.AsError(err)
	if e == nil || e.Kind != domain.KindInvalid {
		t.Fatalf("want a validation error, got %v", err)
	}
	var out []string
	for _, fe := range e.Fields {
		out = append(out, fe.Field)
	}
	slices.Sort(out)
	return out
}
