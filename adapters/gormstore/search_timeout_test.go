package gormstore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
	"github.com/userservice/userservice/tests/testdb"
)

// openWithSearchTimeout opens a migrated store at url whose searches time
// out after d, holding one user.
func openWithSearchTimeout(t *testing.T, url string, d time.Duration) *Store {
	t.Helper()
	s, err := Open(t.Context(), url, discard(), WithSearchTimeout(d))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.MigrateUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Users().Create(t.Context(), testUser(t, "a@example.com"), domain.Operator()); err != nil {
		t.Fatal(err)
	}
	return s
}

func isSearchTimeout(err error) bool {
	de := domain.AsError(err)
	return errors.Is(err, errSearchTimeout) && de.Kind == domain.KindUnavailable
}

// On PostgreSQL a search's statements run under SET LOCAL
// statement_timeout: a statement on the search's connection that would
// sleep for a minute, sent without any client-side deadline (so only the
// server can end it), is stopped, and the search and the count fail with
// search_timeout.
func TestSearchTimeoutPostgres(t *testing.T) {
	t.Parallel()
	s := openWithSearchTimeout(t, testdb.PostgresURL(t), 300*time.Millisecond)
	if users, err := s.Users().Search(t.Context(), ports.SearchQuery{Limit: 10}); err != nil || len(users) != 1 {
		t.Fatalf("a quick search: %d users, %v", len(users), err)
	}
	err := s.read.Callback().Query().Before("gorm:query").Register("test:sleep", func(db *gorm.DB) {
		_, err := db.Statement.ConnPool.ExecContext(context.WithoutCancel(db.Statement.Context), "SELECT pg_sleep(60)")
		if err != nil {
			_ = db.AddError(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := s.Users().Search(t.Context(), ports.SearchQuery{Limit: 10}); !isSearchTimeout(err) {
		t.Fatalf("a search with a statement sleeping for a minute: %v, want search_timeout", err)
	}
	if _, _, err := s.Users().Count(t.Context(), domain.Filter{}, 100); !isSearchTimeout(err) {
		t.Fatalf("a count with a statement sleeping for a minute: %v, want search_timeout", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("the sleeping statements ran %v", d)
	}
}

// On SQLite the search's own statement checks the deadline row by row: a
// search scanning and sorting 100,000 rows under a 5 ms timeout fails with
// search_timeout (the driver alone would let it run to the end), while the
// same search with room to finish answers.
func TestSearchTimeoutSQLite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.db")
	s := openWithSearchTimeout(t, "sqlite:"+path, 5*time.Millisecond)
	err := s.db.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
		INSERT INTO users (first_name, last_name, first_name_fold, last_name_fold, email, gender, role, created_at, updated_at)
		SELECT 'F', 'L' || (i * 7919 % 100000), 'f', 'l' || (i * 7919 % 100000), 'u' || i || '@example.com', 'Female', 'user', i, i FROM n`).Error
	if err != nil {
		t.Fatal(err)
	}
	// Matches the one user of openWithSearchTimeout (Zoë), none of the others.
	f, err := domain.ParseFilter(domain.FilterParams{FirstName: "zo"})
	if err != nil {
		t.Fatal(err)
	}
	// No index serves the filter: every row is read.
	q := ports.SearchQuery{Filter: f, Sort: domain.Sort{Field: domain.SortCreatedAt, Desc: true}, Limit: 100}
	start := time.Now()
	_, err = s.Users().Search(t.Context(), q)
	t.Logf("search: %v after %v", err, time.Since(start))
	if !isSearchTimeout(err) {
		t.Fatalf("a search over 100,000 rows with a 5ms timeout: %v after %v, want search_timeout", err, time.Since(start))
	}
	if _, _, err := s.Users().Count(t.Context(), f, 0); !isSearchTimeout(err) {
		t.Fatalf("a count of 100,000 rows with a 5ms timeout: %v, want search_timeout", err)
	}
	roomy := openWithSearchTimeout(t, "sqlite:"+filepath.Join(t.TempDir(), "u.db"), time.Minute)
	if users, err := roomy.Users().Search(t.Context(), ports.SearchQuery{Filter: f, Limit: 10}); err != nil || len(users) != 1 {
		t.Fatalf("a search with room to finish: %d users, %v", len(users), err)
	}
}
