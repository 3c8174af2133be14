-- qqueue schema, version 1: tasks, their status history, workers, and views for operators.
-- Runs inside one transaction under the migration advisory lock (qqueue/migrate.py).
-- Works on PostgreSQL 13 and newer (gen_random_uuid is core since 13).

CREATE SCHEMA IF NOT EXISTS qqueue;

CREATE TYPE qqueue.task_status AS ENUM ('pending', 'running', 'completed', 'failed', 'cancelled');

-- Time-ordered UUIDs (RFC 9562 version 7) so ids sort by creation and the primary-key index is appended to,
-- not written at random pages. PostgreSQL 18 has uuidv7(); this one also runs on older servers.
CREATE FUNCTION qqueue.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1), 'hex')::uuid
$$;

CREATE TABLE qqueue.workers (
    id            uuid PRIMARY KEY,
    hostname      text        NOT NULL,
    pid           integer     NOT NULL,
    queues        text[]      NOT NULL,
    concurrency   integer     NOT NULL CHECK (concurrency > 0),
    version       text        NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    -- set when the worker shuts down cleanly; a worker with neither this nor a recent heartbeat died.
    stopped_at    timestamptz
);

CREATE TABLE qqueue.tasks (
    id                  uuid        PRIMARY KEY DEFAULT qqueue.uuid_v7(),
    queue               text        NOT NULL DEFAULT 'default'
                                    CHECK (queue ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    kind                text        NOT NULL DEFAULT 'simulate'
                                    CHECK (kind ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    status              qqueue.task_status NOT NULL DEFAULT 'pending',
    priority            smallint    NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
    payload             jsonb       NOT NULL DEFAULT '{}',
    -- what intake measured of the circuit (qubits, depth, memory...), for operators and limits.
    profile             jsonb,
    result              jsonb,
    -- {"type": ..., "message": ..., "retryable": bool} of the latest failure; kept on retry so users see why.
    error               jsonb       CHECK (error IS NULL OR (error ? 'message' AND error ? 'type')),
    -- execution facts reported by the worker (slot start time, execution seconds), not part of the result.
    timings             jsonb,
    attempt             integer     NOT NULL DEFAULT 0,
    max_attempts        integer     NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    run_at              timestamptz NOT NULL DEFAULT now(),
    lease_expires_at    timestamptz,
    worker_id           uuid,
    timeout_s           double precision CHECK (timeout_s IS NULL OR (timeout_s > 0 AND timeout_s <= 86400)),
    cancel_requested_at timestamptz,
    idempotency_key     text        UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    correlation_id      text        CHECK (length(correlation_id) <= 255),
    tags                text[]      NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 32),
    metadata            jsonb       NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (attempt >= 0 AND attempt <= max_attempts),
    -- a running task always has an owner and a lease; only running tasks hold a lease.
    -- worker_id stays after the run so the row still says who ran it last.
    CHECK ((status = 'running') = (lease_expires_at IS NOT NULL)),
    CHECK (status <> 'running' OR worker_id IS NOT NULL),
    CHECK ((status IN ('completed', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CHECK (status <> 'completed' OR error IS NULL)
);

-- The claim reads only this index: its size tracks the backlog, not the history, so claim cost stays flat
-- however many finished rows the table holds.
CREATE INDEX tasks_pending_claim_idx ON qqueue.tasks (queue, priority DESC, run_at, id)
    WHERE status = 'pending';
-- Lease reclaim scans only running rows.
CREATE INDEX tasks_running_lease_idx ON qqueue.tasks (lease_expires_at) WHERE status = 'running';
-- Purge and "recently finished" statistics.
CREATE INDEX tasks_finished_idx ON qqueue.tasks (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX tasks_created_idx ON qqueue.tasks (created_at, id);
CREATE INDEX tasks_tags_idx ON qqueue.tasks USING gin (tags);

-- A queue table is updated on every claim and completion: leave room on each page so updates stay HOT,
-- and vacuum far more eagerly than the defaults (which wait for 20% of the table to be dead).
ALTER TABLE qqueue.tasks SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);

-- Append-only: one row per status change, written by the same statement as the change.
CREATE TABLE qqueue.task_events (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id   uuid        NOT NULL REFERENCES qqueue.tasks (id) ON DELETE CASCADE,
    status    qqueue.task_status NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    attempt   integer     NOT NULL,
    worker_id uuid,
    note      text
);
CREATE INDEX task_events_task_idx ON qqueue.task_events (task_id, id);

CREATE FUNCTION qqueue.task_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Deletes cascade from purged tasks; history is never edited in place.
    RAISE EXCEPTION 'qqueue.task_events is append-only';
END
$$;
CREATE TRIGGER task_events_no_update BEFORE UPDATE ON qqueue.task_events
    FOR EACH STATEMENT EXECUTE FUNCTION qqueue.task_events_append_only();

-- Tasks may be inserted by plain SQL as well as by qqueue itself, so intake bookkeeping lives in a trigger:
-- one statement-level call per INSERT writes every 'pending' history row and one NOTIFY per queue touched,
-- never one per row (Postgres serialises commits that carry notifications).
CREATE FUNCTION qqueue.tasks_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    q text;
BEGIN
    INSERT INTO qqueue.task_events (task_id, status, at, attempt, note)
    SELECT id, status, created_at, attempt, 'submitted' FROM new_tasks;
    FOR q IN SELECT DISTINCT queue FROM new_tasks WHERE status = 'pending' LOOP
        PERFORM pg_notify('qqueue_tasks_v1', q);
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_after_insert AFTER INSERT ON qqueue.tasks
    REFERENCING NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION qqueue.tasks_after_insert();

-- Operators' views: answer "what is stuck, what failed and why, who is working" from psql.

CREATE VIEW qqueue.queue_stats AS
SELECT
    queue,
    count(*) FILTER (WHERE status = 'pending')                          AS pending,
    count(*) FILTER (WHERE status = 'pending' AND run_at <= now())      AS due,
    count(*) FILTER (WHERE status = 'running')                          AS running,
    count(*) FILTER (WHERE status = 'completed')                        AS completed,
    count(*) FILTER (WHERE status = 'failed')                           AS failed,
    count(*) FILTER (WHERE status = 'cancelled')                        AS cancelled,
    now() - min(run_at) FILTER (WHERE status = 'pending' AND run_at <= now()) AS oldest_due_age,
    count(*) FILTER (WHERE status = 'completed' AND finished_at > now() - interval '1 minute')
                                                                        AS completed_last_minute,
    count(*) FILTER (WHERE status = 'failed' AND finished_at > now() - interval '1 minute')
                                                                        AS failed_last_minute
FROM qqueue.tasks
GROUP BY queue;

CREATE VIEW qqueue.live_workers AS
SELECT
    w.id, w.hostname, w.pid, w.queues, w.concurrency, w.version, w.started_at, w.heartbeat_at,
    now() - w.heartbeat_at AS heartbeat_age,
    (SELECT count(*) FROM qqueue.tasks t WHERE t.worker_id = w.id AND t.status = 'running') AS running_tasks
FROM qqueue.workers w
WHERE w.stopped_at IS NULL AND w.heartbeat_at > now() - interval '1 minute';

-- Running tasks whose lease has lapsed (their worker died or stalled) or that have run for over ten minutes.
CREATE VIEW qqueue.stuck_tasks AS
SELECT
    t.id, t.queue, t.kind, t.attempt, t.max_attempts, t.worker_id, w.hostname, w.pid,
    t.started_at, now() - t.started_at AS running_for, t.lease_expires_at,
    CASE WHEN t.lease_expires_at < now() THEN 'lease expired; any worker will reclaim it'
         ELSE 'running for over ten minutes' END AS reason
FROM qqueue.tasks t
LEFT JOIN qqueue.workers w ON w.id = t.worker_id
WHERE t.status = 'running'
  AND (t.lease_expires_at < now() OR t.started_at < now() - interval '10 minutes');

CREATE VIEW qqueue.failed_tasks AS
SELECT
    id, queue, kind, attempt, max_attempts, error ->> 'type' AS error_type, error ->> 'message' AS error_message,
    (error ->> 'retryable')::boolean AS retryable, finished_at, correlation_id
FROM qqueue.tasks
WHERE status = 'failed';
