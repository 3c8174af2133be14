-- Read queries of the HTTP API (qqueue/api), plus its LISTEN. Header format as in tasks.sql.
-- The API changes task state only through the queue's own queries (task_insert_many, task_cancel).

-- name: health_check :one
-- One round trip for GET /health. Fails with "undefined table" on a database that was never migrated.
SELECT (SELECT coalesce(array_agg(version ORDER BY version), '{}') FROM qqueue.schema_migrations) AS versions,
       (SELECT count(*) FROM qqueue.live_workers) AS live_workers,
       (SELECT count(*) FROM qqueue.tasks WHERE status = 'pending' AND run_at <= now()) AS queue_depth;

-- name: queue_stats_all :many
SELECT queue, pending, due, running, completed, failed, cancelled,
       extract(epoch FROM oldest_due_age)::double precision AS oldest_due_age_s,
       completed_last_minute, failed_last_minute
FROM qqueue.queue_stats
ORDER BY queue;

-- name: queue_stats_tenant :many
-- GET /queues for one tenant: the columns of qqueue.queue_stats, counted over its own tasks only.
SELECT queue,
       count(*) FILTER (WHERE status = 'pending')                     AS pending,
       count(*) FILTER (WHERE status = 'pending' AND run_at <= now()) AS due,
       count(*) FILTER (WHERE status = 'running')                     AS running,
       count(*) FILTER (WHERE status = 'completed')                   AS completed,
       count(*) FILTER (WHERE status = 'failed')                      AS failed,
       count(*) FILTER (WHERE status = 'cancelled')                   AS cancelled,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE status = 'pending' AND run_at <= now()))
           ::double precision                                         AS oldest_due_age_s,
       count(*) FILTER (WHERE status = 'completed' AND finished_at > now() - interval '1 minute')
                                                                      AS completed_last_minute,
       count(*) FILTER (WHERE status = 'failed' AND finished_at > now() - interval '1 minute')
                                                                      AS failed_last_minute
FROM qqueue.tasks
WHERE tenant = %(tenant)s::text
GROUP BY queue
ORDER BY queue;

-- name: task_get_detail :one
-- One round trip for GET /tasks/{id}: the row, its status history, its place in its queue and its timings.
-- queue_position counts the due pending tasks of the same queue that a worker claims first (claim order is
-- priority DESC, run_at, id, as in task_claim), plus one; the pending partial index serves the count.
-- The result travels as JSON text so a large result is never decoded and re-encoded by the API.
-- Times inside the history JSON are formatted as UTC ISO 8601, like every other time on the wire.
SELECT t.id, t.status, t.kind, t.queue, t.priority, t.attempt, t.max_attempts, t.run_at, t.timeout_s,
       t.created_at, t.started_at, t.finished_at, t.cancel_requested_at, t.worker_id, t.correlation_id,
       t.tags, t.metadata, t.profile, t.error, t.timings, t.result::text AS result_json, t.cache_key, t.cached_from,
       -- only a due task has a place in the line: one scheduled for later is not behind anything yet.
       CASE WHEN t.status = 'pending' AND t.run_at <= now() THEN 1 + (
           SELECT count(*)
           FROM qqueue.tasks a
           WHERE a.status = 'pending' AND a.queue = t.queue AND a.run_at <= now()
             AND (a.priority > t.priority
                  OR (a.priority = t.priority AND (a.run_at, a.id) < (t.run_at, t.id)))
       ) END AS queue_position,
       -- submission to first start; for a task that never started, to its end or to now.
       extract(epoch FROM coalesce(h.first_started_at, t.finished_at, now()) - t.created_at)::double precision
           AS queued_s,
       -- every attempt's time in 'running', the current one up to now.
       h.running_s,
       h.history_json
FROM qqueue.tasks t
CROSS JOIN LATERAL (
    SELECT min(e.at) FILTER (WHERE e.status = 'running') AS first_started_at,
           sum(extract(epoch FROM coalesce(e.next_at, now()) - e.at)) FILTER (WHERE e.status = 'running')
               ::double precision AS running_s,
           coalesce(jsonb_agg(jsonb_build_object(
               'status', e.status,
               'transitioned_at', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'attempt', e.attempt,
               'worker_id', e.worker_id,
               'notes', e.note) ORDER BY e.id), '[]')::text AS history_json
    FROM (
        SELECT id, status, at, attempt, worker_id, note, lead(at) OVER (ORDER BY id) AS next_at
        FROM qqueue.task_events
        WHERE task_id = t.id
    ) e
) h
WHERE t.id = %(id)s AND (%(tenant)s::text IS NULL OR t.tenant = %(tenant)s::text);

-- name: task_list :many
-- Newest first, keyset-paginated on (created_at, id), which tasks_created_idx serves backwards: a page costs
-- the same however deep the client pages, and tasks queued meanwhile never shift later pages.
-- A NULL filter matches everything. The caller asks for one row more than a page to learn whether more follow.
SELECT id, status, kind, queue, priority, attempt, max_attempts, tags, correlation_id,
       created_at, run_at, started_at, finished_at
FROM qqueue.tasks
WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text)
  AND (%(statuses)s::text[] IS NULL OR status::text = ANY(%(statuses)s::text[]))
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(kind)s::text IS NULL OR kind = %(kind)s::text)
  -- tags <> '{}' is the predicate of tasks_tags_idx: said, it lets the filter use the index.
  AND (%(tags)s::text[] IS NULL OR (tags @> %(tags)s::text[] AND tags <> '{}'::text[]))
  AND (%(created_after)s::timestamptz IS NULL OR created_at > %(created_after)s::timestamptz)
  AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s::timestamptz)
  AND (%(cursor_created_at)s::timestamptz IS NULL
       OR (created_at, id) < (%(cursor_created_at)s::timestamptz, %(cursor_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: task_list_by_idempotency_keys :many
-- What an Idempotency-Key already names: the task a replay answers with, and the hash a new body must match.
SELECT id, idempotency_key, request_hash, status, created_at, correlation_id
FROM qqueue.tasks
WHERE coalesce(tenant, '') = coalesce(%(tenant)s::text, '') AND idempotency_key = ANY(%(keys)s::text[]);

-- name: task_list_finished :many
-- Long-poll backstop: of the ids being waited on, those that ended, or vanished (purged) and so will never
-- end. Run after a '*' notification, after the LISTEN connection was re-established, and on a slow timer.
SELECT w.id
FROM unnest(%(ids)s::uuid[]) AS w(id)
WHERE NOT EXISTS (
    SELECT 1 FROM qqueue.tasks t WHERE t.id = w.id AND t.status IN ('pending', 'running')
);

-- name: task_listen_finished :exec
-- Every statement that moves tasks to a terminal status notifies this channel once, with the ids
-- (comma-separated) or '*' when many ended at once (see task_complete_many).
LISTEN qqueue_finished_v1;

-- name: worker_list_live :many
SELECT id, hostname, pid, queues, concurrency, version, started_at, heartbeat_at,
       extract(epoch FROM heartbeat_age)::double precision AS heartbeat_age_s, running_tasks
FROM qqueue.live_workers
ORDER BY started_at, id;
