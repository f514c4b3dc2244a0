package contract

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/userservice/userservice/adapters/gormstore"
	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
	"github.com/userservice/userservice/tests/testdb"
)

// repos are the driven ports of one storage implementation.
type repos struct {
	users   ports.UserRepository
	changes ports.ChangeLog
	tokens  ports.RefreshTokenStore
}

// implementation opens a fresh, migrated, empty instance of one storage
// implementation for t; it is closed when t ends.
type implementation struct {
	name string
	open func(t *testing.T) repos
}

func implementations() []implementation {
	return []implementation{
		{"sqlite", func(t *testing.T) repos {
			return openGormstore(t, "sqlite:"+filepath.Join(t.TempDir(), "contract.db"))
		}},
		{"postgres", func(t *testing.T) repos {
			return openGormstore(t, testdb.PostgresURL(t))
		}},
	}
}

func openGormstore(t *testing.T, url string) repos {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := gormstore.Open(t.Context(), url, log)
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
	return repos{users: s.Users(), changes: s.ChangeLog(), tokens: s.RefreshTokens()}
}

// now is the time as ports.Clock gives it: UTC, whole microseconds.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// tag returns random lowercase letters that make a case's names and emails
// its own, so cases share a database without seeing each other's rows.
func tag() string {
	var b strings.Builder
	for range 12 {
		b.WriteByte(byte('a' + rand.IntN(26)))
	}
	return b.String()
}

// params returns valid input for a new user whose email is unique to t.
func params(tg string, n int) domain.NewUserParams {
	return domain.NewUserParams{
		FirstName: "Zoë", LastName: "O'Brien-" + tg, Email: tg + "." + strconv.Itoa(n) + "@example.com",
		Gender: "female", IPAddress: "10.1.2.3",
	}
}

func newUser(t *testing.T, p domain.NewUserParams, at time.Time) *domain.User {
	t.Helper()
	u, err := domain.NewUser(p, at)
	if err != nil {
		t.Fatalf("NewUser(%+v): %v", p, err)
	}
	return u
}

func create(t *testing.T, r repos, p domain.NewUserParams) *domain.User {
	t.Helper()
	u, err := r.users.Create(t.Context(), newUser(t, p, now()), domain.Operator())
	if err != nil {
		t.Fatalf("Create(%s): %v", p.Email, err)
	}
	return u
}

// sameUser fails t unless got and want hold the same stored state, times
// as the same instants, read back in UTC.
func sameUser(t *testing.T, what string, got, want *domain.User) {
	t.Helper()
	if got == nil || want == nil {
		if got != want {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
		return
	}
	g, w := got.Stored(), want.Stored()
	if g.CreatedAt.Location() != time.UTC || g.UpdatedAt.Location() != time.UTC {
		t.Errorf("%s: times not in UTC: %v, %v", what, g.CreatedAt, g.UpdatedAt)
	}
	if !g.CreatedAt.Equal(w.CreatedAt) || !g.UpdatedAt.Equal(w.UpdatedAt) {
		t.Errorf("%s: times %v, %v; want %v, %v", what, g.CreatedAt, g.UpdatedAt, w.CreatedAt, w.UpdatedAt)
	}
	g.CreatedAt, g.UpdatedAt = w.CreatedAt, w.UpdatedAt
	if g != w {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// public returns u as the change log shows it: public fields only.
func public(u *domain.User) *domain.User {
	if u == nil {
		return nil
	}
	s := u.Stored()
	s.PasswordHash, s.MustChangePassword, s.TokenVersion, s.Version = "", false, 0, 0
	p, err := domain.RestoreUser(s)
	if err != nil {
		panic(err)
	}
	return p
}

// auditOf returns the change-log entries of one user.
func auditOf(t *testing.T, r repos, id int64) []domain.Change {
	t.Helper()
	cs, err := r.changes.Audit(t.Context(), ports.AuditQuery{TargetID: &id})
	if err != nil {
		t.Fatalf("Audit(target %d): %v", id, err)
	}
	return cs
}

// wantErr fails t unless err is target (errors.Is).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want %v", what, err, target)
	}
}
