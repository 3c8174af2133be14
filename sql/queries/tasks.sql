-- Named queries on qqueue.tasks. Each header is `-- name: NAME :FETCH`, FETCH being one of
-- :one (first row or None), :many (all rows), :exec (no rows). Loaded by qqueue/store/db.py.
-- Every state change writes its qqueue.task_events rows in the same statement (data-modifying CTEs),
-- so the history cannot disagree with the task row.
-- Batches arrive as one JSON array (jsonb_to_recordset): one round trip and one statement for any size.

-- name: task_cancel :one
-- Pending tasks are cancelled at once. Running ones get a cancel request; their worker is told by NOTIFY
-- (and by its next lease renewal, should the notification be missed), stops the slot and records 'cancelled'.
-- With a tenant given, another tenant's task is not found (the caller answers 404, never 409).
WITH target AS (
    SELECT id, status FROM qqueue.tasks
    WHERE id = %(id)s AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text)
    FOR UPDATE
), cancelled AS (
    UPDATE qqueue.tasks t
    SET status = 'cancelled', finished_at = now(), updated_at = now()
    FROM target
    WHERE t.id = target.id AND target.status = 'pending'
    RETURNING t.id, t.attempt
), requested AS (
    UPDATE qqueue.tasks t
    SET cancel_requested_at = coalesce(t.cancel_requested_at, now()), updated_at = now()
    FROM target
    WHERE t.id = target.id AND target.status = 'running'
    RETURNING t.id
), events AS (
    INSERT INTO qqueue.task_events (task_id, status, attempt, note)
    SELECT id, 'cancelled', attempt, 'cancelled while pending' FROM cancelled
), notified AS (
    SELECT pg_notify('qqueue_cancel_v1', id::text) FROM requested
), finished AS (
    SELECT pg_notify('qqueue_finished_v1', id::text) FROM cancelled
)
SELECT target.status AS previous_status,
       (SELECT count(*) FROM finished) > 0 AS cancelled,
       (SELECT count(*) FROM notified) > 0 AS cancel_requested
FROM target;

-- name: task_claim :many
-- Each queue is read in the order of the partial pending index (queue, priority DESC, run_at, id), stopping at
-- the limit, and the best of all of them are claimed. Written as one `queue = ANY(...)` scan, PostgreSQL 15
-- could not read that index in order: with a large backlog it sorted every pending row of the queues (on
-- disk), and joined the update back through a scan of the whole table, so each claim cost the backlog's size.
-- SKIP LOCKED and LIMIT stay inside the per-queue subquery: rows another worker holds are passed over, and no
-- queue locks more than the limit (what a queue's best rows lose to another queue's are unlocked when the
-- statement ends). The update finds its rows by primary key (= ANY of an array, never a join the planner may
-- turn into a scan), so cost does not grow with the backlog nor with finished rows.
-- The claim commits without waiting for its WAL to reach disk (synchronous_commit off for this transaction
-- alone). Should the server crash before it is flushed, the claim is undone as if it never ran: the task is
-- pending again and the worker's outcome for it, fenced on the claim, matches nothing. Any outcome that does
-- commit (synchronously) flushes the WAL of its claim before it, so no durable outcome ever lacks its claim.
-- Queue controls (qqueue.queues): a paused queue is not read at all; a limited one (max_running) is read up to
-- its free room, which qqueue.queue_room computes under a lock on the queue's row (see migration 0013). Queues
-- without controls cost one primary-key probe each, and the function returns at once when none is limited.
WITH lazy_commit AS (
    SELECT set_config('synchronous_commit', 'off', true)
), controls AS (
    SELECT name, paused_at IS NOT NULL AS paused, max_running
    FROM qqueue.queues
    WHERE name = ANY(%(queues)s::text[])
), room AS (
    SELECT queue, room FROM qqueue.queue_room(
        ARRAY(SELECT name FROM controls WHERE max_running IS NOT NULL AND NOT paused), %(limit)s)
), due AS (
    SELECT t.id
    FROM unnest(%(queues)s::text[]) AS wanted(queue)
    CROSS JOIN LATERAL (
        SELECT CASE WHEN c.paused THEN 0
                    WHEN c.max_running IS NULL THEN %(limit)s
                    ELSE coalesce((SELECT r.room FROM room r WHERE r.queue = wanted.queue), 0) END AS n
        FROM (SELECT) AS one
        LEFT JOIN controls c ON c.name = wanted.queue
    ) allowed
    CROSS JOIN LATERAL (
        SELECT id, priority, run_at
        FROM qqueue.tasks
        WHERE status = 'pending' AND queue = wanted.queue AND run_at <= now()
        ORDER BY priority DESC, run_at, id
        LIMIT allowed.n
        FOR UPDATE SKIP LOCKED
    ) t
    ORDER BY t.priority DESC, t.run_at, t.id
    LIMIT %(limit)s
), claimed AS (
    UPDATE qqueue.tasks t
    SET status = 'running',
        attempt = t.attempt + 1,
        worker_id = %(worker_id)s,
        lease_expires_at = now() + make_interval(secs => %(lease_s)s),
        started_at = now(),
        updated_at = now()
    WHERE t.id = ANY(ARRAY(SELECT id FROM due)) AND t.status = 'pending'
    RETURNING t.id, t.kind, t.payload, t.attempt, t.max_attempts, t.timeout_s, t.correlation_id,
              t.priority, t.run_at, t.cache_key
), events AS (
    INSERT INTO qqueue.task_events (task_id, status, attempt, worker_id)
    SELECT id, 'running', attempt, %(worker_id)s FROM claimed
)
-- The result cache: a completed task with the same content hash answers for this one.
-- The payload as text: the worker hands it to a slot as it is, without decoding and encoding it again.
SELECT c.id, c.kind, c.payload::text AS payload, c.attempt, c.max_attempts, c.timeout_s, c.correlation_id,
       hit.id AS cached_from, hit.result AS cached_result
