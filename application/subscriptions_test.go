package application

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/userservice/userservice/adapters/gormstore"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// rtWait bounds every wait of these tests for the engine's goroutines.
const rtWait = 10 * time.Second

// movingClock is a clock tests move forward.
type movingClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *movingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *movingClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *movingClock) set(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

// expiringTokens verifies fakeTokens' "access:ID:VERSION" tokens as
// expiring a minute after testNow.
type expiringTokens struct{}

func (expiringTokens) VerifyAccess(token string, now time.Time) (ports.AccessClaims, error) {
	c, err := fakeTokens{}.VerifyAccess(token, now)
	if err == nil {
		c.ExpiresAt = testNow.Add(time.Minute)
	}
	return c, err
}

func tokenOf(u *domain.User) string { return fmt.Sprintf("access:%d:%d", u.ID(), u.TokenVersion()) }

// recSink records what the engine sends one connection, as text lines:
// "subscribed s1 @N", "event s1 N", "ended s1 <code>", "end <code>".
type recSink struct {
	mu     sync.Mutex
	lines  []string
	calls  []delivery
	refuse atomic.Bool
}

// delivery is one call of Deliver.
type delivery struct {
	ev  *ports.Event
	ids []string
}

func (s *recSink) add(line string) {
	s.mu.Lock()
	s.lines = append(s.lines, line)
	s.mu.Unlock()
}

func (s *recSink) Subscribed(sub ports.Subscription) {
	s.add(fmt.Sprintf("subscribed %s @%d", sub.ID, sub.Seq))
}

func (s *recSink) Deliver(ev *ports.Event, ids []string) bool {
	if s.refuse.Load() {
		s.add("refused")
		return false
	}
	s.mu.Lock()
	s.calls = append(s.calls, delivery{ev, slices.Clone(ids)})
	s.mu.Unlock()
	for _, id := range ids {
		s.add(fmt.Sprintf("event %s %d", id, ev.Change.Seq))
	}
	return true
}

func (s *recSink) deliveries() []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func (s *recSink) SubscriptionEnded(id string, reason error) {
	s.add("ended " + id + " " + domain.AsError(reason).Code)
}

func (s *recSink) End(reason error) { s.add("end " + domain.AsError(reason).Code) }

func (s *recSink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

// await polls until the sink's lines satisfy ok.
func (s *recSink) await(t *testing.T, what string, ok func([]string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(rtWait)
	for {
		got := s.got()
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s; the sink got %q", what, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *recSink) awaitLine(t *testing.T, line string) {
	t.Helper()
	s.await(t, strconv.Quote(line), func(l []string) bool { return slices.Contains(l, line) })
}

// events lists the seqs delivered to subscription id.
func events(lines []string, id string) []int64 {
	var out []int64
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "event "+id+" "); ok {
			n, _ := strconv.ParseInt(rest, 10, 64)
			out = append(out, n)
		}
	}
	return out
}

type subsFixture struct {
	repo *testRepo
	// log is the store's change log, as the service reads it.
	log   *observedLog
	authz *fakeAuthz
	clock *movingClock
	// stamps dates the change-log entries written: the store's clock, apart
	// from the service's, so a test writes history without moving the
	// service's time.
	stamps *movingClock
	sv     *Subscriptions
}

// newSubsFixture wires the service to the real store as bootstrap does:
// its change log, its notifier (wake-ups in process, on SQLite) and its
// retention.
func newSubsFixture(t *testing.T, tune func(*SubscriptionsConfig)) *subsFixture {
	t.Helper()
	stamps := &movingClock{now: testNow}
	repo := newTestRepo(t, gormstore.WithClock(stamps))
	f := &subsFixture{
		repo: repo, log: observe(repo.store.ChangeLog()), authz: &fakeAuthz{decide: shippedPolicy},
		clock: &movingClock{now: testNow}, stamps: stamps,
	}
	cfg := SubscriptionsConfig{
		Notifier: repo.store.ChangeNotifier(), Retention: repo.store.ChangeLogRetention(),
		SweepEvery: 5 * time.Millisecond, PollEvery: 20 * time.Millisecond,
	}
	if tune != nil {
		tune(&cfg)
	}
	f.sv = NewSubscriptions(Deps{Repo: f.repo, Changes: f.log, Authz: f.authz, Verifier: expiringTokens{}, Clock: f.clock}, cfg)
	if err := f.sv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return f
}

// head is the seq of the newest change-log entry: that of the fixture's
// last write.
func (f *subsFixture) head(t *testing.T) int64 {
	t.Helper()
	seq, err := f.repo.lastSeq(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// seed stores a user, which logs its creation.
func (f *subsFixture) seed(t *testing.T, n int, role domain.Role) *domain.User {
	t.Helper()
	u, err := domain.NewUser(domain.NewUserParams{
		FirstName: "Ann", LastName: "Lee", Email: fmt.Sprintf("user%d@example.com", n), Gender: "Female", Role: role,
	}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	created, err := f.repo.Create(t.Context(), u, domain.Operator())
	if err != nil {
		t.Fatal(err)
	}
	return created
}

// write changes user id with fn through the repository, which logs the
// change, and returns the change's seq.
func (f *subsFixture) write(ctx context.Context, id int64, action domain.ChangeAction, fn func(u *domain.User) error) (int64, error) {
	_, err := f.repo.Update(ctx, id, domain.Operator(), func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
		return action, fn(u)
	})
	if err != nil {
		return 0, err
	}
	return f.repo.lastSeq(ctx)
}

// update changes user id with fn and returns the change's seq.
func (f *subsFixture) update(t *testing.T, id int64, action domain.ChangeAction, fn func(u *domain.User)) int64 {
	t.Helper()
	seq, err := f.write(t.Context(), id, action, func(u *domain.User) error {
		fn(u)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// remove deletes user id and returns the deletion's seq.
func (f *subsFixture) remove(t *testing.T, id int64) int64 {
	t.Helper()
	if _, err := f.repo.Delete(t.Context(), id, domain.Operator(), nil); err != nil {
		t.Fatal(err)
	}
	return f.head(t)
}

// renameAfterGap renames user id to email, leaving the seq before the
// rename's unused, as a rolled-back write does on PostgreSQL. SQLite draws
// no seq for a rolled-back write (AUTOINCREMENT's counter rolls back with
// it), so the unused seq is a change stamped an hour ago, pruned through
// the store's retention once the rename has made it no longer the newest.
func (f *subsFixture) renameAfterGap(t *testing.T, id int64, email string) int64 {
	t.Helper()
	f.stamps.set(testNow.Add(-time.Hour))
	f.rename(t, id, "gap."+email)
	f.stamps.set(testNow)
	seq := f.rename(t, id, email)
	f.repo.prune(t, testNow.Add(-time.Minute))
	return seq
}

func (f *subsFixture) rename(t *testing.T, id int64, email string) int64 {
	t.Helper()
	return f.update(t, id, domain.ActionUpdated, func(u *domain.User) {
		if err := u.ApplyProfile(domain.ProfilePatch{Email: &email}, testNow); err != nil {
			t.Fatal(err)
		}
	})
}

// connect opens a connection for u once the reader has fanned out what
// the fixture logged so far, so its subscriptions start after that.
func (f *subsFixture) connect(t *testing.T, u *domain.User) (ports.RealtimeConn, *recSink) {
	t.Helper()
	f.awaitHead(t, f.head(t))
	sink := &recSink{}
	c, err := f.sv.Connect(t.Context(), tokenOf(u), sink)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c, sink
}

func subscribe(t *testing.T, c ports.RealtimeConn, req ports.SubscribeRequest) ports.Subscription {
	t.Helper()
	sub, err := c.Subscribe(t.Context(), req)
	if err != nil {
		t.Fatalf("Subscribe(%+v): %v", req, err)
	}
	return sub
}

// awaitHead waits until the engine has fanned out seq.
func (f *subsFixture) awaitHead(t *testing.T, seq int64) {
	t.Helper()
	deadline := time.Now().Add(rtWait)
	for f.sv.Head() < seq {
		if time.Now().After(deadline) {
			t.Fatalf("the reader is at %d, want %d", f.sv.Head(), seq)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRealtimeConnectAuthenticates(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	u := f.seed(t, 1, domain.RoleUser)
	for name, token := range map[string]string{
		"garbage":       "nope",
		"no such user":  "access:99:0",
		"stale version": fmt.Sprintf("access:%d:%d", u.ID(), u.TokenVersion()+1),
	} {
		if _, err := f.sv.Connect(t.Context(), token, &recSink{}); domain.KindOf(err) != domain.KindUnauthenticated {
			t.Errorf("%s: Connect error %v, want unauthenticated", name, err)
		}
	}
	if got := len(f.sv.connsOf(u.ID())) + len(f.sv.connsOf(99)); got != 0 {
		t.Errorf("%d refused connections stayed registered", got)
	}
	f.connect(t, u)
}

func TestRealtimeNotStarted(t *testing.T) {
	t.Parallel()
	repo := newTestRepo(t)
	sv := NewSubscriptions(Deps{Repo: repo, Changes: repo.store.ChangeLog(), Authz: &fakeAuthz{}, Verifier: expiringTokens{}, Clock: fixedClock{testNow}},
		SubscriptionsConfig{Notifier: repo.store.ChangeNotifier(), Retention: repo.store.ChangeLogRetention()})
	if _, err := sv.Connect(t.Context(), "access:1:0", &recSink{}); domain.KindOf(err) != domain.KindUnavailable {
		t.Fatalf("Connect before Start: %v, want unavailable", err)
	}
}

func TestRealtimeSubscribeAuthorization(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	user, admin := f.seed(t, 1, domain.RoleUser), f.seed(t, 2, domain.RoleAdmin)
	uc, _ := f.connect(t, user)
	ac, _ := f.connect(t, admin)

	subscribe(t, uc, ports.SubscribeRequest{UserID: admin.ID()})
	subscribe(t, uc, ports.SubscribeRequest{UserID: 12345}) // not created yet: fine
	if _, err := uc.Subscribe(t.Context(), ports.SubscribeRequest{Search: true}); !errors.Is(err, domain.ErrForbidden) {
		t.Errorf("a user's search subscription: %v, want forbidden", err)
	}
	sub := subscribe(t, ac, ports.SubscribeRequest{Search: true, Filter: domain.FilterParams{Email: "@Example.COM", Gender: "female"}})
	if sub.Filter.Email != "@example.com" || sub.Filter.Gender != "Female" {
		t.Errorf("filters answered %+v, want canonical spellings", sub.Filter)
	}

	// A policy edit changes who may subscribe, at once.
	f.authz.set(func(req ports.AuthzRequest) error {
		if req.Permission == domain.PermSubscribeSearch && req.Actor.Role == domain.RoleUser {
			return nil
		}
		return domain.ErrForbidden
	})
	subscribe(t, uc, ports.SubscribeRequest{Search: true})
	if _, err := ac.Subscribe(t.Context(), ports.SubscribeRequest{Search: true}); !errors.Is(err, domain.ErrForbidden) {
		t.Errorf("after the edit, an admin's search subscription: %v, want forbidden", err)
	}
	if _, err := uc.Subscribe(t.Context(), ports.SubscribeRequest{UserID: admin.ID()}); !errors.Is(err, domain.ErrForbidden) {
		t.Errorf("after the edit, a subscription by id: %v, want forbidden", err)
	}
	// Questions about an existing user name it; about a free id, every role.
	var targets []string
	for _, r := range f.authz.recorded() {
		if r.Permission == domain.PermSubscribeID {
			targets = append(targets, fmt.Sprintf("%d/%s", r.Target.ID(), r.Target.Role()))
		}
	}
	if want := []string{fmt.Sprintf("%d/admin", admin.ID())}; !slices.Equal(targets, want) {
		t.Errorf("authorized targets %v, want %v", targets, want)
	}
}

func TestRealtimeSubscribeValidates(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, func(c *SubscriptionsConfig) { c.MaxSubscriptions = 3 })
	admin := f.seed(t, 1, domain.RoleAdmin)
	c, _ := f.connect(t, admin)
	if _, err := c.Subscribe(t.Context(), ports.SubscribeRequest{Search: true, Filter: domain.FilterParams{Gender: "robot", IPAddress: "10.0.0.0/99"}}); domain.KindOf(err) != domain.KindInvalid || len(domain.AsError(err).Fields) != 2 {
		t.Errorf("bad filters: %v, want both fields reported", err)
	}
	if _, err := c.Subscribe(t.Context(), ports.SubscribeRequest{UserID: 0}); domain.KindOf(err) != domain.KindInvalid {
		t.Errorf("user_id 0: %v, want invalid", err)
	}
	if _, err := c.Subscribe(t.Context(), ports.SubscribeRequest{UserID: 1, SinceSeq: ptr(int64(-1))}); domain.KindOf(err) != domain.KindInvalid {
		t.Errorf("negative since_seq: %v, want invalid", err)
	}
	for range 3 {
		subscribe(t, c, ports.SubscribeRequest{UserID: 1})
	}
	if _, err := c.Subscribe(t.Context(), ports.SubscribeRequest{UserID: 1}); err == nil || !strings.Contains(err.Error(), "at most 3") {
		t.Errorf("a fourth subscription: %v, want refused", err)
	}
	if err := c.Unsubscribe(t.Context(), "s2"); err != nil {
		t.Fatal(err)
	}
	subscribe(t, c, ports.SubscribeRequest{UserID: 1})
	if err := c.Unsubscribe(t.Context(), "s2"); domain.KindOf(err) != domain.KindNotFound {
		t.Errorf("unsubscribing twice: %v, want not found", err)
	}
}

func TestRealtimePasswordChangeRequiredCannotSubscribe(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	u := f.seed(t, 1, domain.RoleUser)
	f.update(t, u.ID(), domain.ActionUpdated, func(u *domain.User) { u.SetInitialPassword("hash:x", true) })
	u, _ = f.repo.Get(t.Context(), u.ID())
	c, _ := f.connect(t, u)
	if _, err := c.Subscribe(t.Context(), ports.SubscribeRequest{UserID: 1}); !errors.Is(err, domain.ErrPasswordChange) {
		t.Fatalf("Subscribe: %v, want password change required", err)
	}
}

func TestRealtimeDeliversMatchingChangesInOrder(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	admin := f.seed(t, 1, domain.RoleAdmin)
	watched, other := f.seed(t, 2, domain.RoleUser), f.seed(t, 3, domain.RoleUser)
	f.awaitHead(t, 3)
	c, sink := f.connect(t, admin)
	byID := subscribe(t, c, ports.SubscribeRequest{UserID: watched.ID()})
	gmail := subscribe(t, c, ports.SubscribeRequest{Search: true, Filter: domain.FilterParams{Email: "@GMAIL.com"}})
	if byID.Seq != 3 || gmail.Seq != 3 {
		t.Errorf("subscriptions start at %d and %d, want 3", byID.Seq, gmail.Seq)
	}
	future := subscribe(t, c, ports.SubscribeRequest{UserID: 4})

	s4 := f.rename(t, watched.ID(), "ann@gmail.com")     // both
	s5 := f.rename(t, other.ID(), "bob@example.org")     // neither
	s6 := f.rename(t, watched.ID(), "ann@example.org")   // both: moves out of the filter
	s7 := f.rename(t, other.ID(), "bob@gmail.com")       // gmail only
	fourth := f.seed(t, 4, domain.RoleUser)              // future only: seq 8
	s9 := f.rename(t, watched.ID(), "ann@elsewhere.org") // by id only
	f.awaitHead(t, s9)
	if s5 != 5 || fourth.ID() != 4 {
		t.Fatalf("fixture: seq %d, id %d", s5, fourth.ID())
	}
	got := sink.got()
	if want := []int64{s4, s6, s9}; !slices.Equal(events(got, byID.ID), want) {
		t.Errorf("by id: %v, want %v", events(got, byID.ID), want)
	}
	if want := []int64{s4, s6, s7}; !slices.Equal(events(got, gmail.ID), want) {
		t.Errorf("by filter: %v, want %v", events(got, gmail.ID), want)
	}
	if want := []int64{8}; !slices.Equal(events(got, future.ID), want) {
		t.Errorf("future id: %v, want %v", events(got, future.ID), want)
	}
	// Acknowledgements come before anything else.
	if !strings.HasPrefix(strings.Join(got, "|"), "subscribed s1 @3|subscribed s2 @3|subscribed s3 @3|") {
		t.Errorf("lines %q", got)
	}
}

func TestRealtimeUnsubscribeStopsEvents(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	u := f.seed(t, 1, domain.RoleUser)
	c, sink := f.connect(t, u)
	a := subscribe(t, c, ports.SubscribeRequest{UserID: u.ID()})
	b := subscribe(t, c, ports.SubscribeRequest{UserID: u.ID()})
	s2 := f.rename(t, u.ID(), "a@example.com")
	f.awaitHead(t, s2)
	if err := c.Unsubscribe(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	s3 := f.rename(t, u.ID(), "b@example.com")
	f.awaitHead(t, s3)
	got := sink.got()
	if !slices.Equal(events(got, a.ID), []int64{s2}) || !slices.Equal(events(got, b.ID), []int64{s2, s3}) {
		t.Fatalf("events %q", got)
	}
}

func TestRealtimeRolledBackSeqIsNoGap(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	u := f.seed(t, 1, domain.RoleUser)
	c, sink := f.connect(t, u)
	sub := subscribe(t, c, ports.SubscribeRequest{UserID: u.ID()})
	// The reader reads nothing until the gap is made.
	f.log.setReadErr(domain.ErrUnavailable)
	s3 := f.renameAfterGap(t, u.ID(), "a@example.com")
	f.log.setReadErr(nil)
	f.awaitHead(t, s3)
	if got := events(sink.got(), sub.ID); !slices.Equal(got, []int64{3}) || s3 != 3 {
		t.Fatalf("events %v, want [3]", got)
	}
}

func TestRealtimeReplaysSinceSeq(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, func(c *SubscriptionsConfig) { c.BatchSize = 2 })
	u := f.seed(t, 1, domain.RoleUser)
	other := f.seed(t, 2, domain.RoleUser)
	var mine []int64
	for i := range 5 {
		mine = append(mine, f.rename(t, u.ID(), fmt.Sprintf("a%d@example.com", i)))
		f.rename(t, other.ID(), fmt.Sprintf("b%d@example.com", i))
	}
	f.awaitHead(t, 12)
	c, sink := f.connect(t, u)
	sub := subscribe(t, c, ports.SubscribeRequest{UserID: u.ID(), SinceSeq: ptr(mine[1])})
	if sub.Seq != mine[1] {
		t.Errorf("subscription starts at %d, want %d", sub.Seq, mine[1])
	}
	live := f.rename(t, u.ID(), "live@example.com")
	got := sink.await(t, "the replay and the live change", func(l []string) bool { return len(events(l, sub.ID)) >= 4 })
	if want := append(slices.Clone(mine[2:]), live); !slices.Equal(events(got, sub.ID), want) {
		t.Fatalf("events %v, want %v", events(got, sub.ID), want)
	}
	if got[0] != fmt.Sprintf("subscribed %s @%d", sub.ID, mine[1]) {
		t.Errorf("first line %q, want the acknowledgement", got[0])
	}
}

// TestRealtimeReplayHandsOverWithoutGapOrDuplicate subscribes with
// since_seq, many times, while a writer keeps committing: each
// subscription must see every later change of its user exactly once, in
// order, whichever of the catch-up and the fan-out delivers it.
func TestRealtimeReplayHandsOverWithoutGapOrDuplicate(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, func(c *SubscriptionsConfig) { c.BatchSize = 3 })
	u := f.seed(t, 1, domain.RoleUser)
	c, sink := f.connect(t, u)
	var (
		wg      sync.WaitGroup
		stop    atomic.Bool
		written atomic.Int64
	)
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			seq, err := f.write(t.Context(), u.ID(), domain.ActionUpdated, func(u *domain.User) error {
				return u.ApplyProfile(domain.ProfilePatch{Email: ptr(fmt.Sprintf("w%d@example.com", i))}, testNow)
			})
			if err != nil {
				t.Error(err)
				return
			}
			written.Store(seq)
		}
	})
	type started struct {
		sub   ports.Subscription
		since int64
	}
	var subs []started
	for i := range 40 {
		since := max(written.Load()-int64(i%7), 0)
		subs = append(subs, started{subscribe(t, c, ports.SubscribeRequest{UserID: u.ID(), SinceSeq: &since}), since})
		if i%10 == 9 {
			time.Sleep(time.Millisecond) // let the writer run on
		}
	}
	stop.Store(true)
	wg.Wait()
	end := written.Load()
	f.awaitHead(t, end)
	for _, s := range subs {
		// Every entry of the log is a change of u.
		want := []int64{}
		for seq := s.since + 1; seq <= end; seq++ {
			want = append(want, seq)
		}
		got := sink.await(t, "every change of "+s.sub.ID, func(l []string) bool { return len(events(l, s.sub.ID)) >= len(want) })
		if ev := events(got, s.sub.ID); !slices.Equal(ev, want) {
			t.Fatalf("%s since %d: events %v, want %v", s.sub.ID, s.since, ev, want)
		}
	}
}

func TestRealtimeResumeTooOld(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, func(c *SubscriptionsConfig) { c.PruneEvery = 5 * time.Millisecond })
	// 1..3 are older than the log keeps (a day by default): the service's
	// pruning deletes them.
	f.stamps.set(testNow.Add(-25 * time.Hour))
	u := f.seed(t, 1, domain.RoleUser)
	for i := range 5 {
		if i == 2 {
			f.stamps.set(testNow)
		}
		f.rename(t, u.ID(), fmt.Sprintf("a%d@example.com", i))
	}
	deadline := time.Now().Add(rtWait)
	for {
		first, _, err := f.repo.store.ChangeLogRetention().SeqBounds(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if first == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log starts at %d, want 4 once pruned", first)
		}
		time.Sleep(2 * time.Millisecond)
	}
	c, _ := f.connect(t, u)
	for since, ok := range map[int64]bool{0: false, 2: false, 3: true, 5: true, 100: true} {
		_, err := c.Subscribe(t.Context(), ports.SubscribeRequest{UserID: u.ID(), SinceSeq: &since})
		if ok != (err == nil) || (!ok && !errors.Is(err, ErrResumeTooOld)) {
			t.Errorf("since %d: %v, want ok=%v", since, err, ok)
		}
	}
	if ErrResumeTooOld.Message != "resume_too_old" {
		t.Error("the contract's detail is resume_too_old")
	}
}

func TestRealtimeSinceAheadOfTheReaderSkipsToIt(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	u := f.seed(t, 1, domain.RoleUser)
	f.awaitHead(t, 1)
	c, sink := f.connect(t, u)
	// Another instance already delivered up to 3.
	sub := subscribe(t, c, ports.SubscribeRequest{UserID: u.ID(), SinceSeq: ptr(int64(3))})
	for i := range 3 {
		f.rename(t, u.ID(), fmt.Sprintf("a%d@example.com", i))
	}
	f.awaitHead(t, 4)
	if got := events(sink.got(), sub.ID); !slices.Equal(got, []int64{4}) {
		t.Fatalf("events %v, want [4]", got)
	}
}

func TestRealtimeRechecksRightsOnEvents(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, func(c *SubscriptionsConfig) { c.RecheckEvery = 30 * time.Second })
	admin, watched := f.seed(t, 1, domain.RoleAdmin), f.seed(t, 2, domain.RoleUser)
	c, sink := f.connect(t, admin)
	search := subscribe(t, c, ports.SubscribeRequest{Search: true})
	byID := subscribe(t, c, ports.SubscribeRequest{UserID: watched.ID()})
	s3 := f.rename(t, watched.ID(), "a@example.com")
	f.awaitHead(t, s3)

	// The policy no longer lets admins subscribe by search. The decision
	// in force is reused until RecheckEvery has passed.
	f.authz.set(func(req ports.AuthzRequest) error {
		if req.Permission == domain.PermSubscribeSearch {
			return domain.ErrForbidden
		}
		return nil
	})
	s4 := f.rename(t, watched.ID(), "b@example.com")
	f.awaitHead(t, s4)
	f.clock.advance(30 * time.Second) // tokens stay valid a minute
	s5 := f.rename(t, watched.ID(), "c@example.com")
	f.awaitHead(t, s5)
	s6 := f.rename(t, watched.ID(), "d@example.com")
	f.awaitHead(t, s6)
	got := sink.got()
	if ev := events(got, search.ID); !slices.Equal(ev, []int64{s3, s4}) {
		t.Errorf("search events %v, want [%d %d]", ev, s3, s4)
	}
	if ev := events(got, byID.ID); !slices.Equal(ev, []int64{s3, s4, s5, s6}) {
		t.Errorf("by-id events %v", ev)
	}
	if !slices.Contains(got, "ended "+search.ID+" forbidden") {
		t.Errorf("the search subscription was not ended: %q", got)
	}
	if err := c.Unsubscribe(t.Context(), search.ID); domain.KindOf(err) != domain.KindNotFound {
		t.Errorf("the ended subscription is still there: %v", err)
	}
}

func TestRealtimeAsksTheAuthorizerOncePerDecisionPerFanOut(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	admin, watched := f.seed(t, 1, domain.RoleAdmin), f.seed(t, 2, domain.RoleUser)
	for range 20 {
		c, _ := f.connect(t, admin)
		subscribe(t, c, ports.SubscribeRequest{Search: true})
		subscribe(t, c, ports.SubscribeRequest{UserID: watched.ID()})
	}
	f.authz.set(shippedPolicy)
	s := f.rename(t, watched.ID(), "a@example.com")
	f.awaitHead(t, s)
	if n := len(f.authz.recorded()); n != 2 {
		t.Fatalf("%d questions for 40 deliveries, want 2 (search, by id)", n)
	}
}

func TestRealtimeHandsAChangeToEachConnectionOnce(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	admin, watched := f.seed(t, 1, domain.RoleAdmin), f.seed(t, 2, domain.RoleUser)
	var sinks []*recSink
	for range 3 {
		c, sink := f.connect(t, admin)
		subscribe(t, c, ports.SubscribeRequest{UserID: watched.ID()})
		subscribe(t, c, ports.SubscribeRequest{Search: true})
		subscribe(t, c, ports.SubscribeRequest{UserID: admin.ID()}) // not reached
		sinks = append(sinks, sink)
	}
	s := f.rename(t, watched.ID(), "a@example.com")
	f.awaitHead(t, s)
	var shared *ports.Event
	for i, sink := range sinks {
		calls := sink.deliveries()
		if len(calls) != 1 {
			t.Fatalf("connection %d: %d calls of Deliver, want 1", i, len(calls))
		}
		ids := slices.Sorted(slices.Values(calls[0].ids))
		if !slices.Equal(ids, []string{"s1", "s2"}) || calls[0].ev.Change.Seq != s || calls[0].ev.Replay {
			t.Errorf("connection %d: Deliver(%+v, %v)", i, calls[0].ev, ids)
		}
		if shared == nil {
			shared = calls[0].ev
		} else if calls[0].ev != shared {
			t.Errorf("connection %d got an Event of its own, want the one every connection shares", i)
		}
	}
}

func TestRealtimeRevokesOnDeletionAndTokenVersion(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	u, v, w := f.seed(t, 1, domain.RoleUser), f.seed(t, 2, domain.RoleUser), f.seed(t, 3, domain.RoleUser)
	_, uSink := f.connect(t, u)
	_, vSink := f.connect(t, v)
	wc, wSink := f.connect(t, w)
	subscribe(t, wc, ports.SubscribeRequest{UserID: u.ID()})

	// A profile change keeps the token.
	s := f.rename(t, u.ID(), "new@example.com")
	f.awaitHead(t, s)
	if slices.ContainsFunc(uSink.got(), func(l string) bool { return strings.HasPrefix(l, "end") }) {
		t.Fatal("a profile change ended the connection")
	}
	// A role change bumps the token version.
	f.update(t, u.ID(), domain.ActionRoleChanged, func(u *domain.User) { u.RevokeTokens(testNow) })
	uSink.awaitLine(t, "end token_revoked")
	// A connection opened with the new token stays.
	fresh, _ := f.repo.Get(t.Context(), u.ID())
	_, freshSink := f.connect(t, fresh)
	s = f.rename(t, u.ID(), "newer@example.com")
	f.awaitHead(t, s)
	if l := freshSink.got(); len(l) != 0 {
		t.Fatalf("the fresh connection got %q", l)
	}

	// A deletion ends the user's connections.
	f.remove(t, v.ID())
	vSink.awaitLine(t, "end token_revoked")
	if l := wSink.got(); slices.ContainsFunc(l, func(s string) bool { return strings.HasPrefix(s, "end") }) {
		t.Fatalf("an unrelated connection was ended: %q", l)
	}
	if n := len(f.sv.connsOf(u.ID())); n != 1 {
		t.Errorf("%d connections of u registered, want the fresh one", n)
	}
}

func TestRealtimeEndsExpiredConnections(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	u := f.seed(t, 1, domain.RoleUser)
	c, sink := f.connect(t, u)
	f.clock.advance(59 * time.Second)
	s := f.rename(t, u.ID(), "a@example.com")
	f.awaitHead(t, s)
	if slices.Contains(sink.got(), "end token_expired") {
		t.Fatal("ended before the token expired")
	}
	f.clock.advance(time.Second)
	sink.awaitLine(t, "end token_expired")
	if _, err := c.Subscribe(t.Context(), ports.SubscribeRequest{UserID: 1}); domain.KindOf(err) != domain.KindUnauthenticated {
		t.Fatalf("Subscribe after the end: %v", err)
	}
}

func TestRealtimeSlowSinkIsSkippedOthersKeepReceiving(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	u := f.seed(t, 1, domain.RoleUser)
	slow, slowSink := f.connect(t, u)
	healthy, healthySink := f.connect(t, u)
	a := subscribe(t, slow, ports.SubscribeRequest{UserID: u.ID()})
	b := subscribe(t, healthy, ports.SubscribeRequest{UserID: u.ID()})
	slowSink.refuse.Store(true)
	var last int64
	for i := range 5 {
		last = f.rename(t, u.ID(), fmt.Sprintf("a%d@example.com", i))
	}
	f.awaitHead(t, last)
	if got := slowSink.got(); len(events(got, a.ID)) != 0 || slices.Index(got, "refused") != len(got)-1 {
		t.Errorf("the slow sink was offered more after refusing: %q", got)
	}
	if got := events(healthySink.got(), b.ID); len(got) != 5 {
		t.Errorf("the healthy sink got %v", got)
	}
}

func TestRealtimeCatchesUpAfterReadErrors(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	u := f.seed(t, 1, domain.RoleUser)
	c, sink := f.connect(t, u)
	sub := subscribe(t, c, ports.SubscribeRequest{UserID: u.ID()})
	f.log.setReadErr(domain.ErrUnavailable)
	s2 := f.rename(t, u.ID(), "a@example.com")
	s3 := f.rename(t, u.ID(), "b@example.com")
	f.log.setReadErr(nil)
	got := sink.await(t, "both changes after the outage", func(l []string) bool { return len(events(l, sub.ID)) == 2 })
	if ev := events(got, sub.ID); !slices.Equal(ev, []int64{s2, s3}) {
		t.Fatalf("events %v", ev)
	}
}

// A subscription without since_seq starts at the committed head of the
// change log even when this instance's reader lags behind it: a change
// committed before the subscribe is never delivered as news.
func TestRealtimeFreshSubscriptionStartsAtTheCommittedHead(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	admin := f.seed(t, 1, domain.RoleAdmin)
	watched := f.seed(t, 2, domain.RoleUser)
	f.awaitHead(t, 2)
	c, sink := f.connect(t, admin)
	// The reader cannot read the log for now: it stays behind what commits.
	f.log.setReadErr(domain.ErrUnavailable)
	before := f.rename(t, watched.ID(), "ann@example.net")
	if f.sv.Head() >= before {
		t.Fatalf("fixture: the reader is at %d, want it behind %d", f.sv.Head(), before)
	}
	sub := subscribe(t, c, ports.SubscribeRequest{UserID: watched.ID()})
	if sub.Seq != before {
		t.Errorf("the subscription starts at %d, want the committed head %d", sub.Seq, before)
	}
	f.log.setReadErr(nil)
	after := f.rename(t, watched.ID(), "ann@example.org")
	f.awaitHead(t, after)
	if got := events(sink.got(), sub.ID); !slices.Equal(got, []int64{after}) {
		t.Errorf("events %v, want only %d", got, after)
	}
}

// The change log's bookkeeping (an internal entry: tokens ended without a
// public change) is never an event.
func TestRealtimeInternalEntriesAreNoEvents(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	admin, watched := f.seed(t, 1, domain.RoleAdmin), f.seed(t, 2, domain.RoleUser)
	c, sink := f.connect(t, admin)
	byID := subscribe(t, c, ports.SubscribeRequest{UserID: watched.ID()})
	search := subscribe(t, c, ports.SubscribeRequest{Search: true})
	if err := f.repo.UpdateInternal(t.Context(), watched.ID(), func(u *domain.User) error {
		u.RevokeTokens(testNow)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	internal := f.head(t)
	after := f.rename(t, watched.ID(), "a@example.com")
	f.awaitHead(t, after)
	got := sink.got()
	for _, s := range []ports.Subscription{byID, search} {
		if ev := events(got, s.ID); !slices.Equal(ev, []int64{after}) {
			t.Errorf("%s: events %v, want only %d (%d is internal)", s.ID, ev, after, internal)
		}
	}
}
