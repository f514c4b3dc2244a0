-- Import jobs: CSV imports that run in the background after the request that
-- started them. heartbeat_at is refreshed while a job runs; a running job
-- whose heartbeat stopped was lost with its instance and is marked failed by
-- the next instance that looks (at start and periodically).

-- +goose Up
CREATE TABLE import_jobs (
    id           text        NOT NULL,
    actor_id     bigint      NOT NULL,
    status       text        NOT NULL,
    on_conflict  text        NOT NULL,
    dry_run      boolean     NOT NULL,
    rows_read    bigint      NOT NULL DEFAULT 0,
    imported     bigint      NOT NULL DEFAULT 0,
    updated      bigint      NOT NULL DEFAULT 0,
    skipped      bigint      NOT NULL DEFAULT 0,
    failed       bigint      NOT NULL DEFAULT 0,
    report       jsonb,
    reason       text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    finished_at  timestamptz,
    CONSTRAINT import_jobs_pkey PRIMARY KEY (id)
);

CREATE INDEX import_jobs_running ON import_jobs (status, heartbeat_at);

-- +goose Down
DROP TABLE import_jobs;
