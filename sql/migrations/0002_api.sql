-- qqueue schema, version 2: what the HTTP API needs beyond version 1.
-- Runs inside one transaction under the migration advisory lock (qqueue/migrate.py).

-- A hash of the request an Idempotency-Key was first used with. A retry with the same key and the same body
-- gets the first task back; the same key with a different body is a client error (409), never a silent replay
-- of something else. NULL for tasks queued without a key (and by plain SQL). Adding a nullable column without
-- a default rewrites nothing, so this is instant on a full table.
ALTER TABLE qqueue.tasks ADD COLUMN request_hash text CHECK (length(request_hash) <= 128);
