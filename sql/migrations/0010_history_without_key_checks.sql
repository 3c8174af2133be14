-- qqueue schema, version 10: the status history stays tied to its task without a foreign key checked per row.
-- Every claim and every outcome writes a history row, and the foreign key checked each one with a query of its
-- own (locking the task row the same statement had just updated): about an eighth of the database's work per
-- no-op task. History rows are only ever written from the RETURNING of the task update beside them, in the same
-- statement, so they cannot name a missing task. What the key did besides, taking a task's history with it when
-- the task is deleted (purges, a job's deletion, plain SQL), statement triggers now do, and the invariant view
-- reports any history row whose task is gone.
ALTER TABLE qqueue.task_events DROP CONSTRAINT task_events_task_id_fkey;

CREATE FUNCTION qqueue.tasks_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- = ANY of an array, not a join: the planner knows nothing of a transition table's size and could choose a
    -- scan of the whole history for a purge batch.
    DELETE FROM qqueue.task_events WHERE task_id = ANY (ARRAY(SELECT id FROM gone_tasks));
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_after_delete AFTER DELETE ON qqueue.tasks
    REFERENCING OLD TABLE AS gone_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION qqueue.tasks_after_delete();

CREATE FUNCTION qqueue.tasks_after_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE qqueue.task_events;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_after_truncate AFTER TRUNCATE ON qqueue.tasks
    FOR EACH STATEMENT EXECUTE FUNCTION qqueue.tasks_after_truncate();

-- The rules over task rows keep their view under a name of their own; the view the checker reads adds history
-- left without its task.
ALTER VIEW qqueue.invariant_violations RENAME TO task_invariant_violations;

CREATE VIEW qqueue.invariant_violations AS
SELECT task_id, violation, job_id FROM qqueue.task_invariant_violations
UNION ALL
SELECT e.task_id, 'status history of a task that does not exist', NULL::uuid
FROM qqueue.task_events e
WHERE NOT EXISTS (SELECT 1 FROM qqueue.tasks t WHERE t.id = e.task_id)
GROUP BY e.task_id;
