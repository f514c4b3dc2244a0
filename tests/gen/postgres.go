package gen

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/userservice/userservice/domain"
)

// LoadOptions says what CopyPostgres loads.
type LoadOptions struct {
	Seed uint64
	N    int
	// FirstID is the id of the first user (0 counts as 1); the others
	// follow in sequence order.
	FirstID int64
	// PasswordHash is every user's stored hash; "" loads users without a
	// usable password. Hash one password once: hashing a million would take
	// hours.
	PasswordHash string
	// RebuildIndexes drops the users table's secondary indexes before the
	// COPY and builds them again after it, in the same transaction: building
	// a trigram index once is many times faster than updating it row by row.
	// The indexes that back constraints (primary key, unique email) stay.
	RebuildIndexes bool
}

// userColumns are the columns CopyPostgres writes: the users table of
// adapters/gormstore's migrations, less the columns whose defaults fit a
// new user (must_change_password, token_version).
var userColumns = []string{
	"id", "first_name", "last_name", "first_name_fold", "last_name_fold", "email",
	"gender", "role", "ip_address", "ip_key", "password_hash", "created_at", "updated_at",
}

// CopyPostgres loads opts.N users of opts.Seed into the users table of a
// database migrated by adapters/gormstore, with COPY, in one transaction;
// then it moves the id sequence past the loaded ids and runs VACUUM ANALYZE,
// so the planner knows the table and index-only scans work, as on a
// database that has been in use. It returns the time COPY (and any index
// rebuild) took. Rows are built through domain.NewUser, so they hold what
// the service itself would store.
func CopyPostgres(ctx context.Context, conn *pgx.Conn, opts LoadOptions) (time.Duration, error) {
	start := time.Now()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("gen: begin: %w", err)
	}
	defer tx.Rollback(ctx) // a no-op after Commit

	var rebuild []string
	if opts.RebuildIndexes {
		if rebuild, err = dropSecondaryIndexes(ctx, tx); err != nil {
			return 0, err
		}
	}
	first := max(opts.FirstID, 1)
	g := New(opts.Seed, opts.N)
	var genErr error
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if g.seq >= opts.N {
			return nil, nil
		}
		u := g.Next()
		// The columns as gormstore's records hold them. Generated users
		// are valid and canonical by construction (the package's tests
		// hold them to domain.NewUser), so the hot loop skips validating
		// them again: a third of the load's CPU.
		var ip, key any
		if u.IPAddress != "" {
			a, err := netip.ParseAddr(u.IPAddress)
			if err != nil {
				genErr = fmt.Errorf("gen: user %d: %w", u.Seq, err)
				return nil, genErr
			}
			k := domain.IPKey(a)
			ip, key = u.IPAddress, k[:]
		}
		return []any{
			first + int64(u.Seq), u.FirstName, u.LastName, domain.Fold(u.FirstName), domain.Fold(u.LastName), domain.Fold(u.Email),
			u.Gender, u.Role, ip, key, opts.PasswordHash, u.CreatedAt, u.CreatedAt,
		}, nil
	})
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, userColumns, src); err != nil {
		if genErr != nil {
			return 0, genErr
		}
		return 0, fmt.Errorf("gen: COPY users: %w", err)
	}
	if len(rebuild) > 0 {
		// Enough memory to sort a million keys in one pass, and a second
		// process for B-tree builds.
		for _, set := range []string{"SET LOCAL maintenance_work_mem = '256MB'", "SET LOCAL max_parallel_maintenance_workers = 2"} {
			if _, err := tx.Exec(ctx, set); err != nil {
				return 0, fmt.Errorf("gen: %w", err)
			}
		}
		for _, def := range rebuild {
			if _, err := tx.Exec(ctx, def); err != nil {
				return 0, fmt.Errorf("gen: rebuild index (%s): %w", def, err)
			}
		}
	}
	if _, err := tx.Exec(ctx, "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))"); err != nil {
		return 0, fmt.Errorf("gen: move the id sequence: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("gen: commit: %w", err)
	}
	took := time.Since(start)
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) users"); err != nil {
		return 0, fmt.Errorf("gen: VACUUM ANALYZE users: %w", err)
	}
	return took, nil
}

// dropSecondaryIndexes drops the indexes of users that back no constraint
// and returns the statements that create them again.
func dropSecondaryIndexes(ctx context.Context, tx pgx.Tx) ([]string, error) {
	rows, err := tx.Query(ctx, `
		SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
		FROM pg_index i
		WHERE i.indrelid = 'users'::regclass
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("gen: list the indexes of users: %w", err)
	}
	var names, defs []string
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			return nil, fmt.Errorf("gen: list the indexes of users: %w", err)
		}
		names, defs = append(names, name), append(defs, def)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("gen: list the indexes of users: %w", err)
	}
	for _, name := range names {
		// name is a regclass's text: already quoted where it needs to be.
		if _, err := tx.Exec(ctx, "DROP INDEX "+name); err != nil {
			return nil, fmt.Errorf("gen: drop index %s: %w", name, err)
		}
	}
	return defs, nil
}
