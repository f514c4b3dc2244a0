package application

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// The resume rules: a since_seq reaches back at most the
// resume window, a catch-up reads what it returns, and a connection runs
// one catch-up at a time.

func TestRealtimeResumeWindow(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, func(c *SubscriptionsConfig) { c.ResumeWindow = time.Hour })
	// The whole history of a user deleted before the window began (the
	// log still keeps it for /audit: retention is not the window), then
	// changes inside the window, the first at its very start.
	at := func(ago time.Duration) { f.stamps.set(testNow.Add(-ago)) }
	at(3 * time.Hour)
	gone := f.seed(t, 1, domain.RoleUser)
	old := []int64{f.head(t)}
	at(2 * time.Hour)
	old = append(old, f.rename(t, gone.ID(), "gone@example.com"))
	at(time.Hour + time.Second)
	old = append(old, f.remove(t, gone.ID()))
	at(time.Hour)
	u := f.seed(t, 2, domain.RoleUser)
	created := f.head(t)
	at(30 * time.Minute)
	inside := f.rename(t, u.ID(), "inside@example.com")
	at(0)
	recent := f.rename(t, u.ID(), "recent@example.com")
	c, sink := f.connect(t, u)
	for since, ok := range map[int64]bool{
		0: false, old[0]: false, old[1]: false,
		old[2]:  true, // the next change is the window's first
		created: true, inside: true, recent: true, recent + 5: true,
	} {
		for _, id := range []int64{gone.ID(), u.ID()} {
			_, err := c.Subscribe(t.Context(), ports.SubscribeRequest{UserID: id, SinceSeq: &since})
			if ok != (err == nil) || (!ok && !errors.Is(err, ErrResumeTooOld)) {
				t.Errorf("user %d since %d: %v, want ok=%v", id, since, err, ok)
			}
		}
	}
	// Since the last change before the window: the window's changes only,
	// and nothing of the user deleted before it.
	goneSub := subscribe(t, c, ports.SubscribeRequest{UserID: gone.ID(), SinceSeq: &old[2]})
	sub := subscribe(t, c, ports.SubscribeRequest{UserID: u.ID(), SinceSeq: &old[2]})
	got := sink.await(t, "the window's changes", func(l []string) bool { return len(events(l, sub.ID)) >= 3 })
	if ev := events(got, sub.ID); !slices.Equal(ev, []int64{created, inside, recent}) {
		t.Errorf("replayed %v, want the creation, %d and %d", ev, inside, recent)
	}
	if ev := events(got, goneSub.ID); len(ev) != 0 {
		t.Errorf("replayed %v of the user deleted before the window", ev)
	}
}

func TestRealtimeResumeWindowIsAtMostTheRetention(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, func(c *SubscriptionsConfig) { c.ResumeWindow = 48 * time.Hour; c.KeepFor = time.Hour })
	u := f.seed(t, 1, domain.RoleUser)
	f.stamps.set(testNow.Add(-2 * time.Hour))
	old := f.rename(t, u.ID(), "old@example.com")
	c, _ := f.connect(t, u)
	since := old - 1
	if _, err := c.Subscribe(t.Context(), ports.SubscribeRequest{UserID: u.ID(), SinceSeq: &since}); !errors.Is(err, ErrResumeTooOld) {
		t.Fatalf("a since_seq older than the retention: %v, want resume_too_old", err)
	}
}

// A catch-up by id reads the entries of its user, not the log: its cost
// follows what it returns.
func TestRealtimeCatchUpByIDReadsOnlyItsUser(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, func(c *SubscriptionsConfig) { c.BatchSize = 4 })
	u, other := f.seed(t, 1, domain.RoleUser), f.seed(t, 2, domain.RoleUser)
	mine := []int64{1}
	for i := range 60 {
		if i%10 == 0 {
			mine = append(mine, f.rename(t, u.ID(), fmt.Sprintf("a%d@example.com", i)))
		}
		f.rename(t, other.ID(), fmt.Sprintf("b%d@example.com", i))
	}
	c, sink := f.connect(t, u)
	f.log.takeReads()
	sub := subscribe(t, c, ports.SubscribeRequest{UserID: u.ID(), SinceSeq: ptr(int64(0))})
	got := sink.await(t, "the user's changes", func(l []string) bool { return len(events(l, sub.ID)) >= len(mine) })
	if ev := events(got, sub.ID); !slices.Equal(ev, mine) {
		t.Fatalf("replayed %v, want %v", ev, mine)
	}
	reads, returned := f.log.takeReads()
	// The user's entries only: the entry after since_seq that dates the
	// resume comes with them, not as one more read.
	if returned > len(mine) {
		t.Errorf("the catch-up read %d entries to return %d: %+v", returned, len(mine), reads)
	}
	for _, q := range reads {
		if q.TargetID != nil && (*q.TargetID != u.ID() || q.Limit != 4) {
			t.Errorf("read %+v, want pages of 4 of user %d", q, u.ID())
		}
	}
}

