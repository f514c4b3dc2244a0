package gormstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/userservice/userservice/domain"
)

// The hand-written read by id is logged as GORM's statements are: slow
// ones with their SQL and never a value, a missing user not at all.
func TestGetPostgresIsTracedWithoutValues(t *testing.T) {
	t.Parallel()
	s := openPostgresForPlans(t)
	created, err := s.Users().Create(t.Context(), testUser(t, "traced.person@example.com"), domain.Operator())
	if err != nil {
		t.Fatal(err)
	}
	var logs capture
	s.read.Logger = newGormLogger(logs.logger(), time.Nanosecond) // every statement is slow
	if _, err := s.Users().Get(t.Context(), created.ID()); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "slow sql statement") || !strings.Contains(out, "FROM users WHERE id = $1") || !strings.Contains(out, "rows=1") {
		t.Errorf("the read was not logged as a slow statement with its SQL:\n%s", out)
	}
	for _, value := range []string{"id = " + strconv.FormatInt(created.ID(), 10), "traced.person", "Zoë"} {
		if strings.Contains(out, value) {
			t.Errorf("the SQL log shows the value %q:\n%s", value, out)
		}
	}

	var quiet capture
	s.read.Logger = newGormLogger(quiet.logger(), time.Hour)
	if _, err := s.Users().Get(t.Context(), 1<<60); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
	if out := quiet.String(); out != "" {
		t.Errorf("a missing user was logged:\n%s", out)
	}
}

// Connections the server ended are noticed and replaced, as database/sql
// replaces its own: once they have idled past pgx's liveness check, the
// read by id answers from a fresh connection. A read cut off by its
// deadline reports the deadline.
func TestGetPostgresSurvivesEndedConnections(t *testing.T) {
	t.Parallel()
	s := openPostgresForPlans(t)
	created, err := s.Users().Create(t.Context(), testUser(t, "survivor@example.com"), domain.Operator())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Users().Get(t.Context(), created.ID()); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(t.Context(), s.pgConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var killed int
	err = admin.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'userservice' AND datname = current_database() AND pid <> pg_backend_pid()`).Scan(&killed)
	if err != nil || killed == 0 {
		t.Fatalf("terminating the pool's connections: %d terminated, %v", killed, err)
	}
	time.Sleep(1100 * time.Millisecond)
	got, err := s.Users().Get(t.Context(), created.ID())
	if err != nil || got.ID() != created.ID() {
		t.Fatalf("Get after the server ended the pool's connections = %v, %v", got, err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if _, err := s.Users().Get(ctx, created.ID()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get past its deadline = %v, want the deadline", err)
	}
}
