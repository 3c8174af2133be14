-- qqueue schema, version 17: two things written twice are written once. The per-queue figures are defined once, for
-- every tenant or for one; and each statement on qqueue.tasks fires one statement trigger per event, not one per
-- concern.
--
-- GET /queues for a tenant's key counted that tenant's tasks with a copy of qqueue.queue_stats' columns in a
-- named query (queue_stats_tenant), which had to be kept in step with the view by hand. The figures now live in
-- one function, qqueue.queue_stats_of(tenant), and the view is that function for every tenant. The view keeps its
-- columns, their types and its rows. The function is a single STABLE SQL SELECT, so the planner inlines it: with
-- the view's constant null, the tenant test folds away and the plan is the view's former one; a tenant's query is
-- planned with its tenant's value, as the query it replaces was, and may use the tenant's index.
--
-- The statement triggers on qqueue.tasks were added beside each other as concerns came: history and wake-ups
-- (version 1), history going with deleted tasks (10), the metric totals (14), webhook deliveries going with their
-- task (15). Every statement trigger is a PL/pgSQL call of its own, with its transition table bound again, on
-- every INSERT and DELETE of tasks; the INSERT of a submission is the hottest statement the API runs. Folded, an
-- INSERT calls one function (history, NOTIFY, the metrics' look for rows inserted already finished) and a DELETE
-- one (history, metric_leave, webhook deliveries), doing the same statements in the same order as the triggers
-- did, which fired in name order. Each part keeps its own early exit, so a statement costs what it did less one
-- call. TRUNCATE keeps two triggers: the metrics must read the rows BEFORE they go, and the history and the
-- deliveries can only be emptied AFTER (one TRUNCATE of both now).

-- A queue's figures over the tasks of `of_tenant`, or of every tenant (and of none) when it is null. For every
-- tenant, a queue that has controls but no task is listed too (an operator paused it before any task came); for
-- one tenant, only the queues that hold its tasks are, as before: which queues others use is not its to see.
CREATE FUNCTION qqueue.queue_stats_of(of_tenant text)
RETURNS TABLE (
    queue                 text,
    pending               bigint,
    due                   bigint,
    running               bigint,
    completed             bigint,
    failed                bigint,
    cancelled             bigint,
    oldest_due_age        interval,
    completed_last_minute bigint,
    failed_last_minute    bigint,
    paused                boolean,
    max_running           integer
)
LANGUAGE sql STABLE AS $$
    WITH counts AS (
        SELECT
            t.queue,
            count(*) FILTER (WHERE t.status = 'pending')                        AS pending,
            count(*) FILTER (WHERE t.status = 'pending' AND t.run_at <= now())  AS due,
            count(*) FILTER (WHERE t.status = 'running')                        AS running,
            count(*) FILTER (WHERE t.status = 'completed')                      AS completed,
            count(*) FILTER (WHERE t.status = 'failed')                         AS failed,
            count(*) FILTER (WHERE t.status = 'cancelled')                      AS cancelled,
            now() - min(t.run_at) FILTER (WHERE t.status = 'pending' AND t.run_at <= now()) AS oldest_due_age,
            count(*) FILTER (WHERE t.status = 'completed' AND t.finished_at > now() - interval '1 minute')
                                                                                AS completed_last_minute,
            count(*) FILTER (WHERE t.status = 'failed' AND t.finished_at > now() - interval '1 minute')
                                                                                AS failed_last_minute
        FROM qqueue.tasks t
        WHERE of_tenant IS NULL OR t.tenant = of_tenant
        GROUP BY t.queue
    )
    SELECT
        coalesce(c.queue, q.name),
        coalesce(c.pending, 0),
        coalesce(c.due, 0),
        coalesce(c.running, 0),
        coalesce(c.completed, 0),
        coalesce(c.failed, 0),
        coalesce(c.cancelled, 0),
        c.oldest_due_age,
        coalesce(c.completed_last_minute, 0),
        coalesce(c.failed_last_minute, 0),
        q.paused_at IS NOT NULL,
        q.max_running
    FROM counts c
    FULL JOIN qqueue.queues q ON q.name = c.queue
    WHERE of_tenant IS NULL OR c.queue IS NOT NULL
$$;

CREATE OR REPLACE VIEW qqueue.queue_stats AS
SELECT * FROM qqueue.queue_stats_of(NULL);

-- AFTER INSERT: every 'pending' history row, one NOTIFY per queue touched (never one per row: Postgres serialises
-- commits that carry notifications), and the metrics' fold of tasks inserted already finished behind the roll-up
-- mark (plain SQL, an import, the benchmarks' history fill), which neither the roll-up nor a scrape would count.
-- Tasks qqueue inserts are pending, so for them the metrics' part is one look over the statement's new rows.
CREATE OR REPLACE FUNCTION qqueue.tasks_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    q text;
    mark timestamptz;
BEGIN
    INSERT INTO qqueue.task_events (task_id, status, at, attempt, note)
    SELECT id, status, created_at, attempt, 'submitted' FROM new_tasks;
    FOR q IN SELECT DISTINCT queue FROM new_tasks WHERE status = 'pending' LOOP
        PERFORM pg_notify('qqueue_tasks_v1', q);
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM new_tasks WHERE finished_at IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    -- The mark's row lock: a roll-up waits for this insert, and then sees these rows at or after the mark.
    SELECT upto INTO mark FROM qqueue.metric_rollup_mark FOR SHARE;
    PERFORM qqueue.metric_fold(ARRAY(SELECT ROW(queue, kind, status, error, created_at, run_at, started_at,
                                              finished_at)::qqueue.metric_fact
                                       FROM new_tasks WHERE finished_at < mark));
    RETURN NULL;
END
$$;
DROP TRIGGER tasks_after_insert_metrics ON qqueue.tasks;
DROP FUNCTION qqueue.tasks_after_insert_metrics();

-- AFTER DELETE (purges, a job's deletion cascading to its tasks, plain SQL): the tasks' history goes, finished
-- tasks leave the metrics (metric_leave), and their webhook deliveries go. Once per statement, in its transaction.
CREATE OR REPLACE FUNCTION qqueue.tasks_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- = ANY of an array, not a join: the planner knows nothing of a transition table's size and could choose a
    -- scan of the whole history for a purge batch.
    DELETE FROM qqueue.task_events WHERE task_id = ANY (ARRAY(SELECT id FROM gone_tasks));
    PERFORM qqueue.metric_leave(ARRAY(SELECT ROW(queue, kind, status, error, created_at, run_at, started_at,
                                              finished_at)::qqueue.metric_fact
                                       FROM gone_tasks WHERE finished_at IS NOT NULL));
    -- Most purges meet an empty table: say so with one index probe before collecting ids.
    IF EXISTS (SELECT 1 FROM qqueue.webhook_deliveries) THEN
        DELETE FROM qqueue.webhook_deliveries WHERE task_id = ANY (ARRAY(SELECT id FROM gone_tasks));
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER tasks_after_delete_webhooks ON qqueue.tasks;
DROP FUNCTION qqueue.tasks_after_delete_webhooks();

-- AFTER TRUNCATE: the history and the webhook deliveries go with the tasks (tasks_before_truncate has taken the
-- finished ones out of the metrics already).
CREATE OR REPLACE FUNCTION qqueue.tasks_after_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE qqueue.task_events, qqueue.webhook_deliveries;
    RETURN NULL;
END
$$;
DROP TRIGGER tasks_after_truncate_webhooks ON qqueue.tasks;
DROP FUNCTION qqueue.tasks_after_truncate_webhooks();
