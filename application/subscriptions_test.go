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

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// rtWait bounds every wait of these tests for the engine's goroutines.
const rtWait = 10 * time.Second

// memLog is an in-memory change log with retention, whose appends wake
// its notifier as a commit would.
type memLog struct {
	mu      sync.Mutex
	entries []domain.Change
	nextSeq int64
	// first, when set, is the smallest seq held: those below were pruned.
	first   int64
	wake    chan struct{}
	readErr error
	// reads are the reads made (ChangesAfter as a query without target),
	// and returned counts the entries they returned.
	reads    []ports.AuditQuery
	returned int
	// gate, when set, holds each read by target after a seq (a catch-up by
	// id past its first page, which a catch-up from 0 reads from 0) until
	// the test sends on it; inflight counts those held, maxInflight the
	// most held at once.
	gate                  chan struct{}
	inflight, maxInflight atomic.Int32
}

func newMemLog() *memLog { return &memLog{nextSeq: 1, wake: make(chan struct{}, 1)} }

func (l *memLog) Changes(context.Context) <-chan struct{} { return l.wake }

// add appends a change (seq assigned) and wakes the reader.
func (l *memLog) add(c domain.Change) int64 {
	l.mu.Lock()
	c.Seq = l.nextSeq
	l.nextSeq++
	if c.At.IsZero() {
		c.At = testNow
	}
	l.entries = append(l.entries, c)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return c.Seq
}

// addUnannounced appends a change whose wake-up is lost: committed, but the
// reader does not know yet.
func (l *memLog) addUnannounced(c domain.Change) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.Seq, c.At = l.nextSeq, testNow
	l.nextSeq++
	l.entries = append(l.entries, c)
	return c.Seq
}

// skip draws a seq that never commits (a rolled-back append).
func (l *memLog) skip() {
	l.mu.Lock()
	l.nextSeq++
	l.mu.Unlock()
}

func (l *memLog) ChangesAfter(_ context.Context, after int64, limit int) ([]domain.Change, error) {
	return l.read(ports.AuditQuery{AfterSeq: after, Limit: limit}, false)
}

func (l *memLog) Audit(context.Context, ports.AuditQuery) ([]domain.Change, error) {
	return nil, errors.New("not used")
}

func (l *memLog) TargetsAfter(ctx context.Context, after int64, limit int) ([]ports.ChangeTarget, error) {
	batch, err := l.ChangesAfter(ctx, after, limit)
	out := make([]ports.ChangeTarget, len(batch))
	for i, c := range batch {
		out[i] = ports.ChangeTarget{Seq: c.Seq, TargetID: c.TargetID}
	}
	return out, err
}

