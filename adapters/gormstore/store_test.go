package gormstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openSQLite opens a migrated store on a new SQLite file.
func openSQLite(t *testing.T, path string, log *slog.Logger) *Store {
	t.Helper()
	s, err := Open(t.Context(), "sqlite:"+path, log)
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

func testUser(t *testing.T, email string) *domain.User {
	t.Helper()
	u, err := domain.NewUser(domain.NewUserParams{
		FirstName: "Zoë", LastName: "Łukasz", Email: email, Gender: "Female", IPAddress: "10.0.0.1",
	}, time.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestOpenSQLiteAtAnyPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, prefix := range []string{"sqlite:", "file:"} {
		path := filepath.Join(dir, prefix[:4]+" odd?name#50%.db")
		s, err := Open(t.Context(), prefix+path, discard())
		if err != nil {
			t.Fatalf("Open(%s%s): %v", prefix, path, err)
		}
		if s.Dialect() != "sqlite" {
			t.Errorf("Dialect() = %q", s.Dialect())
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s%s: no database file at the path: %v", prefix, path, err)
		}
	}
}

// Not parallel: it changes the working directory.
func TestOpenEmptyURLIsTheEmbeddedDatabase(t *testing.T) {
	t.Chdir(t.TempDir())
	s, err := Open(t.Context(), "", discard())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("userservice.db"); err != nil {
		t.Errorf("no userservice.db in the working directory: %v", err)
	}
}

func TestOpenRefusesOtherURLsWithoutEchoingThem(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"mysql://root:hunter2@db/users", "hunter2", "sqlite:", "postgres://app:hunter2@db:port/users"} {
		_, err := Open(t.Context(), u, discard())
		if err == nil {
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q) error repeats the URL: %v", u, err)
		}
	}
}

func TestOpenUnreachablePostgresIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens, the connection is refused.
	_, err := Open(ctx, "postgres://app:hunter2@127.0.0.1:1/users?connect_timeout=5", discard())
	if !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("Open(unreachable) = %v, want ErrUnavailable", err)
	}
	if err != nil && strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestSQLiteConnectionSettings(t *testing.T) {
	t.Parallel()
	s := openSQLite(t, filepath.Join(t.TempDir(), "settings.db"), discard())
	for _, c := range []struct {
		pool   string
		pragma string
		want   string
	}{
		{"writer", "journal_mode", "wal"},
		{"writer", "foreign_keys", "1"},
		{"writer", "busy_timeout", "10000"},
		{"reader", "foreign_keys", "1"},
		{"reader", "query_only", "1"},
		{"reader", "busy_timeout", "10000"},
	} {
		db := s.db
		if c.pool == "reader" {
			db = s.read
		}
		var got string
		if err := db.WithContext(t.Context()).Raw("PRAGMA " + c.pragma).Row().Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", c.pragma, err)
		}
		if got != c.want {
			t.Errorf("%s: PRAGMA %s = %s, want %s", c.pool, c.pragma, got, c.want)
		}
	}
}

