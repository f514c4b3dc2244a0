-- Retired user ids: the id of every deleted user, written in the deletion's
-- own transaction, so that no later account is ever given it (an import may
-- ask for an explicit id; the id sequence is already moved past every id
-- used). A token names its account by id: an id never handed out twice
-- means a deleted account's token never authenticates anyone. Ids deleted
-- before this migration are taken from the change log, as far back as it
-- reaches.

-- +goose Up
CREATE TABLE retired_user_ids (
    id bigint NOT NULL,
    CONSTRAINT retired_user_ids_pkey PRIMARY KEY (id)
);

INSERT INTO retired_user_ids (id)
SELECT DISTINCT target_id FROM change_log
WHERE action = 'deleted' AND target_id NOT IN (SELECT id FROM users);

-- +goose Down
DROP TABLE retired_user_ids;
