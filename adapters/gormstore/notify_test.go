package gormstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/userservice/userservice/adapters/gormstore"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
	"github.com/userservice/userservice/tests/testdb"
)

// wakeWithin bounds every wait for a wake-up.
const wakeWithin = 10 * time.Second

func migrated(t *testing.T, url string, opts ...gormstore.Option) *gormstore.Store {
	t.Helper()
	s, err := gormstore.Open(t.Context(), url, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := s.MigrateUp(t.Context()); err != nil {
		t.Fatalf("MigrateUp: %v", err)
	}
	return s
}

func sqliteURL(t *testing.T) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "userservice.db")
}

func newUser(t *testing.T, n int) *domain.User {
	t.Helper()
	u, err := domain.NewUser(domain.NewUserParams{
		FirstName: "Zoë", LastName: "Ølaf", Email: fmt.Sprintf("zoe%d@example.com", n), Gender: "female",
	}, time.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func create(t *testing.T, s *gormstore.Store, n int) *domain.User {
	t.Helper()
	u, err := s.Users().Create(t.Context(), newUser(t, n), domain.Operator())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return u
}

func awaitWake(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wakeWithin):
		t.Fatalf("no wake-up within %v: %s", wakeWithin, what)
	}
}

// drained empties a coalesced wake-up left by earlier writes.
func drained(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func TestNotifierWakesInProcessAfterCommit(t *testing.T) {
	t.Parallel()
	for name, url := range map[string]func(*testing.T) string{"sqlite": sqliteURL, "postgres": func(t *testing.T) string { return testdb.PostgresURL(t) }} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := migrated(t, url(t))
			a, b := s.ChangeNotifier().Changes(t.Context()), s.ChangeNotifier().Changes(t.Context())
			if name == "postgres" {
				awaitWake(t, a, "the listener's first connection")
				awaitWake(t, b, "the listener's first connection")
			}
			create(t, s, 1)
			awaitWake(t, a, "a commit in this process")
			awaitWake(t, b, "a commit in this process, second subscriber")
		})
	}
}

func TestNotifierWakesOtherInstancesOnPostgres(t *testing.T) {
	t.Parallel()
	url := testdb.PostgresURL(t)
	writer, reader := migrated(t, url), migrated(t, url)
	ch := reader.ChangeNotifier().Changes(t.Context())
	awaitWake(t, ch, "the listener's first connection")
	drained(ch)
	u := create(t, writer, 1)
	awaitWake(t, ch, "a create committed by another store")
	if _, err := writer.Users().Update(t.Context(), u.ID(), domain.Operator(), func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
		return domain.ActionUpdated, u.ApplyProfile(domain.ProfilePatch{FirstName: ptr("Ann")}, time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	awaitWake(t, ch, "an update committed by another store")
}

// TestNotifyIsTransactional counts, on a raw listener, the notifications
// of one committed write and one refused write, up to a marker.
func TestNotifyIsTransactional(t *testing.T) {
	t.Parallel()
	url := testdb.PostgresURL(t)
	s := migrated(t, url)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "LISTEN userservice_changes"); err != nil {
		t.Fatal(err)
	}
	create(t, s, 1)
	if _, err := s.Users().Create(t.Context(), newUser(t, 1), domain.Operator()); err == nil {
		t.Fatal("a second user with the same email was stored")
	}
	if _, err := s.Users().Update(t.Context(), 1, domain.Operator(), func(*domain.User, domain.SuperadminCount) (domain.ChangeAction, error) {
		return "", domain.ErrForbidden
	}); err == nil {
		t.Fatal("a refused update succeeded")
	}
	if _, err := conn.Exec(t.Context(), "SELECT pg_notify('userservice_changes', 'marker')"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wakeWithin)
	defer cancel()
	var empty int
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("waiting for the marker: %v", err)
		}
		if n.Payload == "marker" {
			break
		}
		empty++
	}
	if empty != 1 {
		t.Fatalf("%d notifications before the marker, want 1 (the committed create only)", empty)
	}
}

func TestNotifierReconnectsAndWakes(t *testing.T) {
	t.Parallel()
	url := testdb.PostgresURL(t)
	writer, reader := migrated(t, url), migrated(t, url)
	ch := reader.ChangeNotifier().Changes(t.Context())
	awaitWake(t, ch, "the listener's first connection")

	admin, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var killed int
	err = admin.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'userservice-listen' AND datname = current_database()`).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminating the listener: %d terminated, %v", killed, err)
	}
	// The reconnection wakes the reader, which catches up from the log.
	awaitWake(t, ch, "the listener's reconnection")
	awaitListenConns(t, admin, 1, "the listener did not come back")
	drained(ch)
	create(t, writer, 1)
	awaitWake(t, ch, "a commit after the reconnection")
}

// TestWatchTellsTheListenerState: Watch reports the listener down from the
// moment its connection is lost, and up again under a new connection
// number once it listens again; on SQLite the in-process feed is always up.
func TestWatchTellsTheListenerState(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		_, listening := migrated(t, sqliteURL(t)).ChangeNotifier().Watch(t.Context())
		if _, up := listening(); !up {
			t.Fatal("the in-process feed reports itself down")
		}
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		url := testdb.PostgresURL(t)
		ch, listening := migrated(t, url).ChangeNotifier().Watch(t.Context())
		awaitWake(t, ch, "the listener's first connection")
		first, up := listening()
		if !up || first == 0 {
			t.Fatalf("after connecting: connection %d, up %v", first, up)
		}
		admin, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(context.Background())
		// The kill and the state read race with the reconnection (100 ms):
		// either the listener is seen down, or it is up under a new number.
		if _, err := admin.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE application_name = 'userservice-listen' AND datname = current_database()`); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(wakeWithin)
		var sawDown bool
		for {
			conn, up := listening()
			sawDown = sawDown || !up
			if up && conn != first {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the listener never came back under a new connection (connection %d, up %v)", conn, up)
			}
			time.Sleep(time.Millisecond)
		}
		t.Logf("down seen before the reconnection: %v", sawDown)
	})
}

