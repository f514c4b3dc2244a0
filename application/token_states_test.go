package application

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// countingRepo counts row reads, and can hold one Get after it has read.
type countingRepo struct {
	ports.UserRepository
	gets atomic.Int64
	// hold, when set, receives once the next Get has read its row, and
	// that Get returns only when release is closed.
	mu      sync.Mutex
	hold    chan struct{}
	release chan struct{}
}

func (r *countingRepo) Get(ctx context.Context, id int64) (*domain.User, error) {
	r.gets.Add(1)
	u, err := r.UserRepository.Get(ctx, id)
	r.mu.Lock()
	hold, release := r.hold, r.release
	r.hold = nil
	r.mu.Unlock()
	if hold != nil {
		hold <- struct{}{}
		<-release
	}
	return u, err
}

// watchedLog is memLog behind a feed whose connection state a test sets.
type watchedLog struct {
	*memLog
	conn atomic.Uint64
	down atomic.Bool
}

// ChangesAfter is the fan-out's read, of whole entries: the token cache
// must not make it, but read the targets alone (TargetsAfter). Its failure
// would keep the cache from ever trusting its memory.
func (w *watchedLog) ChangesAfter(context.Context, int64, int) ([]domain.Change, error) {
	return nil, errors.New("watchedLog: the token cache read whole entries")
}

func (w *watchedLog) Watch(ctx context.Context) (<-chan struct{}, func() (uint64, bool)) {
	return w.Changes(ctx), func() (uint64, bool) { return w.conn.Load(), !w.down.Load() }
}

