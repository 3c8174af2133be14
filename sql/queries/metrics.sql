-- Named queries of GET /metrics (qqueue/store/metric_reads.py). Header format as in tasks.sql.
-- How the totals work, and why nothing here grows with the finished rows a table keeps: sql/migrations/0014.

-- name: metrics_roll_up :one
-- Folds tasks finished before now() - lag into the totals, at most about max_rows per call (metric_roll_up).
SELECT folded, nullif(mark, '-infinity') AS mark FROM qqueue.metric_roll_up(%(lag_s)s, %(max_rows)s);

-- name: metrics_scrape :one
-- Every figure of a scrape in one statement, hence one snapshot: a roll-up or a purge commits its totals and its
-- rows together, so each finished task is seen once, in the totals or as a row finished since the mark. Those
-- rows are read through tasks_finished_idx and grouped three ways in one pass (by how they ended, by queue-wait
-- bucket, by run-time bucket) and added to the totals per series; pending and running tasks through their partial
-- indexes. Each part comes back as JSON text: one round trip, one row.
WITH mark AS (
    SELECT upto FROM qqueue.metric_rollup_mark
), facts AS (
    SELECT queue, kind, status, qqueue.metric_error_type(status, error) AS error_type,
           qqueue.metric_queue_wait_s(status, created_at, run_at, started_at) AS wait_s,
           qqueue.metric_run_time_s(status, started_at, finished_at) AS run_s
    FROM qqueue.tasks
    -- The mark as this snapshot sees it decides; `since` (a mark the caller saw, never ahead of it: marks only
    -- move forward) lets the planner know how few rows that is.
    WHERE finished_at >= (SELECT upto FROM mark) AND finished_at >= coalesce(%(since)s::timestamptz, '-infinity')
), grouped AS (
    SELECT queue, kind, status, error_type, qqueue.metric_le(wait_s) AS wait_le, qqueue.metric_le(run_s) AS run_le,
           GROUPING(status, error_type) = 0 AS by_status, GROUPING(qqueue.metric_le(wait_s)) = 0 AS by_wait,
           count(*) AS n, sum(wait_s) AS wait_sum, sum(run_s) AS run_sum
    FROM facts
    GROUP BY GROUPING SETS ((queue, kind, status, error_type), (queue, kind, qqueue.metric_le(wait_s)),
                            (queue, kind, qqueue.metric_le(run_s)))
), finished AS (
    SELECT queue, kind, status, error_type, n AS tasks FROM grouped WHERE by_status
    UNION ALL
    SELECT queue, kind, status, error_type, tasks FROM qqueue.metric_task_totals
), histograms AS (
    SELECT 'queue_wait' AS metric, queue, kind, wait_le AS le, n AS observations, wait_sum AS seconds
    FROM grouped WHERE by_wait AND wait_le IS NOT NULL
    UNION ALL
    SELECT 'run_time', queue, kind, run_le, n, run_sum
    FROM grouped WHERE NOT by_status AND NOT by_wait AND run_le IS NOT NULL
    UNION ALL
    SELECT metric, queue, kind, le, observations, seconds FROM qqueue.metric_histogram_totals
), unfinished AS (
    SELECT queue, 'pending' AS status, count(*) AS tasks, count(*) FILTER (WHERE run_at <= now()) AS due,
           extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::double precision
               AS oldest_due_age_s
    FROM qqueue.tasks WHERE status = 'pending' GROUP BY queue
    UNION ALL
    SELECT queue, 'running', count(*), 0, NULL FROM qqueue.tasks WHERE status = 'running' GROUP BY queue
)
SELECT
    (SELECT coalesce(jsonb_agg(jsonb_build_object('queue', queue, 'kind', kind, 'status', status,
                                                  'error_type', error_type, 'tasks', tasks)), '[]')
     FROM (SELECT queue, kind, status, error_type, sum(tasks) AS tasks FROM finished GROUP BY 1, 2, 3, 4) f
    )::text AS finished_json,
    (SELECT coalesce(jsonb_agg(jsonb_build_object('queue', queue, 'status', status, 'tasks', tasks)), '[]')
     FROM qqueue.metric_gone_totals)::text AS gone_json,
    (SELECT coalesce(jsonb_agg(jsonb_build_object('metric', metric, 'queue', queue, 'kind', kind,
                                                  'le', nullif(le, 'Infinity'), 'observations', observations,
                                                  'seconds', seconds)), '[]')
     FROM (SELECT metric, queue, kind, le, sum(observations) AS observations, sum(seconds) AS seconds
           FROM histograms GROUP BY 1, 2, 3, 4) h
    )::text AS histograms_json,
    (SELECT coalesce(jsonb_agg(jsonb_build_object('queue', queue, 'status', status, 'tasks', tasks, 'due', due,
                                                  'oldest_due_age_s', oldest_due_age_s)), '[]')
     FROM unfinished)::text AS unfinished_json,
    (SELECT count(*) FROM qqueue.live_workers) AS live_workers,
    qqueue.metric_buckets() AS buckets;
