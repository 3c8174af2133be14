-- The queue's promises as a view any operator can query: each row is a task that breaks one.
-- `qqueue check` reads it; an empty answer is the proof. Checked on finished tasks, and on the
-- history of every task.

CREATE VIEW qqueue.invariant_violations AS
WITH history AS (
    SELECT task_id,
           count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled')) AS terminal_events,
           count(*) FILTER (WHERE status = 'completed') AS completed_events,
           -- Two claims in a row with no outcome between them: two workers held the task at once.
           bool_or(status = 'running' AND prev_status = 'running') AS double_claim,
           (array_agg(status ORDER BY id DESC))[1] AS last_status,
           (array_agg(attempt ORDER BY id DESC) FILTER (WHERE status = 'completed'))[1] AS completed_attempt,
           bool_and(attempt >= prev_attempt OR prev_attempt IS NULL OR status = 'pending') AS attempts_monotonic
    FROM (
        SELECT e.*, lag(e.attempt) OVER w AS prev_attempt, lag(e.status) OVER w AS prev_status
        FROM qqueue.task_events e
        WINDOW w AS (PARTITION BY e.task_id ORDER BY e.id)
    ) e
    GROUP BY task_id
)
SELECT t.id AS task_id, v.violation
FROM qqueue.tasks t
LEFT JOIN history h ON h.task_id = t.id
CROSS JOIN LATERAL (VALUES
    (CASE WHEN h.task_id IS NULL THEN 'task has no status history' END),
    (CASE WHEN h.last_status IS DISTINCT FROM t.status
          THEN format('status is %s but the last history row says %s', t.status, h.last_status) END),
    (CASE WHEN h.terminal_events > 1
          THEN format('%s terminal history rows; a task ends exactly once', h.terminal_events) END),
    (CASE WHEN t.status = 'completed' AND h.completed_events <> 1
          THEN format('%s completed history rows', h.completed_events) END),
    (CASE WHEN t.status = 'completed' AND h.completed_attempt IS DISTINCT FROM t.attempt
          THEN format('completed by attempt %s but the task is at attempt %s', h.completed_attempt, t.attempt) END),
    (CASE WHEN h.double_claim THEN 'claimed again while still running' END),
    (CASE WHEN NOT h.attempts_monotonic
          THEN 'an older attempt wrote after a newer one' END),
    (CASE WHEN t.status = 'completed' AND t.result ? 'counts' AND t.result ? 'shots'
               AND (SELECT coalesce(sum(value::bigint), 0) FROM jsonb_each_text(t.result -> 'counts'))
                   <> (t.result ->> 'shots')::bigint
          THEN 'result counts do not sum to its shots' END),
    (CASE WHEN t.status IN ('completed', 'failed', 'cancelled') AND t.lease_expires_at IS NOT NULL
          THEN 'finished task still holds a lease' END)
) AS v(violation)
WHERE v.violation IS NOT NULL;
