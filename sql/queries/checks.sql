-- Named queries of the invariant checker (see tasks.sql for the header format).

-- name: invariant_unfinished_count :one
SELECT count(*) AS unfinished FROM qqueue.tasks WHERE status IN ('pending', 'running');

-- name: invariant_violations_list :many
SELECT task_id, job_id, violation FROM qqueue.invariant_violations ORDER BY task_id, job_id, violation
LIMIT %(limit)s;
