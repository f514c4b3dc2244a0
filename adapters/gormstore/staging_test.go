package gormstore

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/userservice/userservice/domain"
)

// An import's staging tables have the columns of the tables they feed, in
// type and collation too, besides their own (line, ord): a column a later
// migration adds to users or change_log is one the import stages.
func TestImportStagingFollowsTheMigratedTables(t *testing.T) {
	t.Parallel()
	s := openPostgresForPlans(t)
	// As a later migration would.
	if err := s.db.Exec("ALTER TABLE users ADD COLUMN probe integer NOT NULL DEFAULT 0").Error; err != nil {
		t.Fatal(err)
	}
	p, err := s.beginPostgresImport(t.Context(), domain.Operator(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	columns := func(c *pgx.Conn, table string) []string {
		rows, err := c.Query(t.Context(), `SELECT attname || ' ' || format_type(atttypid, atttypmod) || ' ' ||
			COALESCE((SELECT collname FROM pg_collation WHERE oid = attcollation), '')
			FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, table)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return cols
	}
	err = raw(p.conns[0], func(c *pgx.Conn) error {
		for _, tc := range []struct{ staging, source, own string }{
			{"pg_temp.import_staging", "users", "line integer "},
			{"pg_temp.import_updates", "users", "line integer "},
			{"pg_temp.import_changes", "change_log", "ord bigint "},
		} {
			want := columns(c, tc.source)
			if tc.source == "change_log" {
				want = slices.DeleteFunc(want, func(col string) bool { return col == "seq bigint " })
			}
			want = append([]string{tc.own}, want...)
			if got := columns(c, tc.staging); !slices.Equal(got, want) {
				t.Errorf("%s has columns\n%q\nwant\n%q", tc.staging, got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