FROM claimed c
CROSS JOIN lazy_commit
LEFT JOIN LATERAL (
    SELECT src.id, src.result FROM qqueue.tasks src
    WHERE c.cache_key IS NOT NULL AND src.cache_key = c.cache_key AND src.status = 'completed'
    LIMIT 1
) hit ON true
ORDER BY c.priority DESC, c.run_at, c.id;

-- name: task_complete_many :many
-- Fenced on (id, attempt, worker, running): a worker whose lease lapsed and whose task was claimed again
-- elsewhere matches nothing here, so it can never overwrite the newer attempt.
WITH done AS (
    SELECT * FROM jsonb_to_recordset(%(results)s::jsonb)
         AS d(id uuid, attempt integer, result jsonb, timings jsonb, cached_from uuid)
), updated AS (
    UPDATE qqueue.tasks t
    SET status = 'completed', result = d.result, timings = d.timings, error = NULL, cached_from = d.cached_from,
        lease_expires_at = NULL, finished_at = now(), updated_at = now()
    FROM done d
    WHERE t.id = d.id AND t.attempt = d.attempt AND t.worker_id = %(worker_id)s AND t.status = 'running'
    RETURNING t.id, t.attempt, d.cached_from
), events AS (
    INSERT INTO qqueue.task_events (task_id, status, attempt, worker_id, note)
    SELECT id, 'completed', attempt, %(worker_id)s,
           CASE WHEN cached_from IS NOT NULL THEN 'answered from the cached result of ' || cached_from END
    FROM updated
), finished AS (
    -- Wakes API long-polls: the ids when few, '*' (re-check every waiter) when many. One NOTIFY per statement.
    SELECT pg_notify('qqueue_finished_v1',
                     CASE WHEN count(*) <= 100 THEN string_agg(id::text, ',') ELSE '*' END)
    FROM updated
    HAVING count(*) > 0
)
SELECT id FROM updated, (SELECT count(*) FROM finished) AS n;

-- name: task_fail_many :many
-- A failure with a retry delay goes back to 'pending' at now() + delay while attempts remain; anything else
-- is final. Fenced like completion.
WITH f AS (
    SELECT f.*, t.attempt < t.max_attempts AND f.retry_delay_s IS NOT NULL AS will_retry
    FROM jsonb_to_recordset(%(failures)s::jsonb)
         AS f(id uuid, attempt integer, error jsonb, timings jsonb, retry_delay_s double precision)
    JOIN qqueue.tasks t ON t.id = f.id
), updated AS (
    UPDATE qqueue.tasks t
    SET status = CASE WHEN f.will_retry THEN 'pending' ELSE 'failed' END::qqueue.task_status,
        run_at = CASE WHEN f.will_retry THEN now() + make_interval(secs => f.retry_delay_s) ELSE t.run_at END,
        finished_at = CASE WHEN f.will_retry THEN NULL ELSE now() END,
        error = f.error, timings = f.timings, lease_expires_at = NULL, updated_at = now()
    FROM f
    WHERE t.id = f.id AND t.attempt = f.attempt AND t.worker_id = %(worker_id)s AND t.status = 'running'
    RETURNING t.id, t.status, t.attempt, t.run_at, f.error ->> 'message' AS note
), events AS (
    INSERT INTO qqueue.task_events (task_id, status, attempt, worker_id, note)
    SELECT id, status, attempt, %(worker_id)s, note FROM updated
), finished AS (
    -- Wakes API long-polls: the ids when few, '*' (re-check every waiter) when many. One NOTIFY per statement.
    SELECT pg_notify('qqueue_finished_v1',
                     CASE WHEN count(*) <= 100 THEN string_agg(id::text, ',') ELSE '*' END)
    FROM updated WHERE status = 'failed'
    HAVING count(*) > 0
)
SELECT id, status, run_at FROM updated, (SELECT count(*) FROM finished) AS n;

