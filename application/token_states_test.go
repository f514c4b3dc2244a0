package application

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/userservice/userservice/adapters/gormstore"
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

// testFeed is the store's notifier behind a feed whose state a test sets,
// as PostgreSQL's listener can be: down (its connection lost, and the
// wake-ups with it), up again on a new connection, or up with its
// wake-ups lost (muted). A wake-up the store sent before a change of state
// is passed on, or lost, as the state before decides.
type testFeed struct {
	store ports.ChangeNotifier
	out   chan struct{}
	// flush asks the forwarder to pass on what the store has sent, and
	// is closed back once done.
	flush chan chan struct{}

	mu          sync.Mutex
	conn        uint64
	down, muted bool
}

var _ ports.ChangeWatcher = (*testFeed)(nil)

func newTestFeed(store ports.ChangeNotifier) *testFeed {
	return &testFeed{store: store, out: make(chan struct{}, 1), flush: make(chan chan struct{})}
}

func (f *testFeed) Changes(ctx context.Context) <-chan struct{} {
	ch, _ := f.Watch(ctx)
	return ch
}

// Watch forwards the store's wake-ups; only one caller, the cache, watches.
func (f *testFeed) Watch(ctx context.Context) (<-chan struct{}, func() (uint64, bool)) {
	in := f.store.Changes(ctx)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-in:
				f.pass()
			case done := <-f.flush:
				select {
				case <-in:
					f.pass()
				default:
				}
				close(done)
			}
		}
	}()
	return f.out, f.listening
}

func (f *testFeed) listening() (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conn, !f.down
}

func (f *testFeed) pass() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.down && !f.muted {
		f.wake()
	}
}

// wake is a wake-up of the feed's own, as a (re)connection sends.
func (f *testFeed) wake() {
	select {
	case f.out <- struct{}{}:
	default:
	}
}

