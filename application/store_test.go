package application

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

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

func newTestRepo(t *testing.T) *testRepo {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := gormstore.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "users.db"), log)
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
