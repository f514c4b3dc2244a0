-- Users. Folded copies of the names (domain.Fold) serve case-insensitive
-- substring search (instr, since SQLite's LIKE folds ASCII only) and the
-- last_name order; email is stored folded, so UNIQUE is case-insensitive.
-- Text compares with BINARY collation: byte order, as in Go. Times are
-- integer Unix microseconds (UTC): exact round trips and numeric ordering.
-- STRICT makes a value of the wrong type an error instead of a silent cast.

-- +goose Up
CREATE TABLE users (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    first_name           TEXT    NOT NULL,
    last_name            TEXT    NOT NULL,
    first_name_fold      TEXT    NOT NULL,
    last_name_fold       TEXT    NOT NULL,
    email                TEXT    NOT NULL UNIQUE,
    gender               TEXT    NOT NULL,
    role                 TEXT    NOT NULL CHECK (role IN ('user', 'admin', 'superadmin')),
    ip_address           TEXT,
    ip_key               BLOB    CHECK (length(ip_key) = 16),
    password_hash        TEXT    NOT NULL DEFAULT '',
    must_change_password INTEGER NOT NULL DEFAULT 0,
    token_version        INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    CHECK ((ip_address IS NULL) = (ip_key IS NULL))
) STRICT;

CREATE INDEX users_email_id ON users (email, id);
CREATE INDEX users_last_name_id ON users (last_name_fold, id);
CREATE INDEX users_created_at_id ON users (created_at, id);
CREATE INDEX users_ip_key ON users (ip_key);
CREATE INDEX users_role ON users (role);
CREATE INDEX users_gender ON users (gender);

-- +goose Down
DROP TABLE users;
