package application

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/userservice/userservice/adapters/gormstore"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// testRepo is the real repository, gormstore on a migrated SQLite file of
// the test's own, rather than an in-memory copy of its behaviour that could
// drift from what the contract suite (tests/contract) holds it to. Beside
// the port it reads back what the tests check: stored rows, the change log.
type testRepo struct {
	ports.UserRepository
	store *gormstore.Store

	mu sync.Mutex
	// countLimit is the limit of the last Count, -1 before any.
	countLimit int64
}

func newTestRepo(t *testing.T, opts ...gormstore.Option) *testRepo {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := gormstore.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "users.db"), log, opts...)
	if err != nil {
		t.Fatalf("open the store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close the store: %v", err)
		}
	})
	if err := s.MigrateUp(context.Background()); err != nil {
		t.Fatalf("migrate the store: %v", err)
	}
	return &testRepo{UserRepository: s.Users(), store: s, countLimit: -1}
}

// Count records the limit it is asked to count exactly up to.
func (r *testRepo) Count(ctx context.Context, f domain.Filter, limit int64) (int64, bool, error) {
	r.mu.Lock()
	r.countLimit = limit
	r.mu.Unlock()
	return r.UserRepository.Count(ctx, f, limit)
}

// lastCountLimit is the limit of the last Count, and forgets it.
func (r *testRepo) lastCountLimit() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.countLimit
	r.countLimit = -1
	return n
}

// stored is user id as stored, secrets included.
func (r *testRepo) stored(t *testing.T, id int64) domain.StoredUser {
	t.Helper()
	u, err := r.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("user %d: %v", id, err)
	}
	return u.Stored()
}

// byEmail is the user stored with email, if any.
func (r *testRepo) byEmail(t *testing.T, email string) (domain.StoredUser, bool) {
	t.Helper()
	e, err := domain.ParseEmail(email)
	if err != nil {
		t.Fatal(err)
	}
	u, err := r.GetByEmail(context.Background(), e)
	if domain.KindOf(err) == domain.KindNotFound {
		return domain.StoredUser{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return u.Stored(), true
}

// count is how many users are stored.
func (r *testRepo) count(t *testing.T) int {
	t.Helper()
	n, _, err := r.UserRepository.Count(context.Background(), domain.Filter{}, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// recordedChange is the gist of one change-log entry.
type recordedChange struct {
	Action   domain.ChangeAction
	ActorID  int64
	TargetID int64
}

// recorded is the change log so far, in order.
func (r *testRepo) recorded(t *testing.T) []recordedChange {
	t.Helper()
	var out []recordedChange
	for after := int64(0); ; {
		cs, err := r.store.ChangeLog().ChangesAfter(context.Background(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 0 {
			return out
		}
		for _, c := range cs {
			out = append(out, recordedChange{c.Action, c.ActorID, c.TargetID})
			after = c.Seq
		}
	}
}

// lastSeq is the seq of the newest change-log entry: that of the write
// that just returned, where the test writes alone.
func (r *testRepo) lastSeq(ctx context.Context) (int64, error) {
	_, last, err := r.store.ChangeLogRetention().SeqBounds(ctx)
	return last, err
}

// prune deletes the change-log entries stamped before before, through the
// store's retention, as the background pruning does.
func (r *testRepo) prune(t *testing.T, before time.Time) {
	t.Helper()
	if _, err := r.store.ChangeLogRetention().Prune(t.Context(), before); err != nil {
		t.Fatal(err)
	}
}

// observedLog is the store's change log as the tests of its readers watch
// and perturb it. It records the reads of whole entries (the reader's
// ChangesAfter, as a query without target, and each CatchUp that asks for
// entries) and counts the entries they return; while readErr is set every
// read fails; while gate is set, each catch-up page of one user after a
// seq (a catch-up by id past its first page, which a catch-up from 0 reads
// from 0) waits until the test sends on gate, inflight counting those
// waiting and maxInflight the most at once.
type observedLog struct {
	ports.ChangeLog

	mu       sync.Mutex
	readErr  error
	reads    []ports.CatchUpQuery
	returned int
	gate     chan struct{}

	inflight, maxInflight atomic.Int32
}

func observe(l ports.ChangeLog) *observedLog { return &observedLog{ChangeLog: l} }

func (l *observedLog) setReadErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.readErr = err
}

func (l *observedLog) setGate(gate chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gate = gate
}

func (l *observedLog) failure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readErr
}

// record notes read q, and is the error it is to fail with.
func (l *observedLog) record(q ports.CatchUpQuery) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads = append(l.reads, q)
	return l.readErr
}

func (l *observedLog) count(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.returned += n
}

// takeReads returns the reads recorded since the previous call, and how
// many entries they returned.
func (l *observedLog) takeReads() ([]ports.CatchUpQuery, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out, n := l.reads, l.returned
	l.reads, l.returned = nil, 0
	return out, n
}

func (l *observedLog) ChangesAfter(ctx context.Context, after int64, limit int) ([]domain.Change, error) {
	if err := l.record(ports.CatchUpQuery{After: after, Limit: limit}); err != nil {
		return nil, err
	}
	out, err := l.ChangeLog.ChangesAfter(ctx, after, limit)
	l.count(len(out))
	return out, err
}

func (l *observedLog) TargetsAfter(ctx context.Context, after int64, limit int) ([]ports.ChangeTarget, error) {
	if err := l.failure(); err != nil {
		return nil, err
	}
	return l.ChangeLog.TargetsAfter(ctx, after, limit)
}

func (l *observedLog) CatchUp(ctx context.Context, q ports.CatchUpQuery) (ports.CatchUpPage, error) {
	if q.Limit <= 0 { // the bounds alone: no entries read
		if err := l.failure(); err != nil {
			return ports.CatchUpPage{}, err
		}
		return l.ChangeLog.CatchUp(ctx, q)
	}
	l.mu.Lock()
	gate := l.gate
	l.mu.Unlock()
	if gate != nil && q.TargetID != nil && q.After > 0 {
		n := l.inflight.Add(1)
		for {
			if m := l.maxInflight.Load(); n <= m || l.maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		<-gate
		l.inflight.Add(-1)
	}
	if err := l.record(q); err != nil {
		return ports.CatchUpPage{}, err
	}
	page, err := l.ChangeLog.CatchUp(ctx, q)
	l.count(len(page.Changes))
	return page, err
}
