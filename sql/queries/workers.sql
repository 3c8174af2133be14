-- Named queries on qqueue.workers (see tasks.sql for the header format).

-- name: worker_heartbeat :exec
UPDATE qqueue.workers SET heartbeat_at = now() WHERE id = %(id)s;

-- name: worker_register :exec
INSERT INTO qqueue.workers (id, hostname, pid, queues, concurrency, version)
VALUES (%(id)s, %(hostname)s, %(pid)s, %(queues)s, %(concurrency)s, %(version)s);

-- name: worker_stop :exec
UPDATE qqueue.workers SET stopped_at = now(), heartbeat_at = now() WHERE id = %(id)s;
