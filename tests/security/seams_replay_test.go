package security

// Seams, points 1 and 2: a WebSocket replay is a resume, not a history. A
// since_seq reaches back at most WS_RESUME_WINDOW (older history is
// /audit's, superadmin only); a catch-up costs the server what it returns,
// not the size of the change log; a connection runs one catch-up at a
// time, and each account has a budget of them (websocket-catchups).

import (
	"database/sql"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/userservice/userservice/adapters/gormstore"
	"github.com/userservice/userservice/bootstrap"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
	"github.com/userservice/userservice/tests/harness"
)

// The attack of point 1: a plain user's subscribe_id with since_seq 0 made
// the server read and decode the whole change log. 20 such catch-ups over
// 30,000 entries of other users must cost this process (the service runs
// in it) at most 1.5 s of CPU time; reading the log for them costs several
// seconds, reading the user's entries milliseconds.
const (
	catchUpNoise   = 30000
	catchUps       = 20
	catchUpCPUTime = 1500 * time.Millisecond
)

// TestSeams_ReplayCatchUpCostsWhatItReturns is not parallel, and runs its
// backends one after the other: it measures the CPU time of this process,
// which every test running beside it would add to.
func TestSeams_ReplayCatchUpCostsWhatItReturns(t *testing.T) {
	for _, b := range harness.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			s := harness.Start(t, b, harness.Options{})
			root := s.SeedSuperadmin(t)
			attacker := s.CreateAndLogin(t, root, user)
			target := s.CreateNamed(t, root, user, "target")
			for _, name := range []string{"Ann", "Bea"} {
				s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(target.ID), root.Access, map[string]any{"first_name": name})
			}
			sentinel := s.CreateNamed(t, root, user, "sentinel")
			history := changesOf(t, s, target.ID)
			if len(history) != 3 {
				t.Fatalf("the target's history: %v", history)
			}
			addNoise(t, s, history[0], catchUpNoise)

			c := s.ConnectWS(t, attacker.Access)
			// The reader fans the noise out first (news nobody watches):
			// once a later change arrives it is past it, and the
			// measurement sees the catch-ups alone.
			watch := c.Subscribe(map[string]any{"action": "subscribe_id", "user_id": sentinel.ID}).Str("subscription_id")
			s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(sentinel.ID), root.Access, map[string]any{"first_name": "Cal"})
			c.Event("updated", watch)
			runtime.GC()

			start := cpuTime(t)
			// Sent at once: the connection runs them one after another.
			for range catchUps {
				c.Send(map[string]any{"action": "subscribe_id", "user_id": target.ID, "since_seq": 0})
			}
			got := map[string][]int64{}
			for events := 0; events < catchUps*len(history); {
				m := c.Next()
				switch m.Type() {
				case "subscribed":
					got[m.Str("subscription_id")] = []int64{}
				case "created", "updated":
					got[m.Str("subscription_id")] = append(got[m.Str("subscription_id")], m.Num("seq"))
					events++
				default:
					t.Fatalf("during the catch-ups: %v", m)
				}
			}
			used := cpuTime(t) - start
			if len(got) != catchUps {
				t.Fatalf("%d subscriptions acknowledged, want %d", len(got), catchUps)
			}
			for sub, seqs := range got {
				if !slices.Equal(seqs, history) {
					t.Errorf("%s replayed %v, want the target's %v", sub, seqs, history)
				}
			}
			t.Logf("%d catch-ups over %d entries: %v of CPU time", catchUps, catchUpNoise, used)
			if used > catchUpCPUTime {
				t.Errorf("%d catch-ups of %d changes each over %d entries of other users took %v of CPU time, want at most %v",
					catchUps, len(history), catchUpNoise, used, catchUpCPUTime)
			}
		})
	}
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// changesOf returns the seqs of user id's change-log entries.
func changesOf(t *testing.T, s *harness.Service, id int64) []int64 {
	t.Helper()
	changes, err := openStore(t, s).ChangeLog().Audit(t.Context(), ports.AuditQuery{TargetID: &id})
	if err != nil {
		t.Fatal(err)
	}
	seqs := make([]int64, len(changes))
	for i, c := range changes {
		seqs[i] = c.Seq
	}
	return seqs
}

