-- The change log (outbox): one row per committed write, in the write's own
-- transaction. The repository takes an advisory lock before each append and
-- holds it to commit, so seq grows in commit order.

-- +goose Up
CREATE TABLE change_log (
    seq       bigint GENERATED ALWAYS AS IDENTITY,
    at        timestamptz NOT NULL,
    actor_id  bigint      NOT NULL,
    action    text        NOT NULL,
    target_id bigint      NOT NULL,
    before    jsonb,
    after     jsonb,
    CONSTRAINT change_log_pkey PRIMARY KEY (seq)
);

-- Audit filters, each served in seq order.
CREATE INDEX change_log_target_seq ON change_log (target_id, seq);
CREATE INDEX change_log_actor_seq ON change_log (actor_id, seq);
CREATE INDEX change_log_at ON change_log (at);

-- +goose Down
DROP TABLE change_log;
