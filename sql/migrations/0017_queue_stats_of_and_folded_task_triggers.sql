-- qqueue schema, version 17: the per-queue figures are defined once, for every tenant or for one.
--
-- GET /queues for a tenant's key counted that tenant's tasks with a copy of qqueue.queue_stats' columns in a
-- named query (queue_stats_tenant), which had to be kept in step with the view by hand. The figures now live in
-- one function, qqueue.queue_stats_of(tenant), and the view is that function for every tenant. The view keeps its
-- columns, their types and its rows. The function is a single STABLE SQL SELECT, so the planner inlines it: with
-- the view's constant null, the tenant test folds away and the plan is the view's former one; a tenant's query is
-- planned with its tenant's value, as the query it replaces was, and may use the tenant's index.

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