-- name: task_finish_cancelled_many :many
-- The worker stopped these on request; fenced like completion.
WITH c AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(attempts)s::integer[]) AS c(id, attempt)
), updated AS (
    UPDATE qqueue.tasks t
    SET status = 'cancelled', lease_expires_at = NULL, finished_at = now(), updated_at = now()
    FROM c
    WHERE t.id = c.id AND t.attempt = c.attempt AND t.worker_id = %(worker_id)s AND t.status = 'running'
    RETURNING t.id, t.attempt
), events AS (
    INSERT INTO qqueue.task_events (task_id, status, attempt, worker_id, note)
    SELECT id, 'cancelled', attempt, %(worker_id)s, 'cancelled while running' FROM updated
), finished AS (
    -- Wakes API long-polls: the ids when few, '*' (re-check every waiter) when many. One NOTIFY per statement.
    SELECT pg_notify('qqueue_finished_v1',
                     CASE WHEN count(*) <= 100 THEN string_agg(id::text, ',') ELSE '*' END)
    FROM updated
    HAVING count(*) > 0
)
SELECT id FROM updated, (SELECT count(*) FROM finished) AS n;

-- name: task_get :one
SELECT * FROM qqueue.tasks WHERE id = %(id)s;

-- name: task_get_detail :one
-- One round trip for GET /tasks/{id}: the row, its status history, its place in its queue and its timings.
-- queue_position counts the due pending tasks of the same queue that a worker claims first (claim order is
-- priority DESC, run_at, id, as in task_claim), plus one; the pending partial index serves the count.
-- The result travels as JSON text so a large result is never decoded and re-encoded by the API.
-- Times inside the history JSON are formatted as UTC ISO 8601, like every other time on the wire.
SELECT t.id, t.status, t.kind, t.queue, t.priority, t.attempt, t.max_attempts, t.run_at, t.timeout_s,
       t.created_at, t.started_at, t.finished_at, t.cancel_requested_at, t.worker_id, t.correlation_id,
       t.tags, t.metadata, t.profile, t.error, t.timings, t.result::text AS result_json, t.cache_key, t.cached_from,
       t.callback_url,
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

-- name: task_get_events :many
SELECT status, at, attempt, worker_id, note FROM qqueue.task_events WHERE task_id = %(id)s ORDER BY id;

-- name: task_insert_many :many
-- The insert trigger writes the 'pending' history rows and one NOTIFY per queue for the whole statement.
-- An idempotency key already present inserts nothing; the caller looks the existing task up.
INSERT INTO qqueue.tasks (id, queue, kind, priority, payload, profile, max_attempts, run_at, timeout_s,
                          idempotency_key, request_hash, correlation_id, tags, metadata, cache_key, tenant,
                          job_id, job_pub, job_part, callback_url, job_callback)
SELECT t.id, t.queue, t.kind, t.priority, t.payload, t.profile, t.max_attempts,
       coalesce(t.run_at, now() + make_interval(secs => coalesce(t.delay_s, 0))),
       t.timeout_s, t.idempotency_key, t.request_hash, t.correlation_id, t.tags, t.metadata, t.cache_key, t.tenant,
       t.job_id, t.job_pub, t.job_part, t.callback_url, t.job_callback
FROM jsonb_to_recordset(%(tasks)s::jsonb) AS t(
    id uuid, queue text, kind text, priority smallint, payload jsonb, profile jsonb, max_attempts integer,
    run_at timestamptz, delay_s double precision, timeout_s double precision, idempotency_key text,
    request_hash text, correlation_id text, tags text[], metadata jsonb, cache_key text, tenant text,
    job_id uuid, job_pub integer, job_part integer, callback_url text, job_callback boolean)
