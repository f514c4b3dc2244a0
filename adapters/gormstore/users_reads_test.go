package gormstore

import (
	"context"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm/logger"

	"github.com/userservice/userservice/domain"
)

// statementLog is a GORM logger keeping the text of every statement run,
// through GORM or pgx (getUserPostgres traces through the same logger).
type statementLog struct {
	logger.Interface
	mu    sync.Mutex
	stmts []string
}

func (l *statementLog) LogMode(logger.LogLevel) logger.Interface { return l }

func (l *statementLog) Trace(_ context.Context, _ time.Time, fc func() (string, int64), _ error) {
	sql, _ := fc()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stmts = append(l.stmts, sql)
}

// userReads counts the statements since the last call that read users.
func (l *statementLog) userReads() (n int, stmts []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, st := range l.stmts {
		if readsUsers.MatchString(st) {
			n++
		}
	}
	stmts, l.stmts = l.stmts, nil
	return n, stmts
}

// readsUsers matches a read of users, its name quoted as either engine
// quotes it or not at all.
var readsUsers = regexp.MustCompile("(?is)^\\s*SELECT\\b.*\\bFROM\\s+[\"`]?users\\b")

// A read-modify-write (PUT /users/{id}'s reads: the user once, then
// locked) reads the row twice: Update reads it once, locked, and returns
// what it wrote, its version bumped, without reading it back.
func TestGetThenUpdateReadTheRowTwice(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(*testing.T) *Store{
		"sqlite":   func(t *testing.T) *Store { return openSQLite(t, filepath.Join(t.TempDir(), "reads.db"), discard()) },
		"postgres": openPostgresForPlans,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			created, err := s.Users().Create(t.Context(), testUser(t, "counted@example.com"), domain.Operator())
			if err != nil {
				t.Fatal(err)
			}
			log := &statementLog{Interface: s.db.Logger}
			s.db.Logger, s.read.Logger = log, log

			got, err := s.Users().Get(t.Context(), created.ID())
			if err != nil {
				t.Fatal(err)
			}
			first := "Counted"
			updated, err := s.Users().Update(t.Context(), got.ID(), domain.Operator(), func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
				return domain.ActionUpdated, u.ApplyProfile(domain.ProfilePatch{FirstName: &first}, time.Now().UTC())
			})
			if err != nil {
				t.Fatal(err)
			}
			if n, stmts := log.userReads(); n != 2 {
				t.Errorf("%d reads of users, want 2; statements:\n%q", n, stmts)
			}
			if updated.Version() != created.Version()+1 || updated.FirstName() != first {
				t.Errorf("Update returned version %d, first name %q", updated.Version(), updated.FirstName())
			}
		})
	}
}
