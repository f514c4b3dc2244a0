package gormstore_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userservice/userservice/adapters/gormstore"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
	"github.com/userservice/userservice/tests/testdb"
)

// TestMain terminates the PostgreSQL container testdb may start.
func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }

func open(t *testing.T, url string) *gormstore.Store {
	t.Helper()
	s, err := gormstore.Open(t.Context(), url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// states returns the state column of MigrateStatus, one per migration.
func states(t *testing.T, s *gormstore.Store) []string {
	t.Helper()
	var out bytes.Buffer
	if err := s.MigrateStatus(t.Context(), &out); err != nil {
		t.Fatalf("MigrateStatus: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var got []string
	for _, l := range lines[1:] { // after the header
		f := strings.Fields(l)
		if len(f) != 4 || !strings.HasSuffix(f[3], ".sql") {
			t.Fatalf("MigrateStatus line %q", l)
		}
		got = append(got, f[1])
	}
	return got
}

func wantStates(t *testing.T, s *gormstore.Store, want ...string) {
	t.Helper()
	if got := states(t, s); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("migration states %v, want %v", got, want)
	}
}

func createUser(t *testing.T, s *gormstore.Store) error {
	t.Helper()
	u, err := domain.NewUser(domain.NewUserParams{
		FirstName: "Zoë", LastName: "Ølaf", Email: "zoe@example.com", Gender: "female",
	}, time.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Users().Create(t.Context(), u, domain.Operator())
	return err
}

func TestMigrateUpDownStatus(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "m.db") }},
		{"postgres", func(t *testing.T) string { return testdb.PostgresURL(t) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, c.url(t))
			ctx := t.Context()
			wantStates(t, s, "pending", "pending", "pending", "pending")
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("MigrateUp: %v", err)
			}
			wantStates(t, s, "applied", "applied", "applied", "applied")
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("MigrateUp with nothing pending: %v", err)
			}
			if err := createUser(t, s); err != nil {
				t.Fatalf("Create after MigrateUp: %v", err)
			}

			// One step down removes the import jobs, and only them.
			if err := s.MigrateDown(ctx); err != nil {
				t.Fatalf("MigrateDown: %v", err)
			}
			wantStates(t, s, "applied", "applied", "applied", "pending")
			if _, err := s.ImportJobs().Job(ctx, "any"); domain.KindOf(err) != domain.KindInternal && domain.KindOf(err) != domain.KindUnavailable {
				t.Errorf("reading import jobs with their migration rolled back: %v, want a failure", err)
			}
			if _, err := s.Users().Get(ctx, 1); err != nil {
				t.Fatalf("reading users with the import jobs rolled back: %v", err)
			}
			// The next removes the refresh tokens, and only them.
			if err := s.MigrateDown(ctx); err != nil {
				t.Fatalf("MigrateDown: %v", err)
			}
			wantStates(t, s, "applied", "applied", "pending", "pending")
			tok := ports.RefreshToken{Hash: "h", UserID: 1, FamilyID: "f", CreatedAt: time.Now(), ExpiresAt: time.Now()}
			if err := s.RefreshTokens().Save(ctx, tok); err == nil {
				t.Error("Save succeeded with the refresh_tokens migration rolled back")
			}
			for range 2 {
				if err := s.MigrateDown(ctx); err != nil {
					t.Fatalf("MigrateDown: %v", err)
				}
			}
			wantStates(t, s, "pending", "pending", "pending", "pending")
			if err := s.MigrateDown(ctx); err == nil {
				t.Error("MigrateDown with nothing applied succeeded")
			}

			// The down migrations left nothing behind that blocks going up again.
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("MigrateUp again: %v", err)
			}
			wantStates(t, s, "applied", "applied", "applied", "applied")
			if err := createUser(t, s); err != nil {
				t.Fatalf("Create after migrating down and up: %v", err)
			}
		})
	}
}

// Instances started together on one PostgreSQL all migrate: one applies
// while the others wait on goose's advisory lock, then find nothing to do.
func TestConcurrentMigrateUpOnPostgres(t *testing.T) {
	t.Parallel()
	url := testdb.PostgresURL(t)
	const instances = 4
	stores := make([]*gormstore.Store, instances)
	for i := range stores {
		stores[i] = open(t, url)
	}
	// goose's version table exists before the race, so the instances reach
	// the migrations themselves at once rather than staggered by goose's
	// retries around creating that table.
	wantStates(t, stores[0], "pending", "pending", "pending", "pending")
	start := make(chan struct{})
	errs := make([]error, instances)
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			<-start
			errs[i] = s.MigrateUp(t.Context())
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: MigrateUp: %v", i, err)
		}
	}
	wantStates(t, stores[0], "applied", "applied", "applied", "applied")
	if err := createUser(t, stores[instances-1]); err != nil {
		t.Errorf("Create after concurrent migrations: %v", err)
	}
}
