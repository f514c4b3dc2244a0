-- Refresh tokens: only the SHA-256 of each token is kept. Tokens rotated from
-- one login share a family, revoked together when a spent one is replayed.

-- +goose Up
CREATE TABLE refresh_tokens (
    hash       text        NOT NULL,
    user_id    bigint      NOT NULL,
    family_id  text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    spent_at   timestamptz,
    revoked_at timestamptz,
    CONSTRAINT refresh_tokens_pkey PRIMARY KEY (hash),
    CONSTRAINT refresh_tokens_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- +goose Down
DROP TABLE refresh_tokens;
