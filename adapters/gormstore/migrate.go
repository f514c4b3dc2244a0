package gormstore

import (
	"context"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"text/tabwriter"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/userservice/userservice/domain"
)

// migrations holds the versioned SQL migrations, one directory per dialect:
// the source of truth for the schema (no AutoMigrate).
//
//go:embed migrations
var migrations embed.FS

// migrator returns a goose provider for the store's dialect. On PostgreSQL
// it holds a session advisory lock while it works, so instances starting
// together migrate one at a time: the first applies, the others wait and
// then find nothing left to do.
func (s *Store) migrator() (*goose.Provider, error) {
	fsys, err := fs.Sub(migrations, "migrations/"+s.dialect)
	if err != nil {
		return nil, fmt.Errorf("gormstore: migrations: %w", err)
	}
	opts := []goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(s.log),
	}
	dialect := goose.DialectSQLite3
	if s.dialect == dialectPostgres {
		dialect = goose.DialectPostgres
		// Poll for the lock every second for up to ten minutes.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 600))
		if err != nil {
			return nil, fmt.Errorf("gormstore: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	db, err := s.db.DB()
	if err != nil {
		return nil, fmt.Errorf("gormstore: migrations: %w", err)
	}
	p, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("gormstore: migrations: %w", err)
	}
	return p, nil
}

// migrationError names the failed operation; an unreachable database is
// domain.ErrUnavailable, as everywhere else.
func migrationError(op string, err error) error {
	err = fmt.Errorf("%s: %w", op, err)
	if unavailable(err) {
		return domain.ErrUnavailable.Wrap(err)
	}
	return fmt.Errorf("gormstore: %w", err)
}

// MigrateUp applies every pending migration.
func (s *Store) MigrateUp(ctx context.Context) error {
	return s.migrate("migrate up", func(p *goose.Provider) error {
		_, err := p.Up(ctx)
		return err
	})
}

// MigrateDown rolls back the most recently applied migration.
func (s *Store) MigrateDown(ctx context.Context) error {
	return s.migrate("migrate down", func(p *goose.Provider) error {
		_, err := p.Down(ctx)
		return err
	})
}

// migrate runs step, named what in its error, with the store's migrator.
func (s *Store) migrate(what string, step func(*goose.Provider) error) error {
	p, err := s.migrator()
	if err != nil {
		return err
	}
	if err := step(p); err != nil {
		return migrationError(what, err)
	}
	return nil
}

// MigrateStatus writes one line per known migration to w: its version,
// whether it is applied, when, and its file.
func (s *Store) MigrateStatus(ctx context.Context, w io.Writer) error {
	p, err := s.migrator()
	if err != nil {
		return err
	}
	statuses, err := p.Status(ctx)
	if err != nil {
		return migrationError("migrate status", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tMIGRATION")
	for _, st := range statuses {
		applied := "-"
		if st.State == goose.StateApplied {
			applied = st.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", st.Source.Version, st.State, applied, st.Source.Path)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("gormstore: migrate status: %w", err)
	}
	return nil
}
