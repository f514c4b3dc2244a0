-- The version of each user: 1 when created, one more with every visible
-- write (profile, role, password, an import's merge), never with internal
-- bookkeeping (a hash upgraded at login, tokens ended). The ETag is made of
-- it. Users stored before this migration start at 1.

-- +goose Up
ALTER TABLE users ADD COLUMN version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1);

-- +goose Down
ALTER TABLE users DROP COLUMN version;
