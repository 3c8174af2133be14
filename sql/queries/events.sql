-- Named queries of GET /events: the status history read forward by its id. Loaded by qqueue/store/db.py.

-- name: event_read :many
-- History rows after %(after)s (and up to %(upto)s when given), oldest first, at most %(limit)s, each with its
-- task's queue and tenant and, for a job's task, the job's status as derived now (once per job, not per row).
-- Every row also carries the transactions the statement's snapshot saw in progress and the highest history id
-- it sees, and with no history row to return there is still one row carrying them (the LEFT JOIN): the API's
-- event reader needs both to know which ids can no longer be joined by a smaller one committed later
-- (qqueue/api/eventhub.py).
-- Filters left NULL match everything; a tenant given limits the rows to that tenant's tasks.
WITH seen AS (
    -- Same statement, same snapshot: the rows below are exactly those this snapshot sees. A transaction of
    -- another database never writes this history, so one known to be elsewhere (a session of another database
    -- holding an xid: pg_stat_activity shows it to a superuser or pg_read_all_stats) is left out; any other,
    -- ended or not, stays in, which can only delay the reader, never make it skip a row.
    SELECT (SELECT coalesce(array_agg(x::text::bigint), '{}')
            FROM pg_snapshot_xip(pg_current_snapshot()) x
            WHERE x::xid NOT IN (SELECT backend_xid FROM pg_stat_activity
                                 WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database())
           ) AS running,
           coalesce((SELECT max(id) FROM qqueue.task_events), 0) AS last_id
), e AS MATERIALIZED (
    SELECT e.id, e.task_id, t.job_id, t.queue, t.tenant, e.status::text AS status, e.attempt, e.at, e.note,
           -- The failure's type is kept on the task row; only a final failure's row can be sure it is its own.
           CASE WHEN e.status = 'failed' THEN t.error ->> 'type' END AS error_type
    FROM qqueue.task_events e
    JOIN qqueue.tasks t ON t.id = e.task_id
    WHERE e.id > %(after)s
      AND (%(upto)s::bigint IS NULL OR e.id <= %(upto)s::bigint)
      AND (%(tenant)s::text IS NULL OR t.tenant = %(tenant)s::text)
      AND (%(task_ids)s::uuid[] IS NULL OR e.task_id = ANY (%(task_ids)s::uuid[]))
      AND (%(job_id)s::uuid IS NULL OR t.job_id = %(job_id)s::uuid)
      AND (%(queue)s::text IS NULL OR t.queue = %(queue)s::text)
    ORDER BY e.id
    LIMIT %(limit)s
), j AS (
    SELECT id, status, tasks_done, tasks_total FROM qqueue.job_stats
    WHERE id IN (SELECT job_id FROM e WHERE job_id IS NOT NULL)
)
SELECT seen.running, seen.last_id, e.*, j.status AS job_status, j.tasks_done AS job_tasks_done,
       j.tasks_total AS job_tasks_total
FROM seen
LEFT JOIN e ON true
LEFT JOIN j ON j.id = e.job_id
ORDER BY e.id;
