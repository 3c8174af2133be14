-- Per-queue figures and the health check (qqueue/store/reads.py). Header format as in tasks.sql.

-- name: health_check :one
-- One round trip for GET /health. Fails with "undefined table" on a database that was never migrated.
SELECT (SELECT coalesce(array_agg(version ORDER BY version), '{}') FROM qqueue.schema_migrations) AS versions,
       (SELECT count(*) FROM qqueue.live_workers) AS live_workers,
       (SELECT count(*) FROM qqueue.tasks WHERE status = 'pending' AND run_at <= now()) AS queue_depth;

-- name: queue_controls_get :one
SELECT name AS queue, paused_at IS NOT NULL AS paused, paused_at, max_running, updated_at
FROM qqueue.queues
WHERE name = %(queue)s;

-- name: queue_controls_set :one
-- Pause or resume (%(pause)s true or false; null leaves it) and set or clear the limit (when %(set_limit)s),
-- creating the queue's row if it has none, with one qqueue.queue_events row per change that took effect.
-- Resuming, or changing a limit, can make due tasks claimable: idle workers are woken as by a new task.
-- `before` locks the row first (the upsert reads it, so it runs first): a concurrent change waits, and then
-- reads the row as that change left it, so each event records a change that really happened.
WITH before AS (
    SELECT paused_at, max_running FROM qqueue.queues WHERE name = %(queue)s FOR UPDATE
), upserted AS (
    INSERT INTO qqueue.queues AS q (name, paused_at, max_running)
    SELECT %(queue)s,
           CASE WHEN %(pause)s::boolean THEN now() END,
           CASE WHEN %(set_limit)s::boolean THEN %(max_running)s::integer END
    FROM (SELECT count(*) FROM before) AS locked_first
    ON CONFLICT (name) DO UPDATE
    SET paused_at = CASE WHEN %(pause)s::boolean IS NULL THEN q.paused_at
                         WHEN %(pause)s::boolean THEN coalesce(q.paused_at, now()) END,
        max_running = CASE WHEN %(set_limit)s::boolean THEN %(max_running)s::integer ELSE q.max_running END,
        updated_at = now()
    RETURNING q.name, q.paused_at, q.max_running, q.updated_at
), changes AS (
    SELECT u.name, u.max_running, a.action
    FROM upserted u
    LEFT JOIN before b ON true
    CROSS JOIN LATERAL (VALUES
        (CASE WHEN u.paused_at IS NOT NULL AND b.paused_at IS NULL THEN 'paused'
              WHEN u.paused_at IS NULL AND b.paused_at IS NOT NULL THEN 'resumed' END),
        (CASE WHEN u.max_running IS DISTINCT FROM b.max_running
              THEN CASE WHEN u.max_running IS NULL THEN 'unlimited' ELSE 'limited' END END)
    ) AS a(action)
    WHERE a.action IS NOT NULL
), events AS (
    INSERT INTO qqueue.queue_events (queue, action, max_running, actor)
    SELECT name, action, max_running, %(actor)s FROM changes
), woken AS (
    SELECT pg_notify('qqueue_tasks_v1', u.name)
    FROM upserted u
    WHERE u.paused_at IS NULL AND EXISTS (SELECT 1 FROM changes WHERE action <> 'paused')
)
SELECT u.name AS queue, u.paused_at IS NOT NULL AS paused, u.paused_at, u.max_running, u.updated_at
FROM upserted u, (SELECT count(*) FROM woken) AS w;

-- name: queue_stats_all :many
SELECT queue, pending, due, running, completed, failed, cancelled,
       extract(epoch FROM oldest_due_age)::double precision AS oldest_due_age_s,
       completed_last_minute, failed_last_minute, paused, max_running
FROM qqueue.queue_stats
ORDER BY queue;

-- name: queue_stats_tenant :many
-- GET /queues for one tenant: qqueue.queue_stats counted over its own tasks only (sql/migrations/0017); a
-- queue's controls are the same for everyone. Not queue_stats_all with a null tenant: a statement of its own
-- keeps a plan of its own, and a tenant's may use the tenant index.
SELECT queue, pending, due, running, completed, failed, cancelled,
       extract(epoch FROM oldest_due_age)::double precision AS oldest_due_age_s,
       completed_last_minute, failed_last_minute, paused, max_running
FROM qqueue.queue_stats_of(%(tenant)s::text)
ORDER BY queue;
