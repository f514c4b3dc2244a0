package application

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// fixedClock always tells the same time.
type fixedClock struct{ now time.Time }

func (c fixedClock) Now() time.Time { return c.now }

// recordedChange is what memRepo logs for each write.
type recordedChange struct {
	Action   domain.ChangeAction
	ActorID  int64
	TargetID int64
}

// memRepo is an in-memory ports.UserRepository. It stores StoredUser values
// so a caller can never mutate what it holds, and runs Update and Delete
// under one mutex, as a row lock would.
type memRepo struct {
	mu         sync.Mutex
	users      map[int64]domain.StoredUser
	nextID     int64
	changes    []recordedChange
	countLimit int64
}

func newMemRepo() *memRepo { return &memRepo{users: map[int64]domain.StoredUser{}, nextID: 1} }

var _ ports.UserRepository = (*memRepo)(nil)

func (r *memRepo) restore(s domain.StoredUser) *domain.User {
	u, err := domain.RestoreUser(s)
	if err != nil {
		panic(err)
	}
	return u
}

func (r *memRepo) emailTaken(email string, except int64) bool {
	for id, s := range r.users {
		if id != except && s.Email == email {
			return true
		}
	}
	return false
}

func (r *memRepo) Create(_ context.Context, u *domain.User, actor domain.Actor) (*domain.User, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := u.Stored()
	if r.emailTaken(s.Email, -1) {
		return nil, domain.ErrEmailTaken
	}
	if s.ID == 0 {
		s.ID = r.nextID
	}
	if _, ok := r.users[s.ID]; ok {
		return nil, domain.ErrIDTaken
	}
	r.nextID = max(r.nextID, s.ID+1)
	r.users[s.ID] = s
	r.changes = append(r.changes, recordedChange{domain.ActionCreated, actor.ID, s.ID})
	return r.restore(s), nil
}

func (r *memRepo) Get(_ context.Context, id int64) (*domain.User, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.users[id]
	if !ok {
		return nil, domain.ErrNotFound
	}
	return r.restore(s), nil
}

func (r *memRepo) GetByEmail(_ context.Context, email domain.Email) (*domain.User, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.users {
		if s.Email == email.String() {
			return r.restore(s), nil
		}
	}
	return nil, domain.ErrNotFound
}

func (r *memRepo) superadmins() (int64, error) {
	var n int64
	for _, s := range r.users {
		if s.Role == domain.RoleSuperadmin.String() {
			n++
		}
	}
	return n, nil
}

func (r *memRepo) Update(_ context.Context, id int64, actor domain.Actor, fn ports.UpdateFunc) (*domain.User, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.users[id]
	if !ok {
		return nil, domain.ErrNotFound
	}
	u := r.restore(s)
	action, err := fn(u, r.superadmins)
	if err != nil {
		return nil, err
	}
	if next := u.Stored(); next != s {
		if r.emailTaken(next.Email, id) {
			return nil, domain.ErrEmailTaken
		}
		next.Version++
		r.users[id] = next
		r.changes = append(r.changes, recordedChange{action, actor.ID, id})
	}
	return r.restore(r.users[id]), nil
}

func (r *memRepo) Delete(_ context.Context, id int64, actor domain.Actor, check ports.DeleteCheck) (*domain.User, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.users[id]
	if !ok {
		return nil, domain.ErrNotFound
	}
	if err := check(r.restore(s), r.superadmins); err != nil {
		return nil, err
	}
	delete(r.users, id)
	r.changes = append(r.changes, recordedChange{domain.ActionDeleted, actor.ID, id})
	return r.restore(s), nil
}

func (r *memRepo) UpdateInternal(_ context.Context, id int64, fn func(u *domain.User) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.users[id]
	if !ok {
		return domain.ErrNotFound
	}
	u := r.restore(s)
	if err := fn(u); err != nil {
		return err
	}
	next := u.Stored()
	visible := next
	visible.PasswordHash, visible.TokenVersion = s.PasswordHash, s.TokenVersion
	if visible != s {
		return fmt.Errorf("internal update of user %d changed more than its credentials", id)
	}
	r.users[id] = next
	return nil
}

// compareKeys orders two sort keys as the repository's ORDER BY would.
func compareKeys(s domain.Sort, a, b domain.SortKey) int {
	c := 0
	switch s.Field {
	case domain.SortEmail, domain.SortLastName:
		c = strings.Compare(a.Text, b.Text)
	case domain.SortCreatedAt:
		c = a.Time.Compare(b.Time)
	}
	if c == 0 {
		c = cmp.Compare(a.ID, b.ID)
	}
	if s.Desc {
		c = -c
	}
	return c
}

func (r *memRepo) matching(f domain.Filter) []*domain.User {
	var out []*domain.User
	for _, s := range r.users {
		if u := r.restore(s); f.Matches(u) {
			out = append(out, u)
		}
	}
	return out
}

func (r *memRepo) Search(_ context.Context, q ports.SearchQuery) ([]*domain.User, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := r.matching(q.Filter)
	slices.SortFunc(all, func(a, b *domain.User) int { return compareKeys(q.Sort, q.Sort.KeyOf(a), q.Sort.KeyOf(b)) })
	if q.After != nil {
		all = slices.DeleteFunc(all, func(u *domain.User) bool { return compareKeys(q.Sort, q.Sort.KeyOf(u), *q.After) <= 0 })
	}
	all = all[min(q.Offset, len(all)):]
	return all[:min(q.Limit, len(all))], nil
}