ON CONFLICT ((coalesce(tenant, '')), idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id, created_at, run_at;

-- name: task_list :many
-- Newest first, keyset-paginated on (created_at, id), which tasks_created_idx serves backwards: a page costs
-- the same however deep the client pages, and tasks queued meanwhile never shift later pages.
-- A NULL filter matches everything. The caller asks for one row more than a page to learn whether more follow.
SELECT id AS task_id, status, kind, queue, priority, attempt, max_attempts, tags, correlation_id,
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

-- name: task_next_run_at :one
-- When nothing is due, how long may a worker sleep? Until the earliest pending task of its queues that it could
-- claim: paused queues are left out, and limited ones (max_running) are reported apart, since a limited queue's
-- due task may wait for room rather than for its time.
SELECT min(n.run_at) FILTER (WHERE c.max_running IS NULL) AS next_run_at,
       min(n.run_at) FILTER (WHERE c.max_running IS NOT NULL) AS limited_next_run_at
FROM unnest(%(queues)s::text[]) AS wanted(queue)
LEFT JOIN qqueue.queues c ON c.name = wanted.queue
CROSS JOIN LATERAL (
    SELECT min(run_at) AS run_at FROM qqueue.tasks WHERE status = 'pending' AND queue = wanted.queue
) n
WHERE c.paused_at IS NULL;

-- name: task_purge_finished :one
-- In bounded batches so a large purge never holds locks for long; events go with their task (the
-- tasks_after_delete trigger).
-- A job's tasks are purged only with their job, once every one of them finished before the cutoff, so a job
-- never loses part of its result.
WITH doomed AS (
    SELECT id FROM qqueue.tasks
    WHERE finished_at < now() - make_interval(secs => %(older_than_s)s) AND job_id IS NULL
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM qqueue.tasks t USING doomed WHERE t.id = doomed.id RETURNING 1
), doomed_jobs AS (
    SELECT j.id FROM qqueue.jobs j
    WHERE j.created_at < now() - make_interval(secs => %(older_than_s)s)
      AND NOT EXISTS (SELECT 1 FROM qqueue.tasks t
                      WHERE t.job_id = j.id
                        AND (t.finished_at IS NULL
                             OR t.finished_at >= now() - make_interval(secs => %(older_than_s)s)))
    LIMIT greatest(1, %(limit)s / 100)
    FOR UPDATE SKIP LOCKED
), gone_jobs AS (
    DELETE FROM qqueue.jobs j USING doomed_jobs WHERE j.id = doomed_jobs.id RETURNING 1
)
SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM gone_jobs) AS deleted;

-- name: task_reclaim_expired :many
-- Any worker runs this: tasks whose owner stopped renewing (SIGKILL, lost machine, partition) go back to
-- 'pending', or to 'failed' once attempts are spent, or to 'cancelled' if a cancel was already asked for.
WITH expired AS (
    SELECT id,
           CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled'
                WHEN attempt >= max_attempts THEN 'failed'
                ELSE 'pending' END::qqueue.task_status AS next_status,
           jsonb_build_object(
               'type', 'LeaseExpired',
               'message', 'worker ' || worker_id || ' stopped renewing its lease (it crashed or lost the database)',
               'retryable', true) AS error
    FROM qqueue.tasks
    WHERE status = 'running' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), updated AS (
    UPDATE qqueue.tasks t
    SET status = e.next_status,
        error = CASE WHEN e.next_status = 'cancelled' THEN t.error ELSE e.error END,
        run_at = CASE WHEN e.next_status = 'pending' THEN now() ELSE t.run_at END,
        finished_at = CASE WHEN e.next_status = 'pending' THEN NULL ELSE now() END,
        lease_expires_at = NULL, updated_at = now()
    FROM expired e
    WHERE t.id = e.id
    RETURNING t.id, t.status, t.attempt, t.worker_id, e.error ->> 'message' AS note
), events AS (
    INSERT INTO qqueue.task_events (task_id, status, attempt, worker_id, note)
    SELECT id, status, attempt, worker_id, note FROM updated
), finished AS (
    -- Wakes API long-polls: the ids when few, '*' (re-check every waiter) when many. One NOTIFY per statement.
    SELECT pg_notify('qqueue_finished_v1',
                     CASE WHEN count(*) <= 100 THEN string_agg(id::text, ',') ELSE '*' END)
    FROM updated WHERE status <> 'pending'
    HAVING count(*) > 0
)
SELECT id, status, attempt FROM updated, (SELECT count(*) FROM finished) AS n;

