-- qqueue schema, version 12: key roles and retries.
--
-- Roles. A key is a tenant's (sees and changes only that tenant's tasks and jobs, as before) or an operator's
-- (sees every tenant, and the workers' hosts). An operator key may name a tenant, whose limits and ownership its
-- submissions then take; without one its submissions belong to no tenant, like tasks queued with keys off.
ALTER TABLE qqueue.api_keys
    ADD COLUMN role text NOT NULL DEFAULT 'tenant' CHECK (role IN ('tenant', 'operator')),
    ALTER COLUMN tenant DROP NOT NULL,
    ADD CONSTRAINT api_keys_tenant_role_check CHECK (role = 'operator' OR tenant IS NOT NULL);

-- Retries. A failed or cancelled task may be sent back to 'pending' (POST /tasks/{id}/retry). Its attempt
-- counter keeps counting, so every history row keeps a distinct attempt and fencing stays exact; instead the
-- task gets as many attempts again as it was submitted with: max_attempts becomes attempt + attempt_budget.
-- attempt_budget is NULL until the first retry, which records the max_attempts submitted.
-- No CHECK of its own: PostgreSQL would test it on every claim and outcome (see version 11); only a retry
-- writes it, copying max_attempts, which is checked.
ALTER TABLE qqueue.tasks ADD COLUMN attempt_budget integer;

-- The invariant rules learn the retry: the row sending a task back to 'pending' may follow its end, and each
-- run of the task ends once. A completed task is never sent back: history after it is still a violation.
CREATE OR REPLACE VIEW qqueue.task_invariant_violations AS
WITH steps AS (
    SELECT e.*,
           lag(e.attempt) OVER w AS prev_attempt,
           lag(e.status) OVER w AS prev_status,
           lag(e.worker_id) OVER w AS prev_worker_id,
           row_number() OVER w AS n
    FROM qqueue.task_events e
    WINDOW w AS (PARTITION BY e.task_id ORDER BY e.id)
), events AS (
    SELECT s.*,
           -- A retry is the one row that may follow an end: back to 'pending' straight after a failure or a
           -- cancel (a completed task is never retried).
           s.status = 'pending' AND s.prev_status IN ('failed', 'cancelled') AS is_retry,
           count(*) FILTER (WHERE s.status IN ('completed', 'failed', 'cancelled'))
               OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS terminal_before,
           count(*) FILTER (WHERE s.status = 'pending' AND s.prev_status IN ('failed', 'cancelled'))
               OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS retries_through
    FROM steps s
    WINDOW w AS (PARTITION BY s.task_id ORDER BY s.id)
), history AS (
    SELECT task_id,
           -- Ends that no retry undid: a task ends exactly once per run.
           count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled'))
               - count(*) FILTER (WHERE is_retry) AS terminal_events,
           count(*) FILTER (WHERE status = 'completed') AS completed_events,
           -- Two claims in a row with no outcome between them: two workers held the task at once.
           bool_or(status = 'running' AND prev_status = 'running') AS double_claim,
           (array_agg(status ORDER BY id DESC))[1] AS last_status,
           (array_agg(attempt ORDER BY id DESC) FILTER (WHERE status = 'completed'))[1] AS completed_attempt,
           bool_and(attempt >= prev_attempt OR prev_attempt IS NULL OR status = 'pending') AS attempts_monotonic,
           -- Every end but the last must be followed at once by its retry.
           bool_or(terminal_before > retries_through) AS changed_after_end,
           -- Rows without a worker (submission, cancel while pending) are written by no claim holder.
           bool_or(n > 1 AND status <> 'running' AND worker_id IS NOT NULL
                   AND NOT (prev_status IS NOT DISTINCT FROM 'running'
                            AND prev_worker_id IS NOT DISTINCT FROM worker_id
                            AND (attempt = prev_attempt OR (status = 'pending' AND attempt = prev_attempt - 1))))
               AS unfenced_outcome
    FROM events
    GROUP BY task_id
)
SELECT t.id AS task_id, v.violation, t.job_id
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
LEFT JOIN LATERAL (
    -- Per parameter set: counts (a sweep's list, or each register of a sampler's data) against the shots.
    SELECT (SELECT count(*) FROM (
                SELECT c.value AS counts FROM jsonb_array_elements(
                    CASE WHEN jsonb_typeof(t.result -> 'counts') = 'array' THEN t.result -> 'counts' ELSE '[]' END) c
                UNION ALL
                SELECT c.value FROM jsonb_each(
                         CASE WHEN t.kind = 'sample' AND jsonb_typeof(t.result -> 'data') = 'object'
                              THEN t.result -> 'data' ELSE '{}' END) r,
                     jsonb_array_elements(CASE WHEN jsonb_typeof(r.value -> 'counts') = 'array'
                                               THEN r.value -> 'counts' ELSE '[]' END) c
            ) s
            WHERE jsonb_typeof(s.counts) IS DISTINCT FROM 'object'
               OR (SELECT sum(CASE WHEN jsonb_typeof(v.value) = 'number' THEN (v.value #>> '{}')::numeric END)
                   FROM jsonb_each(s.counts) v) IS DISTINCT FROM asked.shots
           ) AS bad_sets,
           CASE WHEN t.kind = 'estimate' AND jsonb_typeof(t.result #> '{data,evs}') = 'array'
                THEN jsonb_array_length(t.result #> '{data,evs}')
                WHEN t.kind = 'sample' THEN (
                    SELECT max(jsonb_array_length(r.value -> 'counts'))
                    FROM jsonb_each(CASE WHEN jsonb_typeof(t.result -> 'data') = 'object'
                                         THEN t.result -> 'data' ELSE '{}' END) r
                    WHERE jsonb_typeof(r.value -> 'counts') = 'array') END AS result_sets
    -- The shots asked for, read once per task: a sweep's payload holds its parameter values, and reading it
    -- per parameter set would decompress it as many times. OFFSET 0 keeps the planner from inlining it back.
    FROM (SELECT CASE WHEN jsonb_typeof(t.payload -> 'shots') = 'number'
                      THEN (t.payload ->> 'shots')::numeric END AS shots OFFSET 0) asked
    WHERE t.status = 'completed' AND t.kind IN ('simulate', 'sample', 'estimate')
) sweep ON true
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
    (CASE WHEN t.status = 'completed' AND jsonb_typeof(t.result -> 'counts') IS DISTINCT FROM 'array'
               AND t.result ? 'counts' AND t.result ? 'shots'
               AND counts.total IS DISTINCT FROM
                   CASE WHEN jsonb_typeof(t.result -> 'shots') = 'number' THEN (t.result ->> 'shots')::numeric END
          THEN 'result counts do not sum to its shots' END),
    (CASE WHEN t.status = 'completed' AND t.kind = 'simulate' AND jsonb_typeof(t.payload -> 'shots') = 'number'
               AND (t.payload ->> 'shots')::numeric > 0
               AND jsonb_typeof(t.result -> 'counts') IS DISTINCT FROM 'array'
               AND counts.total IS DISTINCT FROM (t.payload ->> 'shots')::numeric
          THEN format('completed with counts summing to %s, not the %s shots it asked for',
                      coalesce(counts.total::text, 'nothing'), t.payload ->> 'shots') END),
    (CASE WHEN t.status IN ('completed', 'failed', 'cancelled') AND t.lease_expires_at IS NOT NULL
          THEN 'finished task still holds a lease' END),
    -- Sweeps and samplers: every parameter set ran the shots asked for.
    (CASE WHEN t.status = 'completed' AND t.kind IN ('simulate', 'sample') AND sweep.bad_sets > 0
          THEN format('%s parameter sets have counts that do not sum to the %s shots asked for',
                      sweep.bad_sets, t.payload ->> 'shots') END),
    -- A part of a job holds exactly the parameter sets it was given.
    (CASE WHEN t.status = 'completed' AND t.job_id IS NOT NULL AND sweep.result_sets IS DISTINCT FROM
               (t.payload #>> '{sets,1}')::numeric - (t.payload #>> '{sets,0}')::numeric
          THEN format('the result holds %s parameter sets, but the task was given %s',
                      coalesce(sweep.result_sets::text, 'none'),
                      (t.payload #>> '{sets,1}')::numeric - (t.payload #>> '{sets,0}')::numeric) END)
) AS v(violation)
WHERE v.violation IS NOT NULL
UNION ALL
SELECT NULL::uuid, r.violation, j.id
FROM qqueue.jobs j
CROSS JOIN LATERAL (
    SELECT count(*) AS tasks,
           count(DISTINCT t.job_pub) AS pubs_seen,
           count(*) FILTER (WHERE t.status IN ('pending', 'running')) AS unfinished,
           max(t.finished_at) AS last_finished_at
    FROM qqueue.tasks t WHERE t.job_id = j.id
) s
CROSS JOIN LATERAL (VALUES
    (CASE WHEN s.tasks <> j.tasks_total
          THEN format('job has %s tasks, not the %s it was created with', s.tasks, j.tasks_total) END),
    (CASE WHEN s.pubs_seen <> j.pubs
          THEN format('job has tasks for %s PUBs, not its %s', s.pubs_seen, j.pubs) END),
    (CASE WHEN j.finished_at IS NOT NULL AND s.unfinished > 0
          THEN format('job was seen finished, but %s of its tasks are unfinished', s.unfinished) END),
    (CASE WHEN j.finished_at IS NOT NULL AND s.last_finished_at > j.finished_at
          THEN 'a task of the job finished after the job was seen finished' END)
) AS r(violation)
WHERE r.violation IS NOT NULL
UNION ALL
SELECT NULL::uuid, format('PUB %s: its parts cover %s parameter sets from %s, not its %s', p.pub, p.covered,
                          p.first_start, j.sizes[p.pub + 1]), j.id
FROM qqueue.jobs j
CROSS JOIN LATERAL (
    SELECT t.job_pub AS pub,
           sum((t.payload #>> '{sets,1}')::bigint - (t.payload #>> '{sets,0}')::bigint) AS covered,
           min((t.payload #>> '{sets,0}')::bigint) AS first_start,
           -- contiguous: each part starts where the one before it stopped.
           bool_and((t.payload #>> '{sets,0}')::bigint = coalesce(t.prev_stop, 0)) AS contiguous
    FROM (SELECT t.*, lag((t.payload #>> '{sets,1}')::bigint) OVER (PARTITION BY t.job_pub ORDER BY t.job_part)
                          AS prev_stop
          FROM qqueue.tasks t WHERE t.job_id = j.id) t
    GROUP BY t.job_pub
) p
WHERE p.covered IS DISTINCT FROM j.sizes[p.pub + 1] OR NOT p.contiguous OR p.pub NOT BETWEEN 0 AND j.pubs - 1;