// openStore opens the service's database beside it, with opts.
func openStore(t *testing.T, s *harness.Service, opts ...gormstore.Option) *gormstore.Store {
	t.Helper()
	store, err := gormstore.Open(t.Context(), s.DBURL, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// addNoise appends n copies of the change-log entry seq, each under a
// target id of its own, in one statement: valid entries of users nobody
// watches, written in a moment rather than through n requests.
func addNoise(t *testing.T, s *harness.Service, seq int64, n int) {
	t.Helper()
	driver, dsn := "pgx", s.DBURL
	series := "WITH g(n) AS (SELECT generate_series(1, $1))"
	if path, ok := strings.CutPrefix(s.DBURL, "sqlite:"); ok {
		driver, dsn = "sqlite", "file:"+path+"?_pragma=busy_timeout(10000)"
		series = "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $1)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.ExecContext(t.Context(), series+`
		INSERT INTO change_log (at, actor_id, action, target_id, before, after)
		SELECT at, actor_id, action, target_id + 1000000 + g.n, before, after FROM change_log, g WHERE seq = $2`, n, seq)
	if err != nil {
		t.Fatalf("adding %d entries: %v", n, err)
	}
	if added, err := res.RowsAffected(); err != nil || added != int64(n) {
		t.Fatalf("added %d entries (%v), want %d", added, err, n)
	}
}

// pastClock stamps what a store writes at a fixed time.
type pastClock struct{ at time.Time }

func (c pastClock) Now() time.Time { return c.at }

// The attack of point 2: a plain user's since_seq 0 replayed every retained
// event of any id, deleted users' included, for the whole retention. With
// WS_RESUME_WINDOW=1h, a since_seq whose next change is older than an hour
// is refused (the change log, kept for /audit, still holds it), and a
// resume from the last change before the window replays the window only:
// nothing of a user deleted before it. Of a user deleted inside it, a
// plain user sees what a live subscription over that hour would have.
func TestSeams_ReplayIsAResumeNotAHistory(t *testing.T) {
	t.Parallel()
	opts := harness.Options{Configure: func(c *bootstrap.Config) { c.ResumeWindow = time.Hour }}
	harness.OnEachBackend(t, opts, func(t *testing.T, s *harness.Service) {
		// Two hours ago (before anything else: the log is in time order):
		// x was created, changed and deleted; y created.
		then := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Microsecond)
		past := openStore(t, s, gormstore.WithClock(pastClock{then}))
		newUser := func(name string) *domain.User {
			u, err := domain.NewUser(domain.NewUserParams{FirstName: name, LastName: "Past", Email: harness.Email(name), Gender: "Female"}, then)
			if err != nil {
				t.Fatal(err)
			}
			stored, err := past.Users().Create(t.Context(), u, domain.Operator())
			if err != nil {
				t.Fatal(err)
			}
			return stored
		}
		x := newUser("x")
		gone := "Gone"
		if _, err := past.Users().Update(t.Context(), x.ID(), domain.Operator(), func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
			return domain.ActionUpdated, u.ApplyProfile(domain.ProfilePatch{LastName: &gone}, then)
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := past.Users().Delete(t.Context(), x.ID(), domain.Operator(), func(*domain.User, domain.SuperadminCount) error { return nil }); err != nil {
			t.Fatal(err)
		}
		y := newUser("y")
		// Now: y changed and deleted.
		root := s.SeedSuperadmin(t)
		attacker := s.CreateAndLogin(t, root, user)
		s.Expect(t, http.StatusOK, http.MethodPut, harness.UserPath(y.ID()), root.Access, map[string]any{"first_name": "Now"})
		s.Expect(t, http.StatusNoContent, http.MethodDelete, harness.UserPath(y.ID()), root.Access, nil)
		xs, ys := changesOf(t, s, x.ID()), changesOf(t, s, y.ID())
		if len(xs) != 3 || len(ys) != 3 {
			t.Fatalf("histories %v, %v", xs, ys)
		}

		c := s.ConnectWS(t, attacker.Access)
		for _, since := range []int64{0, xs[0], xs[2]} {
			for _, id := range []int64{x.ID(), y.ID()} {
				c.Send(map[string]any{"action": "subscribe_id", "user_id": id, "since_seq": since})
				if m := c.Expect("error"); m.Str("detail") != "resume_too_old" {
					t.Fatalf("user %d since %d, before the window: %v", id, since, m)
				}
			}
		}
		// Since y's creation, the last change before the window. Catch-ups
		// run one at a time, in subscribe order: anything replayed of x
		// would come before y's events.
		c.Subscribe(map[string]any{"action": "subscribe_id", "user_id": x.ID(), "since_seq": ys[0]})
		sub := c.Subscribe(map[string]any{"action": "subscribe_id", "user_id": y.ID(), "since_seq": ys[0]}).Str("subscription_id")
		if m := c.Event("updated", sub); m.Num("seq") != ys[1] || m.User().Str("first_name") != "Now" {
			t.Fatalf("the first change inside the window: %v", m)
		}
		if m := c.Event("deleted", sub); m.Num("seq") != ys[2] {
			t.Fatalf("the deletion inside the window: %v", m)
		}
		c.Send(map[string]any{"action": "ping"})
		c.Expect("pong")
		// The history older than the window stays /audit's.
		s.Expect(t, http.StatusForbidden, http.MethodGet, audit+"?target_id="+strconv.FormatInt(x.ID(), 10), attacker.Access, nil)
	})
}

// Point 1, many sockets: the websocket-catchups rule counts an account's
// catch-ups across its connections, so more sockets buy no more reads of
// the change log; subscriptions without since_seq, and other accounts,
// are not counted.
func TestSeams_ReplayCatchUpsHaveABudgetPerAccount(t *testing.T) {
	t.Parallel()
	harness.OnEachBackend(t, harness.Options{PolicyDir: harness.PoliciesWithBudget(t, "websocket-catchups", 3)}, func(t *testing.T, s *harness.Service) {
		root := s.SeedSuperadmin(t)
		attacker := s.CreateAndLogin(t, root, user)
		other := s.CreateAndLogin(t, root, user)
		resume := map[string]any{"action": "subscribe_id", "user_id": attacker.ID, "since_seq": 0}
		c1, c2 := s.ConnectWS(t, attacker.Access), s.ConnectWS(t, attacker.Access)
		c1.Subscribe(resume)
		c1.Subscribe(resume)
		c2.Subscribe(resume)
		c2.Send(resume)
		if m := nextNonEvent(c2); m.Type() != "error" || !strings.HasPrefix(m.Str("detail"), "rate limited: retry in ") {
			t.Fatalf("the account's fourth catch-up, on its second connection: %v", m)
		}
		c2.Subscribe(map[string]any{"action": "subscribe_id", "user_id": attacker.ID})
		s.ConnectWS(t, other.Access).Subscribe(resume)
	})
}

// nextNonEvent returns the next message that is not an event.
func nextNonEvent(c *harness.WS) harness.Message {
	for {
		if m := c.Next(); !slices.Contains([]string{"created", "updated", "deleted"}, m.Type()) {
			return m
		}
	}
}