// set changes the feed's state once the wake-ups sent so far are settled.
func (f *testFeed) set(change func(f *testFeed)) {
	done := make(chan struct{})
	f.flush <- done
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

// targetsOnly is the change log the cache follows. ChangesAfter, the
// fan-out's read of whole entries, fails: the cache must read the targets
// alone (TargetsAfter), and were it to read whole entries it would never
// trust its memory.
type targetsOnly struct{ *observedLog }

func (targetsOnly) ChangesAfter(context.Context, int64, int) ([]domain.Change, error) {
	return nil, errors.New("targetsOnly: the token cache read whole entries")
}

type tsFixture struct {
	*fixture
	counting *countingRepo
	// log is the store's change log, as the cache reads it, and feed its
	// notifier.
	log  *observedLog
	feed *testFeed
	// stamps dates the change-log entries written.
	stamps *movingClock
	states *TokenStates
}

// newTSFixture wires Users and Auth as bootstrap does: writes through the
// evicting repository, token checks through the cache, following the
// store's change log. The cache starts with start, once the test has
// seeded the accounts it needs: it follows the log from there.
func newTSFixture(t *testing.T, tune func(*TokenStatesConfig)) *tsFixture {
	t.Helper()
	stamps := &movingClock{now: testNow}
	f := &tsFixture{fixture: newFixture(t, gormstore.WithClock(stamps)), stamps: stamps}
	f.counting = &countingRepo{UserRepository: f.repo}
	f.log = observe(f.repo.store.ChangeLog())
	f.feed = newTestFeed(f.repo.store.ChangeNotifier())
	cfg := TokenStatesConfig{Notifier: f.feed, Retention: f.repo.store.ChangeLogRetention(), Lease: time.Hour, PollEvery: 10 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	deps := Deps{
		Repo: f.counting, Changes: targetsOnly{f.log}, Authz: f.authz, Hasher: f.hasher, Clock: fixedClock{testNow},
		Tokens: fakeTokens{}, Verifier: fakeTokens{}, Refresh: f.refresh, CursorKey: testCursorKey,
	}
	f.states = NewTokenStates(deps, cfg)
	deps.Repo = f.states.Repository(deps.Repo)
	f.users = NewUsers(deps)
	f.auth = NewAuth(deps, AuthConfig{AccessTTL: testAccessTTL, RefreshTTL: testRefreshTTL, States: f.states})
	return f
}

// start starts the cache and waits until it trusts its memory.
func (f *tsFixture) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := f.states.Start(ctx); err != nil {
		t.Fatal(err)
	}
	f.awaitTrusted(t)
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
// store, past this instance's evicting repository, so that only the
// change log tells the cache.
func (f *tsFixture) elsewhere(t *testing.T, id int64, to domain.Role) {
	t.Helper()
	_, err := f.repo.Update(context.Background(), id, domain.Operator(), func(u *domain.User, n domain.SuperadminCount) (domain.ChangeAction, error) {
		return domain.ActionRoleChanged, u.ChangeRole(domain.Operator(), to, n, testNow)
	})
	if err != nil {
		t.Fatal(err)
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
	f.start(t)
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
// before any change-log entry is read (the log cannot be read here; memory
// stays trusted for the lease).
func TestTokenStatesLocalWritesEvictAtOnce(t *testing.T) {
	f := newTSFixture(t, nil)
	root := f.seed(t, 1, domain.RoleSuperadmin, "pw")
	victim := f.seed(t, 2, domain.RoleAdmin, "pw")
	other := f.seed(t, 3, domain.RoleUser, "pw")
	f.start(t)
	ctx := context.Background()
	for _, u := range []*domain.User{victim, other} {
		if _, _, err := f.authenticate(t, u.ID(), u.TokenVersion()); err != nil {
			t.Fatal(err)
		}
	}
	f.log.setReadErr(errors.New("database away"))
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
		f.start(t)
		if _, _, err := f.authenticate(t, u.ID(), u.TokenVersion()); err != nil {
			t.Fatal(err)
		}
		if !announce {
			f.feed.set(func(f *testFeed) { f.muted = true })
		}
		f.elsewhere(t, u.ID(), domain.RoleUser)
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
	f.start(t)
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
	f.start(t)
	for _, x := range []*domain.User{u, bystander} {
		if _, _, err := f.authenticate(t, x.ID(), x.TokenVersion()); err != nil {
			t.Fatal(err)
		}
	}
	f.log.setReadErr(errors.New("database away"))
	f.elsewhere(t, u.ID(), domain.RoleUser)
	// Pruned unseen; a later entry about someone else is all that is left.
	f.stamps.advance(2 * time.Hour)
	f.seed(t, 3, domain.RoleUser, "pw")
	f.repo.prune(t, testNow.Add(time.Hour))
	f.log.setReadErr(nil)
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
	f.start(t)
	if _, _, err := f.authenticate(t, u.ID(), u.TokenVersion()); err != nil {
		t.Fatal(err)
	}
	f.log.setReadErr(errors.New("database away"))
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
	f.elsewhere(t, u.ID(), domain.RoleUser)
	if _, reads, err := f.authenticate(t, u.ID(), u.TokenVersion()); !errors.Is(err, domain.ErrUnauthenticated) || reads != 1 {
		t.Fatalf("a change while the log is down: %v after %d reads; want refused from the row", err, reads)
	}
	f.log.setReadErr(nil)
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
	f.start(t)
	if _, _, err := f.authenticate(t, u.ID(), u.TokenVersion()); err != nil {
		t.Fatal(err)
	}
	f.feed.set(func(f *testFeed) { f.down = true })
	// Lost with the connection: the reader is never told.
	f.elsewhere(t, u.ID(), domain.RoleUser)
	if _, reads, err := f.authenticate(t, u.ID(), u.TokenVersion()); !errors.Is(err, domain.ErrUnauthenticated) || reads != 1 {
		t.Fatalf("feed down: %v after %d reads; want refused from the row", err, reads)
	}
	// Up again on a new connection, not yet read: still rows.
	f.feed.set(func(f *testFeed) { f.conn, f.down = f.conn+1, false })
	if f.states.trusted() {
		t.Fatal("memory trusted after a reconnection before the log was read")
	}
	f.feed.wake()
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
	f.start(t)
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
	f.elsewhere(t, u.ID(), domain.RoleUser)
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
	store := newTestRepo(t).store
	ts := NewTokenStates(Deps{}, TokenStatesConfig{Notifier: store.ChangeNotifier(), Retention: store.ChangeLogRetention()})
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
