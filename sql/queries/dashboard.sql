-- Named queries of the web dashboard (qqueue/dashboard/), read through qqueue/store/reads.py. Header format as in
-- tasks.sql. Each takes an optional tenant: NULL reads every tenant (keys off, or an operator's key).

-- name: dashboard_durations :many
-- Queue wait (created -> started) and run time (started -> finished) of the tasks that ended in the last hour, as
-- counts per bucket of a log scale whose upper edges are %(edges_s)s; bucket len(edges) holds what lies beyond.
-- tasks_finished_idx bounds the scan to the hour.
WITH ended AS (
    SELECT extract(epoch FROM started_at - created_at)::double precision AS wait_s,
           extract(epoch FROM finished_at - started_at)::double precision AS run_s
    FROM qqueue.tasks
    WHERE finished_at > now() - interval '1 hour' AND started_at IS NOT NULL
      AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text)
)
SELECT measure, bucket, count(*)::integer AS tasks
FROM ended
CROSS JOIN LATERAL (VALUES ('wait', wait_s), ('run', run_s)) AS m(measure, seconds)
CROSS JOIN LATERAL (SELECT width_bucket(greatest(m.seconds, 0), %(edges_s)s::double precision[]) AS bucket) b
GROUP BY measure, bucket
ORDER BY measure, bucket;

-- name: dashboard_throughput :many
-- Tasks that ended in each of the last 60 minutes of the database's clock, oldest first, by outcome; a minute in
-- which none did is a row of zeros.
WITH minutes AS (
    SELECT generate_series(date_trunc('minute', now()) - interval '59 minutes', date_trunc('minute', now()),
                           interval '1 minute') AS minute
), ended AS (
    SELECT date_trunc('minute', finished_at) AS minute,
           count(*) FILTER (WHERE status = 'completed')::integer AS completed,
           count(*) FILTER (WHERE status = 'failed')::integer AS failed,
           count(*) FILTER (WHERE status = 'cancelled')::integer AS cancelled
    FROM qqueue.tasks
    WHERE finished_at >= date_trunc('minute', now()) - interval '59 minutes'
      AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text)
    GROUP BY 1
)
SELECT m.minute, coalesce(e.completed, 0) AS completed, coalesce(e.failed, 0) AS failed,
       coalesce(e.cancelled, 0) AS cancelled
FROM minutes m LEFT JOIN ended e USING (minute)
ORDER BY m.minute;

-- name: task_failures_grouped :many
-- Failed tasks grouped by error code (a refusal's `code`, else the failure's `type`) and message, the largest
-- groups first, each with its newest few tasks.
SELECT coalesce(error ->> 'code', error ->> 'type', 'unknown') AS code,
       coalesce(error ->> 'message', '') AS message,
       count(*)::integer AS tasks,
       max(finished_at) AS newest_at,
       (array_agg(id ORDER BY finished_at DESC, id DESC))[1:%(examples)s] AS newest_ids
FROM qqueue.tasks
WHERE status = 'failed' AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text)
GROUP BY 1, 2
ORDER BY tasks DESC, newest_at DESC
LIMIT %(limit)s;

-- name: task_get_payload :one
-- What a task was asked to run: its stored payload as JSON text (the circuit and the kind's options), for the
-- dashboard's task page. Another tenant's task is not found.
SELECT payload::text AS payload_json
FROM qqueue.tasks
WHERE id = %(id)s AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text);
