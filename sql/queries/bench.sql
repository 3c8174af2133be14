-- Named queries of the benchmarks (see tasks.sql for the header format).

-- name: bench_delete_queue :exec
-- A benchmark's tasks, its jobs (whose tasks go with them) and their history.
WITH jobs AS (DELETE FROM qqueue.jobs WHERE queue = %(queue)s)
DELETE FROM qqueue.tasks WHERE queue = %(queue)s;

-- name: bench_fill_finished :exec
-- Finished history of another queue, to show that claim cost does not grow with the rows a table keeps.
INSERT INTO qqueue.tasks (queue, kind, status, attempt, result, finished_at, created_at)
SELECT %(queue)s, 'noop', 'completed', 1, 'null', now() - interval '1 hour', now() - interval '1 hour'
FROM generate_series(1, %(count)s);

-- name: bench_simulator_time :one
-- Mean CPU seconds a benchmark's completed tasks spent in the simulator call, as the simulate kind timed it.
SELECT coalesce(avg((result #>> '{timings,simulate_cpu_s}')::double precision), 0) AS simulate_s
FROM qqueue.tasks WHERE queue = %(queue)s AND status = 'completed';

-- name: bench_table_bytes :one
-- Whole footprint: heap, indexes and TOAST of the task table and of its history.
SELECT pg_total_relation_size('qqueue.tasks') AS tasks,
       pg_total_relation_size('qqueue.task_events') AS events,
       (SELECT count(*) FROM qqueue.tasks) AS rows;

-- name: bench_unfinished_count :one
-- Reads only the two partial indexes (pending, running), so polling it costs nothing however full the table is.
SELECT (SELECT count(*) FROM qqueue.tasks WHERE status = 'pending' AND queue = %(queue)s)
     + (SELECT count(*) FROM qqueue.tasks WHERE status = 'running' AND queue = %(queue)s) AS unfinished;

-- name: bench_vacuum_analyze :exec
-- After a bulk fill: fresh statistics and a visibility map, as autovacuum would leave a table in service.
VACUUM ANALYZE qqueue.tasks;

-- name: bench_window :one
SELECT min(started_at) AS first_start, max(finished_at) AS last_finish, count(*) AS completed
FROM qqueue.tasks WHERE queue = %(queue)s AND status = 'completed';

-- name: bench_worker_backends :many
-- The server processes of the workers' connections (their application names, see Supervisor._connect).
SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'qqueue-worker%%';

-- name: bench_workers_done :one
SELECT count(DISTINCT worker_id) AS workers FROM qqueue.tasks WHERE queue = %(queue)s AND status = 'completed';
