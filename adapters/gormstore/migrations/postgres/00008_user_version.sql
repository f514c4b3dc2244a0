-- The version of each user: 1 when created, one more with every visible
-- write (profile, role, password, an import's merge), never with internal
-- bookkeeping (a hash upgraded at login, tokens ended). The ETag is made of
-- it. Users stored before this migration start at 1; a constant default
-- adds the column without rewriting the table.

-- +goose Up
ALTER TABLE users ADD COLUMN version bigint NOT NULL DEFAULT 1
    CONSTRAINT users_version_check CHECK (version >= 1);

-- +goose Down
ALTER TABLE users DROP COLUMN version;