-- name: task_release_many :many
-- Graceful shutdown: tasks this worker holds but will not finish go back to 'pending' at once. The attempt
-- is given back too: the task did not fail, its worker left.
WITH r AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(attempts)s::integer[]) AS r(id, attempt)
), updated AS (
    UPDATE qqueue.tasks t
    SET status = 'pending', attempt = t.attempt - 1, run_at = now(), lease_expires_at = NULL, updated_at = now()
    FROM r
    WHERE t.id = r.id AND t.attempt = r.attempt AND t.worker_id = %(worker_id)s AND t.status = 'running'
    RETURNING t.id, t.attempt
), events AS (
    INSERT INTO qqueue.task_events (task_id, status, attempt, worker_id, note)
    SELECT id, 'pending', attempt, %(worker_id)s, %(note)s FROM updated
)
SELECT id FROM updated;

-- name: task_renew_leases :many
-- One statement renews every lease a worker holds. Rows that do not come back were lost (reclaimed
-- elsewhere): the worker must stop working on them. cancel_requested tells it which to stop now.
WITH held AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(attempts)s::integer[]) AS h(id, attempt)
)
UPDATE qqueue.tasks t
SET lease_expires_at = now() + make_interval(secs => %(lease_s)s)
FROM held h
WHERE t.id = h.id AND t.attempt = h.attempt AND t.worker_id = %(worker_id)s AND t.status = 'running'
RETURNING t.id, t.cancel_requested_at IS NOT NULL AS cancel_requested;

-- name: task_retry :many
-- Failed and cancelled tasks back to 'pending', due now, error and cancel request cleared, with as many attempts
-- again as they were submitted with: the attempt counter keeps counting (so fencing and the history stay exact)
-- and max_attempts moves on by the budget (attempt_budget, recorded at the first retry), at most 100 in all.
-- Targets are `ids` (whatever their status, so the caller can tell why one was not retried) or, with no ids, the
-- listing's filters, of which `statuses` may name only failed and cancelled; oldest first, at most `limit`. One
-- row more is read so the caller knows more match. With a tenant given, another tenant's tasks are not found.
-- `dry_run` changes nothing and reports the same rows. A retried task of a job re-opens the job (it is seen
-- finished again when its tasks are). One NOTIFY per queue touched wakes the workers, as an insert does.
WITH target AS (
    SELECT id, status, created_at, attempt >= 100 AS spent
    FROM qqueue.tasks
    WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text)
      AND (%(ids)s::uuid[] IS NULL OR id = ANY(%(ids)s::uuid[]))
      AND (%(ids)s::uuid[] IS NOT NULL OR (status::text = ANY(%(statuses)s::text[]) AND attempt < 100))
      AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
      AND (%(kind)s::text IS NULL OR kind = %(kind)s::text)
      AND (%(tags)s::text[] IS NULL OR (tags @> %(tags)s::text[] AND tags <> '{}'::text[]))
      AND (%(created_after)s::timestamptz IS NULL OR created_at > %(created_after)s::timestamptz)
      AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s::timestamptz)
    ORDER BY created_at, id
    LIMIT %(limit)s + 1
    FOR UPDATE
), ranked AS (
    -- Numbered outside the locking scan: FOR UPDATE takes no window functions.
    SELECT target.*, row_number() OVER (ORDER BY created_at, id) <= %(limit)s AS within,
           status IN ('failed', 'cancelled') AND NOT spent AS retryable
    FROM target
), retried AS (
    UPDATE qqueue.tasks t
    SET status = 'pending', run_at = now(), finished_at = NULL, error = NULL, cancel_requested_at = NULL,
        attempt_budget = coalesce(t.attempt_budget, t.max_attempts),
        max_attempts = least(100, t.attempt + coalesce(t.attempt_budget, t.max_attempts)), updated_at = now()
    FROM ranked r
    WHERE t.id = r.id AND r.within AND r.retryable AND NOT %(dry_run)s
    RETURNING t.id, t.attempt, t.queue, t.job_id
), events AS (
    INSERT INTO qqueue.task_events (task_id, status, attempt, note)
    SELECT id, 'pending', attempt, %(note)s FROM retried
), reopened AS (
    UPDATE qqueue.jobs j
    SET finished_at = NULL, cancel_requested_at = NULL
    WHERE j.id = ANY(ARRAY(SELECT job_id FROM retried WHERE job_id IS NOT NULL))
), woken AS (
    SELECT pg_notify('qqueue_tasks_v1', queue) FROM (SELECT DISTINCT queue FROM retried) q
)
SELECT r.id, r.status AS previous_status, r.within, r.retryable, r.spent
FROM ranked r, (SELECT count(*) FROM woken) AS n
ORDER BY r.created_at, r.id;
