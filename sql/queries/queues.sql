-- Per-queue figures and the health check (qqueue/store/reads.py). Header format as in tasks.sql.

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
