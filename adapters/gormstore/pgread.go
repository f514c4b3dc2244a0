package gormstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"

	"github.com/userservice/userservice/domain"
)

// userByIDSQL reads the columns userRecord.user needs, by primary key.
const userByIDSQL = "SELECT id, first_name, last_name, email, gender, role, ip_address, password_hash, " +
	"must_change_password, token_version, version, created_at, updated_at FROM users WHERE id = $1"

// getUserPostgres reads the user with id through pgx on a connection of the
// store's pool, without GORM and without database/sql's rows. This read is
// behind every GET /users/{id}, and under `make bench` GORM's Take (building
// the statement, reflecting over userRecord, its callbacks) and database/sql's
// Rows (a goroutine and a context per query, every value converted twice)
// cost more CPU than the round trip to PostgreSQL itself. pgx prepares the
// statement once per connection and reuses it, as it does for GORM's
// statements, and the URL's default_query_exec_mode applies the same way.
// Everything else stays with GORM. Statements are traced through GORM's
// logger as GORM's are (slow ones and unexpected failures, never values).
func (s *Store) getUserPostgres(ctx context.Context, id int64) (*domain.User, error) {
	begin := time.Now()
	var rec userRecord
	err := s.withPgx(ctx, func(c *pgx.Conn) error {
		var created, updated time.Time
		err := c.QueryRow(ctx, userByIDSQL, id).Scan(&rec.ID, &rec.FirstName, &rec.LastName, &rec.Email,
			&rec.Gender, &rec.Role, &rec.IPAddress, &rec.PasswordHash, &rec.MustChangePassword,
			&rec.TokenVersion, &rec.Version, &created, &updated)
		rec.CreatedAt, rec.UpdatedAt = dbTime{created.UTC()}, dbTime{updated.UTC()}
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		err = gorm.ErrRecordNotFound // what Take reports, for the logger and translate
	}
	s.read.Logger.Trace(ctx, begin, func() (string, int64) {
		if err != nil {
			return userByIDSQL, 0
		}
		return userByIDSQL, 1
	}, err)
	if err != nil {
		return nil, translate(ctx, err, true)
	}
	u, err := rec.user()
	if err != nil {
		return nil, translate(ctx, err, true)
	}
	return u, nil
}

// maxBadConnRetries is how many more connections withPgx tries after one
// found broken before use, as database/sql does for its own queries.
const maxBadConnRetries = 2

// withPgx runs fn with a connection of the PostgreSQL pool as pgx sees it.
// A connection found closed, or failing before anything was sent, is
// discarded and fn tried again on another one, as database/sql does with
// pgx's driver.ErrBadConn.
func (s *Store) withPgx(ctx context.Context, fn func(*pgx.Conn) error) error {
	var err error
	for range maxBadConnRetries + 1 {
		if err = s.onPgxConn(ctx, fn); !errors.Is(err, driver.ErrBadConn) {
			return err
		}
	}
	return err
}

func (s *Store) onPgxConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	conn, err := s.pg.Conn(ctx)
	if err != nil {
		return err
	}
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("gormstore: a pooled connection is a %T, not pgx's", dc)
		}
		c := sc.Conn()
		if c.IsClosed() {
			return driver.ErrBadConn
		}
		err := fn(c)
		if err != nil && ctx.Err() == nil && pgconn.SafeToRetry(err) {
			return driver.ErrBadConn
		}
		return err
	})
	// After driver.ErrBadConn, Raw has already given the connection back
	// (to be discarded) and Close reports it done: nothing to add.
	if cerr := conn.Close(); err == nil {
		err = cerr
	}
	return err
}

// rowScanner is a row as pgx and database/sql both give it.
type rowScanner interface{ Scan(dest ...any) error }

// readRows runs query (its placeholders $n, which SQLite takes too) on the
// read pool without GORM and calls row for each of its rows: for the
// change-log reads that run as often as a user is read by id. On
// PostgreSQL it goes through pgx as getUserPostgres does, on SQLite through
// database/sql; like getUserPostgres it traces through GORM's logger.
func (s *Store) readRows(ctx context.Context, query string, args []any, row func(rowScanner) error) error {
	begin := time.Now()
	var n int64
	each := func(r rowScanner) error {
		n++
		return row(r)
	}
	var err error
	if s.dialect == dialectPostgres {
		err = s.withPgx(ctx, func(c *pgx.Conn) error {
			rows, err := c.Query(ctx, query, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			return eachRow(rows, each)
		})
	} else {
		err = s.readSQL(ctx, query, args, each)
	}
	s.read.Logger.Trace(ctx, begin, func() (string, int64) { return query, n }, err)
	return translate(ctx, err, false)
}

func (s *Store) readSQL(ctx context.Context, query string, args []any, row func(rowScanner) error) error {
	db, err := s.read.DB()
	if err != nil {
		return err
	}
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return eachRow(rows, row)
}

// rowIter is pgx's rows or database/sql's.
type rowIter interface {
	rowScanner
	Next() bool
	Err() error
}

// eachRow calls row for each row of rows.
func eachRow(rows rowIter, row func(rowScanner) error) error {
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
