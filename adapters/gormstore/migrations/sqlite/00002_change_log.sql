-- The change log (outbox): one row per committed write, in the write's own
-- transaction. SQLite has one writer at a time, so seq follows commit order;
-- AUTOINCREMENT never reuses a seq, even after old rows are pruned.

-- +goose Up
CREATE TABLE change_log (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    actor_id  INTEGER NOT NULL,
    action    TEXT    NOT NULL,
    target_id INTEGER NOT NULL,
    before    TEXT,
    after     TEXT
) STRICT;

CREATE INDEX change_log_target_seq ON change_log (target_id, seq);
CREATE INDEX change_log_actor_seq ON change_log (actor_id, seq);
CREATE INDEX change_log_at ON change_log (at);

-- +goose Down
DROP TABLE change_log;
