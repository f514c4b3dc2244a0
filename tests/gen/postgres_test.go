package gen

import (
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/userservice/userservice/adapters/gormstore"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
	"github.com/userservice/userservice/tests/testdb"
)

// TestMain terminates the PostgreSQL container testdb may start.
func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }

// TestCopyPostgres loads users into a migrated database and reads them back
// through the repository: the rows are what the service itself would store,
// the indexes are back, and new users get ids after the loaded ones.
func TestCopyPostgres(t *testing.T) {
	t.Parallel()
	url := testdb.PostgresURL(t)
	store, err := gormstore.Open(t.Context(), url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.MigrateUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	indexes := func() []string {
		rows, err := conn.Query(t.Context(), "SELECT indexdef FROM pg_indexes WHERE tablename = 'users' ORDER BY indexname")
		if err != nil {
			t.Fatal(err)
		}
		defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return defs
	}
	before := indexes()

	const n = 3000
	opts := LoadOptions{Seed: 11, N: n, FirstID: 101, PasswordHash: "$2b$10$abcdefghijklmnopqrstuuPQNJa0cG3wz3YL1C7SO4R3Cb4nBVq8W", RebuildIndexes: true}
	if _, err := CopyPostgres(t.Context(), conn, opts); err != nil {
		t.Fatal(err)
	}
	if after := indexes(); !slices.Equal(after, before) {
		t.Errorf("indexes after the load:\n%q\nwant\n%q", after, before)
	}
	got, err := store.Users().Search(t.Context(), ports.SearchQuery{Sort: domain.Sort{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d users stored, want %d", len(got), n)
	}
	g := New(11, n)
	for i, u := range got {
		want, err := g.Next().Domain(101 + int64(i))
		if err != nil {
			t.Fatal(err)
		}
		want.SetInitialPassword(opts.PasswordHash, false)
		gs, ws := u.Stored(), want.Stored()
		// Times come back in UTC from the database: compare instants.
		if !gs.CreatedAt.Equal(ws.CreatedAt) || !gs.UpdatedAt.Equal(ws.UpdatedAt) {
			t.Fatalf("user %d: times %v, %v, want %v, %v", u.ID(), gs.CreatedAt, gs.UpdatedAt, ws.CreatedAt, ws.UpdatedAt)
		}
		gs.CreatedAt, gs.UpdatedAt = ws.CreatedAt, ws.UpdatedAt
		if gs != ws {
			t.Fatalf("user %d stored as\n%+v\nwant\n%+v", u.ID(), gs, ws)
		}
	}
	created, err := store.Users().Create(t.Context(), mustUser(t, domain.NewUserParams{
		FirstName: "Next", LastName: "One", Email: "next@example.com", Gender: "female",
	}), domain.Operator())
	if err != nil {
		t.Fatal(err)
	}
	if created.ID() != 101+n {
		t.Errorf("the next user got id %d, want %d", created.ID(), 101+n)
	}
}

func mustUser(t *testing.T, p domain.NewUserParams) *domain.User {
	t.Helper()
	u, err := domain.NewUser(p, time.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		t.Fatal(err)
	}
	return u
}
