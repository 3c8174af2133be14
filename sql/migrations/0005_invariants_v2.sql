-- qqueue schema, version 5: the invariant checker (qqueue.invariant_violations, read by `qqueue check`) proves
-- three more promises. Every rule of version 3 is kept as it was; the new ones are:
--   * an outcome belongs to the claim it answers: every history row a worker writes (completed, failed,
--     cancelled, or pending for a retry, a reclaim or a release) directly follows the 'running' row of the same
--     worker and the same attempt (a release gives its attempt back, so its row is one lower). A late worker
--     whose attempt was superseded must change nothing; if it ever did, its row would follow someone else's
--     claim, or its own claim would no longer be the latest.
--   * a task ends once and stays ended: no history row after a terminal one.
--   * a completed circuit ran the shots it asked for: a completed `simulate` task has counts (non-negative
--     whole numbers) summing to the shots in its payload, not only to the shots its result claims.
-- The rule on counts of version 3 could fail the whole view on a malformed result (counts that are not an
-- object, or a count that is not a number); the new form reports such a result as a violation instead.

CREATE OR REPLACE VIEW qqueue.invariant_violations AS
WITH events AS (
    SELECT e.*,
           lag(e.attempt) OVER w AS prev_attempt,
           lag(e.status) OVER w AS prev_status,
           lag(e.worker_id) OVER w AS prev_worker_id,
           row_number() OVER w AS n,
           count(*) FILTER (WHERE e.status IN ('completed', 'failed', 'cancelled'))
               OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS terminal_before
    FROM qqueue.task_events e
    WINDOW w AS (PARTITION BY e.task_id ORDER BY e.id)
), history AS (
    SELECT task_id,
           count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled')) AS terminal_events,
           count(*) FILTER (WHERE status = 'completed') AS completed_events,
           -- Two claims in a row with no outcome between them: two workers held the task at once.
           bool_or(status = 'running' AND prev_status = 'running') AS double_claim,
           (array_agg(status ORDER BY id DESC))[1] AS last_status,
           (array_agg(attempt ORDER BY id DESC) FILTER (WHERE status = 'completed'))[1] AS completed_attempt,
           bool_and(attempt >= prev_attempt OR prev_attempt IS NULL OR status = 'pending') AS attempts_monotonic,
           bool_or(terminal_before > 0) AS changed_after_end,
           -- Rows without a worker (submission, cancel while pending) are written by no claim holder.
           bool_or(n > 1 AND status <> 'running' AND worker_id IS NOT NULL
                   AND NOT (prev_status IS NOT DISTINCT FROM 'running'
                            AND prev_worker_id IS NOT DISTINCT FROM worker_id
                            AND (attempt = prev_attempt OR (status = 'pending' AND attempt = prev_attempt - 1))))
               AS unfenced_outcome
    FROM events
    GROUP BY task_id
)
SELECT t.id AS task_id, v.violation
FROM qqueue.tasks t
LEFT JOIN history h ON h.task_id = t.id
LEFT JOIN LATERAL (
    -- NULL when the counts are missing, not an object, or hold anything but non-negative whole numbers.
    SELECT CASE WHEN jsonb_typeof(t.result -> 'counts') = 'object' THEN (
               -- CASE, not AND: only a number may be cast, and AND does not promise to test its left side first.
               SELECT CASE WHEN bool_and(CASE WHEN jsonb_typeof(c.value) = 'number'
                                              THEN (c.value #>> '{}')::numeric >= 0
                                                   AND (c.value #>> '{}')::numeric % 1 = 0
                                              ELSE false END) IS NOT FALSE
                           THEN coalesce(sum(CASE WHEN jsonb_typeof(c.value) = 'number'
                                                  THEN (c.value #>> '{}')::numeric END), 0) END
               FROM jsonb_each(t.result -> 'counts') AS c
           ) END AS total
    WHERE t.status = 'completed'
) counts ON true
CROSS JOIN LATERAL (VALUES
    (CASE WHEN h.task_id IS NULL THEN 'task has no status history' END),
    (CASE WHEN h.last_status IS DISTINCT FROM t.status
          THEN format('status is %s but the last history row says %s', t.status, h.last_status) END),
    (CASE WHEN h.terminal_events > 1
          THEN format('%s terminal history rows; a task ends exactly once', h.terminal_events) END),
    (CASE WHEN h.changed_after_end THEN 'history continues after the task finished' END),
    (CASE WHEN t.status = 'completed' AND h.completed_events <> 1
          THEN format('%s completed history rows', h.completed_events) END),
    (CASE WHEN t.status = 'completed' AND h.completed_attempt IS DISTINCT FROM t.attempt
          THEN format('completed by attempt %s but the task is at attempt %s', h.completed_attempt, t.attempt) END),
    (CASE WHEN h.double_claim THEN 'claimed again while still running' END),
    (CASE WHEN NOT h.attempts_monotonic
          THEN 'an older attempt wrote after a newer one' END),
    (CASE WHEN h.unfenced_outcome
          THEN 'an outcome was written by a worker or attempt other than the latest claim' END),
    (CASE WHEN t.status = 'completed' AND t.result ? 'counts' AND t.result ? 'shots'
               AND counts.total IS DISTINCT FROM
                   CASE WHEN jsonb_typeof(t.result -> 'shots') = 'number' THEN (t.result ->> 'shots')::numeric END
          THEN 'result counts do not sum to its shots' END),
    (CASE WHEN t.status = 'completed' AND t.kind = 'simulate' AND jsonb_typeof(t.payload -> 'shots') = 'number'
               AND counts.total IS DISTINCT FROM (t.payload ->> 'shots')::numeric
          THEN format('completed with counts summing to %s, not the %s shots it asked for',
                      coalesce(counts.total::text, 'nothing'), t.payload ->> 'shots') END),
    (CASE WHEN t.status IN ('completed', 'failed', 'cancelled') AND t.lease_expires_at IS NOT NULL
          THEN 'finished task still holds a lease' END)
) AS v(violation)
WHERE v.violation IS NOT NULL;
