-- Named queries on qqueue.workers (see tasks.sql for the header format).

-- name: maintenance_autovacuum_on :one
-- Whether autovacuum will reclaim the queue tables' dead rows: on for the server and not off for the table.
SELECT current_setting('autovacuum')::boolean
       AND coalesce((SELECT option_value::boolean
                     FROM pg_class c CROSS JOIN LATERAL pg_options_to_table(c.reloptions)
                     WHERE c.oid = 'qqueue.tasks'::regclass AND option_name = 'autovacuum_enabled'), true)
       AS enabled;

-- name: maintenance_vacuum :exec
-- Run by workers after purging when autovacuum is off, so retention still bounds the tables' size. A plain
-- VACUUM takes no lock that blocks claims or inserts; SKIP_LOCKED lets a second worker pass rather than wait.
VACUUM (SKIP_LOCKED) qqueue.tasks, qqueue.task_events, qqueue.tenants;

-- name: worker_heartbeat :exec
UPDATE qqueue.workers SET heartbeat_at = now() WHERE id = %(id)s;

-- name: worker_list_live :many
SELECT id, hostname, pid, queues, concurrency, version, started_at, heartbeat_at,
       extract(epoch FROM heartbeat_age)::double precision AS heartbeat_age_s, running_tasks
FROM qqueue.live_workers
ORDER BY started_at, id;

-- name: worker_listen :exec
-- On the worker's LISTEN connection: new tasks (payload: their queue) and cancel requests (payload: a task id).
LISTEN qqueue_tasks_v1;
LISTEN qqueue_cancel_v1;

-- name: worker_register :exec
INSERT INTO qqueue.workers (id, hostname, pid, queues, concurrency, version)
VALUES (%(id)s, %(hostname)s, %(pid)s, %(queues)s, %(concurrency)s, %(version)s);

-- name: worker_stop :exec
UPDATE qqueue.workers SET stopped_at = now(), heartbeat_at = now() WHERE id = %(id)s;