// TestNotifierListensOnceForAllSubscribers: every subscriber of a store
// (the fan-out and the token cache of an instance) shares one LISTEN
// connection, which ends with the context of the last of them; a
// subscriber joining a listener already up is woken at once.
func TestNotifierListensOnceForAllSubscribers(t *testing.T) {
	t.Parallel()
	url := testdb.PostgresURL(t)
	s := migrated(t, url)
	first, cancelFirst := context.WithCancel(t.Context())
	ch := s.ChangeNotifier().Changes(first)
	awaitWake(t, ch, "the listener's first connection")
	second, cancelSecond := context.WithCancel(t.Context())
	wch, listening := s.ChangeNotifier().Watch(second)
	awaitWake(t, wch, "joining a listener that is up")
	if _, up := listening(); !up {
		t.Fatal("the shared listener reports itself down")
	}
	admin := adminConn(t, url)
	if n := listenConns(t, admin); n != 1 {
		t.Fatalf("%d LISTEN connections for two subscribers, want 1", n)
	}
	cancelFirst()
	drained(wch)
	create(t, s, 1)
	awaitWake(t, wch, "a commit, after the other subscriber left")
	cancelSecond()
	awaitListenConns(t, admin, 0, "the listener connection outlived its last subscriber")
}

// adminConn is a connection to the database at url, closed when t ends.
func adminConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	admin, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	return admin
}

