package gormstore_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
			n := len(states(t, s))
			if n < 3 {
				t.Fatalf("%d migrations, want at least users, change log and refresh tokens", n)
			}
			all := func(state string) []string { return slices.Repeat([]string{state}, n) }
			wantStates(t, s, all("pending")...)
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("MigrateUp: %v", err)
			}
			wantStates(t, s, all("applied")...)
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("MigrateUp with nothing pending: %v", err)
			}
			if err := createUser(t, s); err != nil {
				t.Fatalf("Create after MigrateUp: %v", err)
			}

			// Steps down to the third remove the refresh tokens, and
			// only what came after the change log.
			for range n - 2 {
				if err := s.MigrateDown(ctx); err != nil {
					t.Fatalf("MigrateDown: %v", err)
				}
			}
			wantStates(t, s, append([]string{"applied", "applied"}, all("pending")[2:]...)...)
			tok := ports.RefreshToken{Hash: "h", UserID: 1, FamilyID: "f", CreatedAt: time.Now(), ExpiresAt: time.Now()}
			if err := s.RefreshTokens().Save(ctx, tok); err == nil {
				t.Error("Save succeeded with the refresh_tokens migration rolled back")
			}
			for range 2 {
				if err := s.MigrateDown(ctx); err != nil {
					t.Fatalf("MigrateDown: %v", err)
				}
			}
			wantStates(t, s, all("pending")...)
			if err := s.MigrateDown(ctx); err == nil {
				t.Error("MigrateDown with nothing applied succeeded")
			}

			// The down migrations left nothing behind that blocks going up again.
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("MigrateUp again: %v", err)
			}
			wantStates(t, s, all("applied")...)
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
	n := len(states(t, stores[0]))
	wantStates(t, stores[0], slices.Repeat([]string{"pending"}, n)...)
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
	wantStates(t, stores[0], slices.Repeat([]string{"applied"}, n)...)
	if err := createUser(t, stores[instances-1]); err != nil {
		t.Errorf("Create after concurrent migrations: %v", err)
	}
}

// Users stored before 00008_user_version are carried over at version 1,
// whatever version they had reached (here: down past it and up again), and
// count on from there.
func TestUserVersionMigrationStartsStoredUsersAtOne(t *testing.T) {
	t.Parallel()
	onEachImportBackend(t, func(t *testing.T, s *gormstore.Store) {
		ctx := t.Context()
		u := create(t, s, 1)
		first := "Renamed"
		rename := func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
			return domain.ActionUpdated, u.ApplyProfile(domain.ProfilePatch{FirstName: &first}, time.Now().UTC())
		}
		renameAt := func(want int64) {
			t.Helper()
			got, err := s.Users().Update(ctx, u.ID(), domain.Operator(), rename)
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if got.Version() != want {
				t.Fatalf("Update made version %d, want %d", got.Version(), want)
			}
		}
		renameAt(2)
		var out bytes.Buffer
		if err := s.MigrateStatus(ctx, &out); err != nil {
			t.Fatal(err)
		}
		// Down to before 00008 (and any migration after it), then up.
		steps := 0
		for l := range strings.Lines(out.String()) {
			if f := strings.Fields(l); len(f) == 4 && f[3] >= "00008_user_version.sql" {
				steps++
			}
		}
		if steps == 0 {
			t.Fatalf("no migration 00008_user_version in\n%s", out.String())
		}
		for range steps {
			if err := s.MigrateDown(ctx); err != nil {
				t.Fatalf("MigrateDown: %v", err)
			}
		}
		if err := s.MigrateUp(ctx); err != nil {
			t.Fatalf("MigrateUp: %v", err)
		}
		got, err := s.Users().Get(ctx, u.ID())
		if err != nil {
			t.Fatal(err)
		}
		if got.Version() != 1 || got.FirstName() != first {
			t.Fatalf("after the migration: %+v; want version 1", got.Stored())
		}
		first = "Again"
		renameAt(2)
	})
}
