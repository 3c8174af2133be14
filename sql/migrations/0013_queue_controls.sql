-- qqueue schema, version 13: queue controls. An operator pauses a queue (no worker claims its tasks from the next
-- claim on) or caps how many of its tasks run at once across every worker (max_running). A queue needs no row
-- here to exist: a queue without one is running and unlimited, as every queue was before.

CREATE TABLE qqueue.queues (
    name        text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    paused_at   timestamptz,
    max_running integer     CHECK (max_running IS NULL OR max_running >= 1),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every change of a queue's controls, for the operator who wants to know who paused what and when.
CREATE TABLE qqueue.queue_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue       text        NOT NULL,
    action      text        NOT NULL CHECK (action IN ('paused', 'resumed', 'limited', 'unlimited')),
    max_running integer,
    actor       text        CHECK (length(actor) <= 200),
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX queue_events_queue_idx ON qqueue.queue_events (queue, id);

-- Counting a queue's running tasks is what enforcing max_running costs, so the partial index of running tasks
-- leads with the queue. Reclaiming by lease still reads it (a running task's entries are few, and the claim
-- already writes one entry per running task: replacing the index adds nothing to a claim).
CREATE INDEX tasks_running_idx ON qqueue.tasks (queue, lease_expires_at) WHERE status = 'running';
DROP INDEX qqueue.tasks_running_lease_idx;

-- A limited queue's free room, for the claim statement. Claims of the same limited queue are serialised on its
-- row, held until the claiming transaction ends; the running count is then read by a statement of its own inside
-- this VOLATILE function, and so with a snapshot taken after the lock: it sees every claim committed before it,
-- which the claim statement's own snapshot (taken before it waited) would not. Rows are locked in name order, so
-- two workers claiming overlapping sets of limited queues cannot deadlock.
CREATE FUNCTION qqueue.queue_room(limited text[], wanted integer)
    RETURNS TABLE (queue text, room integer)
    LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    IF limited IS NULL OR cardinality(limited) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM qqueue.queues q WHERE q.name = ANY(limited) ORDER BY q.name FOR UPDATE;
    RETURN QUERY
        SELECT q.name, greatest(0, least(wanted, q.max_running - (
                   SELECT count(*) FROM qqueue.tasks t WHERE t.status = 'running' AND t.queue = q.name)))::integer
        FROM qqueue.queues q
        WHERE q.name = ANY(limited);
END
$$;

-- The operators' per-queue view gains the controls; a queue with controls but no tasks is listed too.
CREATE OR REPLACE VIEW qqueue.queue_stats AS
WITH counts AS (
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
    GROUP BY queue
)
SELECT
    coalesce(c.queue, q.name)                   AS queue,
    coalesce(c.pending, 0)                      AS pending,
    coalesce(c.due, 0)                          AS due,
    coalesce(c.running, 0)                      AS running,
    coalesce(c.completed, 0)                    AS completed,
    coalesce(c.failed, 0)                       AS failed,
    coalesce(c.cancelled, 0)                    AS cancelled,
    c.oldest_due_age,
    coalesce(c.completed_last_minute, 0)        AS completed_last_minute,
    coalesce(c.failed_last_minute, 0)           AS failed_last_minute,
    q.paused_at IS NOT NULL                     AS paused,
    q.max_running
FROM counts c
FULL JOIN qqueue.queues q ON q.name = c.queue;