// CatchUp reads its page as a read by q.TargetID (recorded) when it asks
// for entries.
func (l *memLog) CatchUp(_ context.Context, q ports.CatchUpQuery) (ports.CatchUpPage, error) {
	var page ports.CatchUpPage
	if q.Limit > 0 {
		var err error
		if page.Changes, err = l.read(ports.AuditQuery{TargetID: q.TargetID, AfterSeq: q.After, Limit: q.Limit}, true); err != nil {
			return page, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.readErr != nil {
		return page, l.readErr
	}
	for _, c := range l.entries {
		if c.Seq > q.After && c.Seq >= l.first {
			page.NextAt = c.At
			break
		}
	}
	if len(l.entries) > 0 {
		page.FirstSeq = max(l.first, l.entries[0].Seq)
	}
	return page, nil
}

// read returns up to q.Limit entries after q.AfterSeq, of q.TargetID when
// set, public ones only if asked, recording the read.
func (l *memLog) read(q ports.AuditQuery, public bool) ([]domain.Change, error) {
	l.mu.Lock()
	gate := l.gate
	l.mu.Unlock()
	if gate != nil && q.TargetID != nil && q.AfterSeq > 0 {
		n := l.inflight.Add(1)
		for {
			if m := l.maxInflight.Load(); n <= m || l.maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		<-gate
		l.inflight.Add(-1)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads = append(l.reads, q)
	if l.readErr != nil {
		return nil, l.readErr
	}
	var out []domain.Change
	for _, c := range l.entries {
		if c.Seq > q.AfterSeq && c.Seq >= l.first && (q.TargetID == nil || c.TargetID == *q.TargetID) &&
			!(public && c.Action.Internal()) && (q.Limit <= 0 || len(out) < q.Limit) {
			out = append(out, c)
		}
	}
	l.returned += len(out)
	return out, nil
}

// takeReads returns the reads recorded since the previous call, and how
// many entries they returned.
func (l *memLog) takeReads() ([]ports.AuditQuery, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out, n := l.reads, l.returned
	l.reads, l.returned = nil, 0
	return out, n
}

func (l *memLog) CountAudit(context.Context, ports.AuditQuery, int64) (int64, bool, error) {
	return 0, false, errors.New("not used")
}

func (l *memLog) SeqBounds(context.Context) (int64, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) == 0 {
		return 0, 0, nil
	}
	first := l.entries[0].Seq
	if l.first > 0 {
		first = l.first
	}
	return first, l.entries[len(l.entries)-1].Seq, nil
}

func (l *memLog) Prune(context.Context, time.Time) (int64, error) { return 0, nil }

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

// expiringTokens verifies "access:ID:VERSION" tokens that expire a minute
// after testNow.
type expiringTokens struct{}

func (expiringTokens) VerifyAccess(token string, _ time.Time) (ports.AccessClaims, error) {
	parts := strings.Split(token, ":")
	if len(parts) != 3 || parts[0] != "access" {
		return ports.AccessClaims{}, domain.ErrUnauthenticated
	}
	id, err1 := strconv.ParseInt(parts[1], 10, 64)
	v, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return ports.AccessClaims{}, domain.ErrUnauthenticated
	}
	return ports.AccessClaims{UserID: id, TokenVersion: v, ExpiresAt: testNow.Add(time.Minute)}, nil
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
	repo  *testRepo
	log   *memLog
	authz *fakeAuthz
	clock *movingClock
	sv    *Subscriptions
}

func newSubsFixture(t *testing.T, tune func(*SubscriptionsConfig)) *subsFixture {
	t.Helper()
	f := &subsFixture{repo: newTestRepo(t), log: newMemLog(), authz: &fakeAuthz{decide: shippedPolicy}, clock: &movingClock{now: testNow}}
	cfg := SubscriptionsConfig{Notifier: f.log, Retention: f.log, SweepEvery: 5 * time.Millisecond, PollEvery: 20 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	f.sv = NewSubscriptions(Deps{Repo: f.repo, Changes: f.log, Authz: f.authz, Verifier: expiringTokens{}, Clock: f.clock}, cfg)
	if err := f.sv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return f
}

// seed stores a user and logs its creation.
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
	f.log.add(domain.Change{Action: domain.ActionCreated, TargetID: created.ID(), After: created})
	return created
}

// update changes user id with fn in the repository and logs the change.
func (f *subsFixture) update(t *testing.T, id int64, action domain.ChangeAction, fn func(u *domain.User)) int64 {
	t.Helper()
	before, err := f.repo.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	after, err := f.repo.Update(t.Context(), id, domain.Operator(), func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
		fn(u)
		return action, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return f.log.add(domain.Change{Action: action, TargetID: id, Before: before, After: after})
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
	_, last, _ := f.log.SeqBounds(t.Context())
	f.awaitHead(t, last)
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
	l := newMemLog()
	sv := NewSubscriptions(Deps{Repo: newTestRepo(t), Changes: l, Authz: &fakeAuthz{}, Verifier: expiringTokens{}, Clock: fixedClock{testNow}},
		SubscriptionsConfig{Notifier: l, Retention: l})
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
	f.log.skip()
	s3 := f.rename(t, u.ID(), "a@example.com")
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
			before, _ := f.repo.Get(t.Context(), u.ID())
			after := before.Clone()
			if err := after.ApplyProfile(domain.ProfilePatch{Email: ptr(fmt.Sprintf("w%d@example.com", i))}, testNow); err != nil {
				panic(err)
			}
			written.Store(f.log.add(domain.Change{Action: domain.ActionUpdated, TargetID: u.ID(), Before: before, After: after}))
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
	f := newSubsFixture(t, nil)
	u := f.seed(t, 1, domain.RoleUser)
	for i := range 5 {
		f.rename(t, u.ID(), fmt.Sprintf("a%d@example.com", i))
	}
	f.log.mu.Lock()
	f.log.first = 4 // 1..3 pruned
	f.log.mu.Unlock()
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
	before, _ := f.repo.Get(t.Context(), v.ID())
	if _, err := f.repo.Delete(t.Context(), v.ID(), domain.Operator(), func(*domain.User, domain.SuperadminCount) error { return nil }); err != nil {
		t.Fatal(err)
	}
	f.log.add(domain.Change{Action: domain.ActionDeleted, TargetID: v.ID(), Before: before})
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
	f.log.mu.Lock()
	f.log.readErr = domain.ErrUnavailable
	f.log.mu.Unlock()
	s2 := f.rename(t, u.ID(), "a@example.com")
	s3 := f.rename(t, u.ID(), "b@example.com")
	f.log.mu.Lock()
	f.log.readErr = nil
	f.log.mu.Unlock()
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
	f := newSubsFixture(t, func(c *SubscriptionsConfig) { c.PollEvery = time.Hour })
	admin := f.seed(t, 1, domain.RoleAdmin)
	watched := f.seed(t, 2, domain.RoleUser)
	f.awaitHead(t, 2)
	c, sink := f.connect(t, admin)
	before := f.log.addUnannounced(domain.Change{Action: domain.ActionUpdated, TargetID: watched.ID(), Before: watched, After: watched})
	if f.sv.Head() >= before {
		t.Fatalf("fixture: the reader is at %d, want it behind %d", f.sv.Head(), before)
	}
	sub := subscribe(t, c, ports.SubscribeRequest{UserID: watched.ID()})
	if sub.Seq != before {
		t.Errorf("the subscription starts at %d, want the committed head %d", sub.Seq, before)
	}
	after := f.rename(t, watched.ID(), "ann@example.org")
	f.awaitHead(t, after)
	if got := events(sink.got(), sub.ID); !slices.Equal(got, []int64{after}) {
		t.Errorf("events %v, want only %d", got, after)
	}
}