// Two stores on one file stand for the server and a command-line import
// running at once: their writers contend for SQLite's write lock, and none
// may fail with SQLITE_BUSY.
func TestSQLiteConcurrentWritersAcrossStores(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	stores := []*Store{openSQLite(t, path, discard()), openSQLite(t, path, discard())}
	const perStore, writers = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, len(stores)*perStore*writers)
	for si, s := range stores {
		for w := range perStore {
			wg.Go(func() {
				for i := range writers {
					email := fmt.Sprintf("s%dw%di%d@example.com", si, w, i)
					if _, err := s.Users().Create(t.Context(), testUser(t, email), domain.Operator()); err != nil {
						errs <- err
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent create: %v", err)
	}
	n, _, err := stores[1].Users().Count(t.Context(), domain.Filter{}, 0)
	if want := int64(len(stores) * perStore * writers); err != nil || n != want {
		t.Errorf("Count = %d, %v; want %d", n, err, want)
	}
}

// capture is a slog handler that keeps every record's text.
type capture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *capture) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestSQLLogNeverShowsValues(t *testing.T) {
	t.Parallel()
	var logs capture
	s := openSQLite(t, filepath.Join(t.TempDir(), "log.db"), discard())
	// Every statement counts as slow, so every statement is logged.
	slowLog := newGormLogger(logs.logger(), time.Nanosecond)
	s.db.Logger, s.read.Logger = slowLog, slowLog

	const hash = "$argon2id$v=19$m=19456,t=2,p=1$U0VDUkVUU0FMVA$U0VDUkVUSEFTSA"
	u := testUser(t, "secret.person@example.com")
	u.SetInitialPassword(hash, false)
	created, err := s.Users().Create(t.Context(), u, domain.Operator())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Users().GetByEmail(t.Context(), created.Email()); err != nil {
		t.Fatal(err)
	}
	_, err = s.Users().Create(t.Context(), testUser(t, "secret.person@example.com"), domain.Operator())
	if !errors.Is(err, domain.ErrEmailTaken) {
		t.Fatalf("duplicate Create = %v", err)
	}
	// Every other kind of statement, with values worth hiding.
	email := "other.secret@example.com"
	ctx := t.Context()
	if _, err := s.Users().Update(ctx, created.ID(), domain.Operator(),
		func(u *domain.User, count domain.SuperadminCount) (domain.ChangeAction, error) {
			if _, err := count(); err != nil {
				return "", err
			}
			u.SetPasswordHash(hash+"2", time.Now())
			return domain.ActionUpdated, u.ApplyProfile(domain.ProfilePatch{Email: &email}, time.Now())
		}); err != nil {
		t.Fatal(err)
	}
	f, err := domain.ParseFilter(domain.FilterParams{Email: "secret", FirstName: "zoë", IPAddress: "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	if us, err := s.Users().Search(ctx, ports.SearchQuery{Filter: f, Limit: 5}); err != nil || len(us) != 1 {
		t.Fatalf("Search = %v, %v", us, err)
	}
	if _, _, err := s.Users().Count(ctx, f, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChangeLog().Audit(ctx, ports.AuditQuery{Since: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	token := ports.RefreshToken{Hash: "tokenhash-secret", UserID: created.ID(), FamilyID: "family-secret",
		CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.RefreshTokens().Save(ctx, token); err != nil {
		t.Fatal(err)
	}
	token.Hash = "nexthash-secret"
	if _, _, err := s.RefreshTokens().Rotate(ctx, "tokenhash-secret", token, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Users().Delete(ctx, created.ID(), domain.Operator(), nil); err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	for _, stmt := range []string{"INSERT INTO", "UPDATE", "DELETE FROM", "instr(", "seq"} {
		if !strings.Contains(out, stmt) {
			t.Errorf("no slow statement with %q was logged:\n%s", stmt, out)
		}
	}
	for _, secret := range []string{hash, "U0VDUkVUSEFTSA", "secret.person", "other.secret", "Zoë", "zoë", "-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("the SQL log shows the value %q:\n%s", secret, out)
		}
	}
	if strings.Contains(out, "sql statement failed") {
		t.Errorf("a routine conflict was logged as a failure:\n%s", out)
	}
}

func TestSQLLogReportsUnexpectedFailures(t *testing.T) {
	t.Parallel()
	var logs capture
	s := openSQLite(t, filepath.Join(t.TempDir(), "fail.db"), discard())
	s.read.Logger = newGormLogger(logs.logger(), time.Hour)
	rows, err := s.read.WithContext(t.Context()).Raw("SELECT count(*) FROM no_such_table WHERE x = ?", "value-xyz").Rows()
	if err == nil {
		_ = rows.Close()
		t.Fatal("query of a missing table succeeded")
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "no_such_table") {
		t.Errorf("the failure was not logged at warn with its SQL:\n%s", out)
	}
	if strings.Contains(out, "value-xyz") {
		t.Errorf("the failure log shows a parameter value:\n%s", out)
	}
}

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

func TestChangeLogEntriesTakeTheClocksTime(t *testing.T) {
	t.Parallel()
	at := time.Date(2030, 1, 2, 3, 4, 5, 678901000, time.UTC)
	s, err := Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "clock.db"), discard(), WithClock(fixedClock(at)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.MigrateUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Users().Create(t.Context(), testUser(t, "clock@example.com"), domain.Operator()); err != nil {
		t.Fatal(err)
	}
	cs, err := s.ChangeLog().ChangesAfter(t.Context(), 0, 0)
	if err != nil || len(cs) != 1 || !cs[0].At.Equal(at) {
		t.Fatalf("ChangesAfter = %+v, %v; want one entry at %v", cs, err, at)
	}
}

// Change-log entries written before the snapshot was ports.UserView left
// ip_address out when unset; they still read, as a user without one, and a
// snapshot written now reads back as the same view.
func TestSnapshotsOldAndNew(t *testing.T) {
	t.Parallel()
	old := `{"id":3,"first_name":"A","last_name":"B","email":"a@b.co","gender":"Male","role":"user",` +
		`"created_at":"2024-03-01T12:30:45.123456Z","updated_at":"2024-03-01T12:30:46Z"}`
	u, err := decodeSnapshot(&old)
	if err != nil {
		t.Fatalf("decode an old snapshot: %v", err)
	}
	if u.IP().IsValid() || u.ID() != 3 || u.Email().String() != "a@b.co" || !u.UpdatedAt().Equal(time.Date(2024, 3, 1, 12, 30, 46, 0, time.UTC)) {
		t.Errorf("old snapshot read as %+v", u.Stored())
	}
	text, err := encodeSnapshot(u)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(*text, `"ip_address":null`) {
		t.Errorf("a snapshot without an address: %s", *text)
	}
	again, err := decodeSnapshot(text)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ports.ViewOf(again), ports.ViewOf(u); !reflect.DeepEqual(got, want) {
		t.Errorf("round trip %+v, want %+v", got, want)
	}
}
