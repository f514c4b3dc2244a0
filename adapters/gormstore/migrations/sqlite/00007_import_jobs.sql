-- Import jobs: CSV imports that run in the background after the request that
-- started them. heartbeat_at is refreshed while a job runs; a running job
-- whose heartbeat stopped was lost with its instance and is marked failed by
-- the next instance that looks (at start and periodically).

-- +goose Up
CREATE TABLE import_jobs (
    id           TEXT    NOT NULL PRIMARY KEY,
    actor_id     INTEGER NOT NULL,
    status       TEXT    NOT NULL,
    on_conflict  TEXT    NOT NULL,
    dry_run      INTEGER NOT NULL,
    rows_read    INTEGER NOT NULL DEFAULT 0,
    imported     INTEGER NOT NULL DEFAULT 0,
    updated      INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    report       TEXT,
    reason       TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    finished_at  INTEGER
) STRICT;

CREATE INDEX import_jobs_running ON import_jobs (status, heartbeat_at);

-- +goose Down
DROP TABLE import_jobs;