// listenConns counts the store's LISTEN connections.
func listenConns(t *testing.T, admin *pgx.Conn) int {
	t.Helper()
	var n int
	if err := admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE application_name = 'userservice-listen' AND datname = current_database()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// awaitListenConns waits until the store holds want LISTEN connections.
func awaitListenConns(t *testing.T, admin *pgx.Conn, want int, failure string) {
	t.Helper()
	deadline := time.Now().Add(wakeWithin)
	for listenConns(t, admin) != want {
		if time.Now().After(deadline) {
			t.Fatal(failure)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// steppingClock tells the time it was last set to.
type steppingClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *steppingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *steppingClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// steppedOnEachDialect runs test as parallel subtests on a fresh SQLite
// file and a fresh PostgreSQL database, each with a store whose clock stands
// at day until the test steps it.
func steppedOnEachDialect(t *testing.T, test func(t *testing.T, s *gormstore.Store, clock *steppingClock, day time.Time)) {
	for name, url := range map[string]func(*testing.T) string{"sqlite": sqliteURL, "postgres": func(t *testing.T) string { return testdb.PostgresURL(t) }} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			day := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
			clock := &steppingClock{now: day}
			test(t, migrated(t, url(t), gormstore.WithClock(clock)), clock, day)
		})
	}
}

func TestChangeLogBoundsAndPrune(t *testing.T) {
	t.Parallel()
	steppedOnEachDialect(t, func(t *testing.T, s *gormstore.Store, clock *steppingClock, day time.Time) {
		ret := s.ChangeLogRetention()
		if first, last, err := ret.SeqBounds(t.Context()); err != nil || first != 0 || last != 0 {
			t.Fatalf("SeqBounds of an empty log = %d, %d, %v; want 0, 0", first, last, err)
		}
		if n, err := ret.Prune(t.Context(), day.Add(time.Hour)); err != nil || n != 0 {
			t.Fatalf("Prune of an empty log = %d, %v", n, err)
		}
		for i := range 5 {
			clock.set(day.Add(time.Duration(i) * time.Minute))
			create(t, s, i)
		}
		all, err := s.ChangeLog().ChangesAfter(t.Context(), 0, 0)
		if err != nil || len(all) != 5 {
			t.Fatalf("ChangesAfter: %d entries, %v", len(all), err)
		}
		first, last, err := ret.SeqBounds(t.Context())
		if err != nil || first != all[0].Seq || last != all[4].Seq {
			t.Fatalf("SeqBounds = %d, %d, %v; want %d, %d", first, last, err, all[0].Seq, all[4].Seq)
		}
		// Entries at minutes 0 and 1 are older than 2m; 2 is not (strictly before).
		n, err := ret.Prune(t.Context(), day.Add(2*time.Minute))
		if err != nil || n != 2 {
			t.Fatalf("Prune = %d, %v; want 2", n, err)
		}
		if first, _, _ := ret.SeqBounds(t.Context()); first != all[2].Seq {
			t.Fatalf("after pruning, first seq %d, want %d", first, all[2].Seq)
		}
		// Everything is old now, but the newest entry stays.
		n, err = ret.Prune(t.Context(), day.Add(time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("Prune = %d, %v; want 2", n, err)
		}
		first, last, err = ret.SeqBounds(t.Context())
		if err != nil || first != all[4].Seq || last != all[4].Seq {
			t.Fatalf("after pruning all, SeqBounds = %d, %d, %v; want the newest, %d", first, last, err, all[4].Seq)
		}
	})
}

// TestChangeLogNarrowReads: TargetsAfter tells every entry's seq and
// target, internal ones included; CatchUp gives the public entries after a
// seq (one user's, or everyone's) a page at a time, with the time of the
// next entry of the whole log and the first seq held, which pruning moves.
func TestChangeLogNarrowReads(t *testing.T) {
	t.Parallel()
	steppedOnEachDialect(t, func(t *testing.T, s *gormstore.Store, clock *steppingClock, day time.Time) {
		ctx, log := t.Context(), s.ChangeLog()
		if page, err := log.CatchUp(ctx, ports.CatchUpQuery{Limit: 10}); err != nil || len(page.Changes) != 0 || !page.NextAt.IsZero() || page.FirstSeq != 0 {
			t.Fatalf("CatchUp of an empty log = %+v, %v", page, err)
		}
		a := create(t, s, 1) // minute 0
		clock.set(day.Add(time.Minute))
		b := create(t, s, 2)
		clock.set(day.Add(2 * time.Minute))
		if err := s.Users().UpdateInternal(ctx, a.ID(), func(u *domain.User) error {
			u.InvalidateTokens()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		clock.set(day.Add(3 * time.Minute))
		if _, err := s.Users().Update(ctx, a.ID(), domain.Operator(), func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
			return domain.ActionUpdated, u.ApplyProfile(domain.ProfilePatch{FirstName: ptr("Ann")}, clock.Now())
		}); err != nil {
			t.Fatal(err)
		}

		targets, err := log.TargetsAfter(ctx, 0, 10)
		if err != nil || len(targets) != 4 {
			t.Fatalf("TargetsAfter(0) = %v, %v; want the 4 entries", targets, err)
		}
		want := []int64{a.ID(), b.ID(), a.ID(), a.ID()}
		for i, tg := range targets {
			if tg.TargetID != want[i] || (i > 0 && tg.Seq <= targets[i-1].Seq) {
				t.Fatalf("TargetsAfter(0) = %v; want targets %v in seq order", targets, want)
			}
		}
		seq := func(i int) int64 { return targets[i].Seq }
		if page, err := log.TargetsAfter(ctx, seq(1), 1); err != nil || len(page) != 1 || page[0] != targets[2] {
			t.Fatalf("TargetsAfter(second, 1) = %v, %v; want the internal entry", page, err)
		}

		id := a.ID()
		page, err := log.CatchUp(ctx, ports.CatchUpQuery{After: 0, TargetID: &id, Limit: 10})
		if err != nil || len(page.Changes) != 2 || page.Changes[0].Seq != seq(0) || page.Changes[1].Seq != seq(3) ||
			page.Changes[1].After.FirstName() != "Ann" || page.Changes[1].Before.FirstName() != a.FirstName() {
			t.Fatalf("CatchUp of a's public entries = %+v, %v", page.Changes, err)
		}
		if !page.NextAt.Equal(day) || page.FirstSeq != seq(0) {
			t.Fatalf("CatchUp's bounds after 0 = %v, %d; want %v, %d", page.NextAt, page.FirstSeq, day, seq(0))
		}
		// After b's creation the next entry is the internal one, which
		// dates the resume although it is not replayed.
		page, err = log.CatchUp(ctx, ports.CatchUpQuery{After: seq(1), Limit: 1})
		if err != nil || len(page.Changes) != 1 || page.Changes[0].Seq != seq(3) || !page.NextAt.Equal(day.Add(2*time.Minute)) {
			t.Fatalf("CatchUp of everyone's after b's creation = %+v, %v", page, err)
		}
		page, err = log.CatchUp(ctx, ports.CatchUpQuery{After: seq(3)})
		if err != nil || len(page.Changes) != 0 || !page.NextAt.IsZero() || page.FirstSeq != seq(0) {
			t.Fatalf("CatchUp after the last entry, bounds only = %+v, %v", page, err)
		}
		if _, err := s.ChangeLogRetention().Prune(ctx, day.Add(90*time.Second)); err != nil {
			t.Fatal(err)
		}
		if page, err = log.CatchUp(ctx, ports.CatchUpQuery{After: 0, TargetID: &id}); err != nil || page.FirstSeq != seq(2) {
			t.Fatalf("CatchUp's first seq after pruning = %+v, %v; want %d", page, err, seq(2))
		}
	})
}

func ptr[T any](v T) *T { return &v }