// A catch-up by search reads the log a page at a time, never at once.
func TestRealtimeCatchUpBySearchReadsPages(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, func(c *SubscriptionsConfig) { c.BatchSize = 3 })
	admin := f.seed(t, 1, domain.RoleAdmin)
	u := f.seed(t, 2, domain.RoleUser)
	var gmail []int64
	for i := range 10 {
		host := "example.org"
		if i%3 == 0 {
			host = "gmail.com"
		}
		seq := f.rename(t, u.ID(), fmt.Sprintf("a%d@%s", i, host))
		if i%3 != 2 { // into the filter, or out of it
			gmail = append(gmail, seq)
		}
	}
	c, sink := f.connect(t, admin)
	f.log.takeReads()
	sub := subscribe(t, c, ports.SubscribeRequest{Search: true, Filter: domain.FilterParams{Email: "@gmail.com"}, SinceSeq: ptr(int64(0))})
	got := sink.await(t, "the matching changes", func(l []string) bool { return len(events(l, sub.ID)) >= len(gmail) })
	if ev := events(got, sub.ID); !slices.Equal(ev, gmail) {
		t.Fatalf("replayed %v, want %v", ev, gmail)
	}
	reads, _ := f.log.takeReads()
	pages := 0
	for _, q := range reads {
		if q.Limit <= 0 || q.Limit > 3 {
			t.Errorf("read %+v: want a page of at most 3", q)
		}
		if q.Limit == 3 && q.After < 12 {
			pages++
		}
	}
	if pages < 4 {
		t.Errorf("%d pages read to replay 12 entries, want at least 4", pages)
	}
}

// A connection runs one catch-up at a time: the next starts when the one
// before has handed over, and one unsubscribed while it waited never runs.
// Each catch-up here reads a full page of two entries and a last one of
// one; the observed log's gate holds the second page (the first of the catch-up
// that starts at once is read by Subscribe, with the resume check).
func TestRealtimeOneCatchUpAtATimePerConnection(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, func(c *SubscriptionsConfig) { c.BatchSize = 2 })
	// Seeded in order: user i+1 is created by change i+1; renamed twice
	// after.
	var users []*domain.User
	for i := range 5 {
		users = append(users, f.seed(t, i+1, domain.RoleUser))
	}
	for round := range 2 {
		for i, u := range users {
			f.rename(t, u.ID(), fmt.Sprintf("renamed%d.%d@example.com", i, round))
		}
	}
	c, sink := f.connect(t, users[0])
	gate := make(chan struct{})
	f.log.setGate(gate)
	var subs []ports.Subscription
	for _, u := range users[:4] {
		subs = append(subs, subscribe(t, c, ports.SubscribeRequest{UserID: u.ID(), SinceSeq: ptr(int64(0))}))
	}
	// Another connection's catch-up does not wait for this one's.
	other, otherSink := f.connect(t, users[4])
	otherSub := subscribe(t, other, ports.SubscribeRequest{UserID: users[4].ID(), SinceSeq: ptr(int64(0))})
	if err := c.Unsubscribe(t.Context(), subs[2].ID); err != nil {
		t.Fatal(err)
	}
	for range 4 { // users 1, 2 and 4 on c, user 5 on the other
		deadline := time.Now().Add(rtWait)
		for f.log.inflight.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no catch-up is reading")
			}
			time.Sleep(time.Millisecond)
		}
		gate <- struct{}{}
	}
	for i, s := range subs {
		if i == 2 {
			continue
		}
		// The second rename of user i+1 (change 11+i), read by the held
		// page.
		sink.awaitLine(t, fmt.Sprintf("event %s %d", s.ID, 11+i))
	}
	otherSink.awaitLine(t, fmt.Sprintf("event %s %d", otherSub.ID, 15))
	if n := f.log.maxInflight.Load(); n > 2 {
		t.Errorf("%d catch-ups read at once, want one per connection (two connections)", n)
	}
	var order []int64
	reads, _ := f.log.takeReads()
	for _, q := range reads {
		if q.TargetID != nil && q.After > 0 {
			order = append(order, *q.TargetID)
		}
	}
	// In subscribe order on c (the other connection's read anywhere); the
	// unsubscribed one's never.
	mine := slices.DeleteFunc(slices.Clone(order), func(id int64) bool { return id == users[4].ID() })
	if want := []int64{users[0].ID(), users[1].ID(), users[3].ID()}; !slices.Equal(mine, want) || len(order) != 4 {
		t.Errorf("catch-up reads of users %v, want users 1, 2, 4 in that order and 5", order)
	}
}

// A seq that never committed (a rolled-back write) after since_seq is no
// reason to refuse: only entries pruned from below are.
func TestRealtimeResumeAcrossARolledBackSeq(t *testing.T) {
	t.Parallel()
	f := newSubsFixture(t, nil)
	u := f.seed(t, 1, domain.RoleUser)
	s3 := f.renameAfterGap(t, u.ID(), "a@example.com") // 2 unused
	c, sink := f.connect(t, u)
	sub := subscribe(t, c, ports.SubscribeRequest{UserID: u.ID(), SinceSeq: ptr(int64(1))})
	sink.awaitLine(t, fmt.Sprintf("event %s %d", sub.ID, s3))
}
