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

-- The invariant rules learn the retry. Two rules over task rows (nothing after the end, one end) do not hold for a
-- retried task by design: its history continues after a failure or a cancel. For retried tasks (those with an
-- attempt_budget) the checker judges them again here instead: every end but the last must be followed at once
-- by its retry, a 'pending' row after a failure or a cancel (a completed task is never retried). The other rules,
-- kept in qqueue.task_invariant_violations, hold for every task as they are.
CREATE OR REPLACE VIEW qqueue.invariant_violations AS
SELECT v.task_id, v.violation, v.job_id
FROM qqueue.task_invariant_violations v
WHERE NOT (v.violation = 'history continues after the task finished'
           OR v.violation LIKE '% terminal history rows; a task ends exactly once')
   OR NOT EXISTS (SELECT 1 FROM qqueue.tasks t WHERE t.id = v.task_id AND t.attempt_budget IS NOT NULL)
UNION ALL
SELECT r.task_id, 'history continues after the task finished', r.job_id
FROM (
    SELECT e.task_id, e.job_id,
           bool_or(e.status IN ('completed', 'failed', 'cancelled') AND e.next_status IS NOT NULL
                   AND NOT (e.status IN ('failed', 'cancelled') AND e.next_status = 'pending')) AS broken
    FROM (SELECT e.task_id, t.job_id, e.status,
                 lead(e.status) OVER (PARTITION BY e.task_id ORDER BY e.id) AS next_status
          FROM qqueue.tasks t
          JOIN qqueue.task_events e ON e.task_id = t.id
          WHERE t.attempt_budget IS NOT NULL) e
    GROUP BY e.task_id, e.job_id
) r
WHERE r.broken
UNION ALL
SELECT e.task_id, 'status history of a task that does not exist', NULL::uuid
FROM qqueue.task_events e
WHERE NOT EXISTS (SELECT 1 FROM qqueue.tasks t WHERE t.id = e.task_id)
GROUP BY e.task_id;
