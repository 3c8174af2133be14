-- Named queries on qqueue.jobs (header format as in tasks.sql). A job's tasks are queued by task_insert_many in
-- the same transaction as job_insert; a job's status is read from qqueue.job_stats, never stored.

-- name: job_cancel :one
-- Every unfinished task of the job, as task_cancel does for one: pending ones cancelled at once (with their
-- history rows), running ones asked to stop (their workers are told by NOTIFY and by their next lease renewal).
-- Tasks are locked in id order, so two cancels of the same job cannot deadlock.
WITH job AS (
    UPDATE qqueue.jobs j
    SET cancel_requested_at = coalesce(j.cancel_requested_at, now())
    WHERE j.id = %(id)s AND (%(tenant)s::text IS NULL OR j.tenant = %(tenant)s::text)
    RETURNING j.id
), targets AS (
    SELECT t.id, t.status FROM qqueue.tasks t
    WHERE t.job_id = (SELECT id FROM job) AND t.status IN ('pending', 'running')
    ORDER BY t.id
    FOR UPDATE
), cancelled AS (
    UPDATE qqueue.tasks t
    SET status = 'cancelled', finished_at = now(), updated_at = now()
    FROM targets
    WHERE t.id = targets.id AND targets.status = 'pending' AND t.status = 'pending'
    RETURNING t.id, t.attempt
), requested AS (
    UPDATE qqueue.tasks t
    SET cancel_requested_at = coalesce(t.cancel_requested_at, now()), updated_at = now()
    FROM targets
    WHERE t.id = targets.id AND targets.status = 'running' AND t.status = 'running'
    RETURNING t.id
), events AS (
    INSERT INTO qqueue.task_events (task_id, status, attempt, note)
    SELECT id, 'cancelled', attempt, 'job cancelled while pending' FROM cancelled
), notified AS (
    SELECT pg_notify('qqueue_cancel_v1', id::text) FROM requested
), finished AS (
    SELECT pg_notify('qqueue_finished_v1',
                     CASE WHEN count(*) <= 100 THEN string_agg(id::text, ',') ELSE '*' END)
    FROM cancelled
    HAVING count(*) > 0
)
SELECT (SELECT count(*) FROM job) AS found,
       (SELECT count(*) FROM cancelled) AS cancelled,
       (SELECT count(*) FROM requested) AS cancel_requested,
       (SELECT count(*) FROM notified) + (SELECT count(*) FROM finished) AS notifications;

-- name: job_get :one
-- With a tenant given, another tenant's job reads exactly like one that does not exist.
SELECT s.id, s.kind, s.status, s.queue, s.pubs, s.tasks_total, s.tasks_done, s.pending, s.running, s.completed,
       s.failed, s.cancelled, s.tags, s.correlation_id, s.created_at, s.finished_at, s.cancel_requested_at,
       j.shapes, j.metadata, j.callback_url, j.finished_at AS seen_finished_at
FROM qqueue.job_stats s
JOIN qqueue.jobs j ON j.id = s.id
WHERE s.id = %(id)s AND (%(tenant)s::text IS NULL OR s.tenant = %(tenant)s::text);

-- name: job_get_by_idempotency_key :one
SELECT j.id, j.request_hash, j.created_at, j.correlation_id, j.pubs, j.tasks_total, s.status
FROM qqueue.jobs j
JOIN qqueue.job_stats s ON s.id = j.id
WHERE coalesce(j.tenant, '') = coalesce(%(tenant)s::text, '') AND j.idempotency_key = %(key)s;

-- name: job_get_tasks :many
-- A job's tasks in PUB and part order, each completed one with its result as JSON text (decoded once, by the
-- caller that joins the parts).
SELECT t.id, t.job_pub, t.job_part, (t.payload #>> '{sets,0}')::bigint AS start,
       (t.payload #>> '{sets,1}')::bigint AS stop, t.status, t.worker_id, t.error,
       CASE WHEN t.status = 'completed' AND %(results)s THEN t.result::text END AS result_json
FROM qqueue.tasks t
WHERE t.job_id = %(id)s
ORDER BY t.job_pub, t.job_part;

-- name: job_insert :one
-- An idempotency key already present inserts nothing; the caller looks the existing job up.
INSERT INTO qqueue.jobs (id, kind, queue, tenant, pubs, shapes, sizes, tasks_total, idempotency_key, request_hash,
                         correlation_id, tags, metadata, callback_url)
VALUES (%(id)s, %(kind)s, %(queue)s, %(tenant)s, %(pubs)s, %(shapes)s::jsonb, %(sizes)s::integer[], %(tasks_total)s,
        %(idempotency_key)s, %(request_hash)s, %(correlation_id)s, %(tags)s::text[], %(metadata)s::jsonb,
        %(callback_url)s)
ON CONFLICT ((coalesce(tenant, '')), idempotency_key) DO NOTHING
RETURNING id, created_at;

-- name: job_list :many
-- Newest first, keyset-paginated on (created_at, id) as task_list; a NULL filter matches everything.
SELECT id AS job_id, kind, status, pubs, tasks_total, tasks_done, queue, tags, correlation_id, created_at,
       finished_at
FROM qqueue.job_stats
WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text)
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(kind)s::text IS NULL OR kind = %(kind)s::text)
  AND (%(tags)s::text[] IS NULL OR tags @> %(tags)s::text[])
  AND (%(created_after)s::timestamptz IS NULL OR created_at > %(created_after)s::timestamptz)
  AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s::timestamptz)
  AND (%(cursor_created_at)s::timestamptz IS NULL
       OR (created_at, id) < (%(cursor_created_at)s::timestamptz, %(cursor_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: job_mark_finished :exec
-- The moment a job was first seen finished: from then on none of its tasks may change (an invariant rule).
UPDATE qqueue.jobs j
SET finished_at = %(finished_at)s
WHERE j.id = %(id)s AND j.finished_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM qqueue.tasks t WHERE t.job_id = j.id AND t.status IN ('pending', 'running'));

-- name: job_unfinished_task_ids :many
SELECT id FROM qqueue.tasks WHERE job_id = %(id)s AND status IN ('pending', 'running');