func (r *memRepo) Count(_ context.Context, f domain.Filter, limit int64) (int64, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.countLimit = limit
	n := int64(len(r.matching(f)))
	return n, n <= limit, nil
}

func (r *memRepo) Ping(context.Context) error { return nil }

func (r *memRepo) stored(t *testing.T, id int64) domain.StoredUser {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.users[id]
	if !ok {
		t.Fatalf("user %d not stored", id)
	}
	return s
}

func (r *memRepo) recorded() []recordedChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes)
}

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

// contractPolicy is the shipped matrix of docs/api.md, Roles, read the way the
// Casbin adapter reads a request (no target: relation "none").
func contractPolicy(req ports.AuthzRequest) error {
	a := req.Actor.Role
	super, admin := a == domain.RoleSuperadmin, a == domain.RoleAdmin
	rel := "none"
	if req.Target != nil {
		rel = "other"
		if req.Actor.IsSelf(req.Target) {
			rel = "self"
		}
	}
	plain := func(r domain.Role) bool { return r == domain.RoleUser || r == domain.RoleAdmin }
	ok := false
	switch req.Permission {
	case domain.PermUsersList, domain.PermUsersRead, domain.PermUsersReadSelf:
		ok = !a.IsZero()
	case domain.PermUsersSearch:
		ok = super || admin
	case domain.PermUsersUpdate:
		ok = rel == "self" || (rel == "other" && (super || admin && req.Target.Role() == domain.RoleUser))
	case domain.PermUsersRoleUpdate:
		ok = rel == "other" && (super || admin && plain(req.Target.Role()) && plain(req.NewRole))
	case domain.PermUsersPasswordUpdate:
		ok = rel == "other" && super
	case domain.PermUsersCreate, domain.PermUsersDelete, domain.PermAuditRead, domain.PermUsersImport,
		domain.PermTokensIntrospect:
		ok = super
	}
	if !ok {
		return domain.ErrForbidden
	}
	return nil
}

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

// memRefresh is an in-memory ports.RefreshTokenStore with the port's
// rotation and reuse semantics.
type memRefresh struct {
	mu     sync.Mutex
	tokens map[string]*refreshEntry
}

type refreshEntry struct {
	ports.RefreshToken
	spent, revoked bool
}

func newMemRefresh() *memRefresh { return &memRefresh{tokens: map[string]*refreshEntry{}} }

func (s *memRefresh) Save(_ context.Context, t ports.RefreshToken) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[t.Hash] = &refreshEntry{RefreshToken: t}
	return nil
}

func (s *memRefresh) revoke(family string) {
	for _, e := range s.tokens {
		if e.FamilyID == family {
			e.revoked = true
		}
	}
}

func (s *memRefresh) Rotate(_ context.Context, oldHash string, next ports.RefreshToken, now time.Time) (int64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.tokens[oldHash]
	switch {
	case !ok || e.revoked || !now.Before(e.ExpiresAt):
		return 0, false, domain.ErrUnauthenticated
	case e.spent:
		s.revoke(e.FamilyID)
		return e.UserID, true, domain.ErrUnauthenticated
	}
	e.spent = true
	next.UserID, next.FamilyID = e.UserID, e.FamilyID
	s.tokens[next.Hash] = &refreshEntry{RefreshToken: next}
	return e.UserID, false, nil
}

func (s *memRefresh) RevokeFamily(_ context.Context, hash string, userID int64, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.tokens[hash]; ok && e.UserID == userID {
		s.revoke(e.FamilyID)
	}
	return nil
}

func (s *memRefresh) RevokeFamilyOf(_ context.Context, hash string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.tokens[hash]; ok {
		s.revoke(e.FamilyID)
	}
	return nil
}

func (s *memRefresh) entry(t *testing.T, hash string) refreshEntry {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.tokens[hash]
	if !ok {
		t.Fatalf("no refresh token with hash %s", hash)
	}
	return *e
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
	repo    *memRepo
	authz   *fakeAuthz
	hasher  *fakeHasher
	refresh *memRefresh
	users   *Users
	auth    *Auth
	// baseHashes counts the hashes made while wiring (Auth's dummy hash).
	baseHashes int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{repo: newMemRepo(), authz: &fakeAuthz{}, hasher: &fakeHasher{}, refresh: newMemRefresh()}
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

func (r *memRepo) PasswordHashClasses(context.Context) ([]ports.PasswordHashClass, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	byPrefix := map[string]*ports.PasswordHashClass{}
	for _, s := range r.users {
		if s.PasswordHash == "" {
			continue
		}
		prefix := s.PasswordHash[:min(7, len(s.PasswordHash))]
		c := byPrefix[prefix]
		if c == nil {
			c = &ports.PasswordHashClass{Sample: s.PasswordHash}
			byPrefix[prefix] = c
		}
		c.Count++
		c.Sample = min(c.Sample, s.PasswordHash)
	}
	var out []ports.PasswordHashClass
	for _, c := range byPrefix {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b ports.PasswordHashClass) int { return strings.Compare(a.Sample, b.Sample) })
	return out, nil
}