// reconnect is the feed coming back: a new connection, and its wake-up.
func (w *watchedLog) reconnect() {
	w.conn.Add(1)
	w.down.Store(false)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

type tsFixture struct {
	*fixture
	counting *countingRepo
	log      *watchedLog
	states   *TokenStates
}

// newTSFixture wires Users and Auth as bootstrap does: writes through the
// evicting repository, token checks through the cache, following log.
func newTSFixture(t *testing.T, tune func(*TokenStatesConfig)) *tsFixture {
	t.Helper()
	f := &tsFixture{fixture: newFixture(t)}
	f.counting = &countingRepo{UserRepository: f.repo}
	f.log = &watchedLog{memLog: newMemLog()}
	cfg := TokenStatesConfig{Notifier: f.log, Retention: f.log, Lease: time.Hour, PollEvery: 10 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	deps := Deps{
		Repo: f.counting, Changes: f.log, Authz: f.authz, Hasher: f.hasher, Clock: fixedClock{testNow},
		Tokens: fakeTokens{}, Verifier: fakeTokens{}, Refresh: f.refresh, CursorKey: testCursorKey,
	}
	f.states = NewTokenStates(deps, cfg)
	deps.Repo = f.states.Repository(deps.Repo)
	f.users = NewUsers(deps)
	f.auth = NewAuth(deps, AuthConfig{AccessTTL: testAccessTTL, RefreshTTL: testRefreshTTL, States: f.states})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := f.states.Start(ctx); err != nil {
		t.Fatal(err)
	}
	f.awaitTrusted(t)
	return f
}

func (f *tsFixture) awaitTrusted(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(rtWait)
	for !f.states.trusted() {
		if time.Now().After(deadline) {
			t.Fatal("the cache never trusted its memory")
		}
		time.Sleep(time.Millisecond)
	}
}

// authenticate checks u's token of version and reports the row reads it cost.
func (f *tsFixture) authenticate(t *testing.T, id, version int64) (domain.Actor, int64, error) {
	t.Helper()
	before := f.counting.gets.Load()
	tok, _, _ := fakeTokens{}.IssueAccess(id, version, testNow)
	a, err := f.auth.Authenticate(context.Background(), tok)
	return a, f.counting.gets.Load() - before, err
}

// elsewhere changes u's role as another instance would: straight in the
// store, announced (or not) in the log.
func (f *tsFixture) elsewhere(t *testing.T, id int64, to domain.Role, announce bool) {
	t.Helper()
	u, err := f.repo.Update(context.Background(), id, domain.Operator(), func(u *domain.User, n domain.SuperadminCount) (domain.ChangeAction, error) {
		return domain.ActionRoleChanged, u.ChangeRole(domain.Operator(), to, n, testNow)
	})
	if err != nil {
		t.Fatal(err)
	}
	c := domain.Change{Action: domain.ActionRoleChanged, TargetID: id, After: u}
	if announce {
		f.log.add(c)
	} else {
		f.log.addUnannounced(c)
	}
}

// awaitRefused polls until u's token of version is refused.
func (f *tsFixture) awaitRefused(t *testing.T, id, version int64) {
	t.Helper()
	deadline := time.Now().Add(rtWait)
	for {
		_, _, err := f.authenticate(t, id, version)
		if errors.Is(err, domain.ErrUnauthenticated) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the revoked token is still accepted")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTokenStatesServeFromMemory(t *testing.T) {
	f := newTSFixture(t, nil)
	u := f.seed(t, 1, domain.RoleAdmin, "pw")
	a, reads, err := f.authenticate(t, u.ID(), u.TokenVersion())
	if err != nil || reads != 1 || a != actorOf(u) {
		t.Fatalf("first check: %+v, %v, %d reads; want %+v after one read", a, err, reads, actorOf(u))
	}
	for range 3 {
		a, reads, err = f.authenticate(t, u.ID(), u.TokenVersion())
		if err != nil || reads != 0 || a != actorOf(u) {
			t.Fatalf("later check: %+v, %v, %d reads; want %+v from memory", a, err, reads, actorOf(u))
		}
	}
	if _, reads, err := f.authenticate(t, u.ID(), u.TokenVersion()+1); !errors.Is(err, domain.ErrUnauthenticated) || reads != 0 {
		t.Fatalf("another version: %v after %d reads; want unauthenticated from memory", err, reads)
	}
	if _, _, err := f.authenticate(t, 999, 0); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("unknown account: %v", err)
	}
}

// The instance that writes refuses the old token as the write returns,
// before any change-log entry is read (the log it follows gets none here).
func TestTokenStatesLocalWritesEvictAtOnce(t *testing.T) {
	f := newTSFixture(t, nil)
	root := f.seed(t, 1, domain.RoleSuperadmin, "pw")
	victim := f.seed(t, 2, domain.RoleAdmin, "pw")
	other := f.seed(t, 3, domain.RoleUser, "pw")
	ctx := context.Background()
	for _, u := range []*domain.User{victim, other} {
		if _, _, err := f.authenticate(t, u.ID(), u.TokenVersion()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.users.ChangeRole(ctx, actorOf(root), victim.ID(), "user"); err != nil {
		t.Fatal(err)
	}
	if _, reads, err := f.authenticate(t, victim.ID(), victim.TokenVersion()); !errors.Is(err, domain.ErrUnauthenticated) || reads != 1 {
		t.Fatalf("after a role change here: %v after %d reads; want refused after reading the row", err, reads)
	}
	if err := f.users.Delete(ctx, actorOf(root), other.ID()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.authenticate(t, other.ID(), other.TokenVersion()); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("after a deletion here: %v; want refused", err)
	}
}

// Another instance's change reaches memory through the log: announced, or
// with its wake-up lost (the poll finds it).
func TestTokenStatesFollowTheLog(t *testing.T) {
	for _, announce := range []bool{true, false} {
		f := newTSFixture(t, nil)
		u := f.seed(t, 1, domain.RoleAdmin, "pw")
		if _, _, err := f.authenticate(t, u.ID(), u.TokenVersion()); err != nil {
			t.Fatal(err)
		}
		f.elsewhere(t, u.ID(), domain.RoleUser, announce)
		f.awaitRefused(t, u.ID(), u.TokenVersion())
		a, _, err := f.authenticate(t, u.ID(), u.TokenVersion()+1)
		if err != nil || a.Role != domain.RoleUser {
			t.Fatalf("new token: %+v, %v; want the new role", a, err)
		}
	}
}

func TestTokenStatesBound(t *testing.T) {
	f := newTSFixture(t, func(c *TokenStatesConfig) { c.MaxEntries = 10 })
	var users []*domain.User
	for i := range 25 {
		users = append(users, f.seed(t, i+1, domain.RoleUser, "pw"))
	}
	hot := users[0]
	for _, u := range users {
		if _, _, err := f.authenticate(t, u.ID(), u.TokenVersion()); err != nil {
			t.Fatal(err)
		}
		// The hot account calls between every other: it stays held.
		if _, _, err := f.authenticate(t, hot.ID(), hot.TokenVersion()); err != nil {
			t.Fatal(err)
		}
		if n := f.states.len(); n > 10 {
			t.Fatalf("%d accounts held; the bound is 10", n)
		}
	}
	if _, reads, _ := f.authenticate(t, hot.ID(), hot.TokenVersion()); reads != 0 {
		t.Fatal("the most used account was dropped")
	}
	if _, reads, _ := f.authenticate(t, users[1].ID(), users[1].TokenVersion()); reads != 1 {
		t.Fatal("an account unused since 23 others called is still held")
	}
}

// Entries pruned before the reader saw them are a gap it must not trust:
// it forgets everything rather than keep what they may have revoked.
func TestTokenStatesGapForgetsEverything(t *testing.T) {
	f := newTSFixture(t, nil)
	u := f.seed(t, 1, domain.RoleAdmin, "pw")
	bystander := f.seed(t, 2, domain.RoleUser, "pw")
	for _, x := range []*domain.User{u, bystander} {
		if _, _, err := f.authenticate(t, x.ID(), x.TokenVersion()); err != nil {
			t.Fatal(err)
		}
	}
	f.log.mu.Lock()
	f.log.readErr = errors.New("database away")
	f.log.mu.Unlock()
	f.elsewhere(t, u.ID(), domain.RoleUser, false)
	// Pruned unseen; a later entry about someone else is all that is left.
	f.log.mu.Lock()
	f.log.entries = nil
	f.log.mu.Unlock()
	f.log.addUnannounced(domain.Change{Action: domain.ActionUpdated, TargetID: 999})
	f.log.mu.Lock()
	f.log.readErr = nil
	f.log.mu.Unlock()
	f.awaitRefused(t, u.ID(), u.TokenVersion())
	if _, reads, _ := f.authenticate(t, bystander.ID(), bystander.TokenVersion()); reads != 1 {
		t.Fatal("an account held across the gap was served from memory")
	}
}

// A log that cannot be read makes every check read the row once the lease
// runs out; a change nobody announced is then refused at once.
func TestTokenStatesLogDownReadsRows(t *testing.T) {
	f := newTSFixture(t, func(c *TokenStatesConfig) { c.Lease = 50 * time.Millisecond })
	u := f.seed(t, 1, domain.RoleAdmin, "pw")
	if _, _, err := f.authenticate(t, u.ID(), u.TokenVersion()); err != nil {
		t.Fatal(err)
	}
	f.log.mu.Lock()
	f.log.readErr = errors.New("database away")
	f.log.mu.Unlock()
	deadline := time.Now().Add(rtWait)
	for f.states.trusted() {
		if time.Now().After(deadline) {
			t.Fatal("memory still trusted with the log unreadable")
		}
		time.Sleep(time.Millisecond)
	}
	if _, reads, err := f.authenticate(t, u.ID(), u.TokenVersion()); err != nil || reads != 1 {
		t.Fatalf("with the log down: %v after %d reads; want one row read", err, reads)
	}
	// Changed, and the entry is in the log, but the log cannot be read.
	f.elsewhere(t, u.ID(), domain.RoleUser, true)
	if _, reads, err := f.authenticate(t, u.ID(), u.TokenVersion()); !errors.Is(err, domain.ErrUnauthenticated) || reads != 1 {
		t.Fatalf("a change while the log is down: %v after %d reads; want refused from the row", err, reads)
	}
	f.log.mu.Lock()
	f.log.readErr = nil
	f.log.mu.Unlock()
	f.awaitTrusted(t)
	if _, _, err := f.authenticate(t, u.ID(), u.TokenVersion()+1); err != nil {
		t.Fatal(err)
	}
	if _, reads, err := f.authenticate(t, u.ID(), u.TokenVersion()+1); err != nil || reads != 0 {
		t.Fatalf("after the log is back: %v after %d reads; want memory", err, reads)
	}
}

// A feed that says its connection is down is not trusted, nor is it after
// reconnecting until the log has been read since.
func TestTokenStatesFeedDownReadsRows(t *testing.T) {
	f := newTSFixture(t, func(c *TokenStatesConfig) { c.PollEvery = time.Hour })
	u := f.seed(t, 1, domain.RoleAdmin, "pw")
	if _, _, err := f.authenticate(t, u.ID(), u.TokenVersion()); err != nil {
		t.Fatal(err)
	}
	f.log.down.Store(true)
	// Lost with the connection: the reader is never told.
	f.elsewhere(t, u.ID(), domain.RoleUser, false)
	if _, reads, err := f.authenticate(t, u.ID(), u.TokenVersion()); !errors.Is(err, domain.ErrUnauthenticated) || reads != 1 {
		t.Fatalf("feed down: %v after %d reads; want refused from the row", err, reads)
	}
	// Up again on a new connection, not yet read: still rows.
	f.log.conn.Add(1)
	f.log.down.Store(false)
	if f.states.trusted() {
		t.Fatal("memory trusted after a reconnection before the log was read")
	}
	f.log.reconnect()
	f.awaitTrusted(t)
	v := u.TokenVersion() + 1
	if _, _, err := f.authenticate(t, u.ID(), v); err != nil {
		t.Fatal(err)
	}
	if _, reads, err := f.authenticate(t, u.ID(), v); err != nil || reads != 0 {
		t.Fatalf("resynced: %v after %d reads; want memory", err, reads)
	}
}

// A row read before a change committed is not kept when the change's
// eviction came while it was in flight.
func TestTokenStatesLoadRacingEviction(t *testing.T) {
	f := newTSFixture(t, nil)
	u := f.seed(t, 1, domain.RoleAdmin, "pw")
	hold, release := make(chan struct{}), make(chan struct{})
	f.counting.mu.Lock()
	f.counting.hold, f.counting.release = hold, release
	f.counting.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, _, err := f.authenticate(t, u.ID(), u.TokenVersion())
		done <- err
	}()
	<-hold // the old row is read
	f.elsewhere(t, u.ID(), domain.RoleUser, true)
	deadline := time.Now().Add(rtWait)
	for f.states.epochs[uint64(u.ID())%epochStripes].Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the change was never applied")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err) // the check that started before the change passes
	}
	if _, _, err := f.authenticate(t, u.ID(), u.TokenVersion()); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("the row read before the change was kept: %v", err)
	}
}

// TestTokenStatesMemory measures what the default bound costs, the figure
// TokenStatesConfig.MaxEntries documents.
func TestTokenStatesMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a million entries")
	}
	ts := NewTokenStates(Deps{}, TokenStatesConfig{Notifier: newMemLog(), Retention: newMemLog()})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ts.mu.Lock()
	// The peak: one short of the bound, the older generation full.
	for id := range int64(DefaultTokenStatesEntries - 1) {
		ts.put(id+1, tokenState{version: id})
	}
	ts.mu.Unlock()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := ts.len(); n > DefaultTokenStatesEntries {
		t.Fatalf("%d entries held; the bound is %d", n, DefaultTokenStatesEntries)
	}
	mb := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	t.Logf("%d entries: %.0f MiB", ts.len(), mb)
	if mb > 70 {
		t.Fatalf("a full cache takes %.0f MiB; the documented figure is about 55", mb)
	}
	runtime.KeepAlive(ts)
}

var _ ports.ChangeWatcher = (*watchedLog)(nil)
