package gormstore

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
	"github.com/userservice/userservice/tests/testdb"
)

// catchUpNoise is how many entries of other users surround the one read:
// enough that reading the log in seq order would show in the plan.
const catchUpNoise = 50000

// A WebSocket catch-up by id reads one user's entries after a seq, a page
// at a time, with the log's bounds after that seq (CatchUp): the page must
// walk change_log_target_seq to that user's entries in seq order, and the
// bounds the primary key to their one row, on both dialects, never the log:
// a catch-up costs what it returns.
func TestCatchUpByIDReadsThroughTheTargetIndex(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{dialectSQLite, dialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			var s *Store
			var url string
			if dialect == dialectSQLite {
				s = openSQLite(t, t.TempDir()+"/plans.db", discard())
			} else {
				var err error
				url = testdb.PostgresURL(t)
				if s, err = Open(t.Context(), url, discard()); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				if err := s.MigrateUp(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			ctx := t.Context()
			u, err := s.Users().Create(ctx, testUser(t, "watched@example.com"), domain.Operator())
			if err != nil {
				t.Fatal(err)
			}
			// Copies of its creation under other targets: valid entries
			// of users the catch-up must not read.
			copies := `INSERT INTO change_log (at, actor_id, action, target_id, before, after)
				SELECT at, actor_id, action, target_id + g.n, before, after FROM change_log, g WHERE seq = ?`
			if dialect == dialectSQLite {
				copies = "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?) " + copies
			} else {
				copies = "WITH g(n) AS (SELECT generate_series(1, ?)) " + copies
			}
			var first int64
			if err := s.db.Raw("SELECT MIN(seq) FROM change_log").Scan(&first).Error; err != nil {
				t.Fatal(err)
			}
			if err := s.db.Exec(copies, catchUpNoise, first).Error; err != nil {
				t.Fatal(err)
			}
			ann := "Ann"
			mine, err := s.Users().Update(ctx, u.ID(), domain.Operator(), func(u *domain.User, _ domain.SuperadminCount) (domain.ChangeAction, error) {
				return domain.ActionUpdated, u.ApplyProfile(domain.ProfilePatch{FirstName: &ann}, u.UpdatedAt())
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.db.Exec("ANALYZE change_log").Error; err != nil {
				t.Fatal(err)
			}

			id := u.ID()
			got, err := s.ChangeLog().CatchUp(ctx, ports.CatchUpQuery{After: first, TargetID: &id, Limit: 500})
			if err != nil || len(got.Changes) != 1 || got.Changes[0].After.FirstName() != mine.FirstName() || got.FirstSeq != first {
				t.Fatalf("the user's entries after its creation: %+v, %v", got, err)
			}
			page := statement{catchUpSQL[true], []any{first, 500, id}}
			bounds := statement{catchUpBoundsSQL, []any{first}}
			if dialect == dialectSQLite {
				checkSQLitePlan(t, s, page, "USING INDEX change_log_target_seq (target_id=? AND seq>?)")
				checkSQLitePlan(t, s, bounds, "USING INTEGER PRIMARY KEY (rowid>?)")
				return
			}
			checkPostgresCatchUpPlan(t, url, page, "change_log_target_seq")
			checkPostgresCatchUpPlan(t, url, bounds, "change_log_pkey")
		})
	}
}

// checkSQLitePlan wants st to search change_log with search (the bounds'
// MIN shows as a bare search: SQLite reads it off the end of the primary
// key), and neither scan change_log nor sort (scanning the bounds' one row
// and the page read is no scan of the log).
func checkSQLitePlan(t *testing.T, s *Store, st statement, search string) {
	t.Helper()
	db, err := s.read.DB()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+st.sql, st.vars...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var details []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		details = append(details, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(details, "; ")
	searched := false
	for _, d := range details {
		searched = searched || strings.Contains(d, search)
		if strings.HasPrefix(d, "SCAN change_log") || strings.Contains(d, "TEMP B-TREE") {
			searched = false
			break
		}
	}
	if !searched {
		t.Errorf("the catch-up's plan on SQLite: %s; want a search %s, no scan, no sort", plan, search)
	}
}

// checkPostgresCatchUpPlan wants st, planned for its values and as the
// generic plan a prepared statement ends up with, to scan index in order
// (no sort), the primary key for the bounds, and never change_log itself.
func checkPostgresCatchUpPlan(t *testing.T, url string, st statement, index string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	check := func(kind string, plan planNode) {
		t.Helper()
		target, bad := false, false
		plan.walk(func(n planNode) {
			target = target || n.Index == index
			bad = bad || n.NodeType == "Sort" || n.NodeType == "Seq Scan" || (n.Index != "" && n.Index != index && n.Index != "change_log_pkey")
		})
		if !target || bad {
			t.Errorf("the catch-up's %s plan on PostgreSQL:\n%s\nwant ordered scans of %s (and of the primary key for the bounds) only", kind, plan, index)
		}
	}
	check("custom", explain(t, conn, st))

	params := make([]string, len(st.vars))
	args := make([]string, len(st.vars))
	for i, v := range st.vars {
		params[i], args[i] = "bigint", fmt.Sprint(v)
	}
	for _, sql := range []string{
		"PREPARE catch_up(" + strings.Join(params, ", ") + ") AS " + st.sql,
		"SET plan_cache_mode = force_generic_plan",
	} {
		if _, err := conn.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var out []struct{ Plan planNode }
	if err := conn.QueryRow(t.Context(), "EXPLAIN (FORMAT JSON) EXECUTE catch_up("+strings.Join(args, ", ")+")").Scan(&out); err != nil {
		t.Fatal(err)
	}
	check("generic", out[0].Plan)
}
