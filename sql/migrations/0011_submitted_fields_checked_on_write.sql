-- qqueue schema, version 11: what a task was submitted with is checked when it is written, not at every change
-- of its state. PostgreSQL tests every CHECK constraint of a table on every UPDATE, whatever the statement sets,
-- so each claim and each outcome tested again the queue and kind patterns, the lengths and the ranges of fields
-- no state change touches: about a seventh of the database's work per no-op task. A row trigger on INSERT and on
-- UPDATE OF exactly those columns applies the same rules, under the same constraint names and SQLSTATE (23514,
-- check_violation), only when they can change. The checks tying a state to its columns (lease, worker,
-- attempts, finish time, error) stay constraints: every state change must satisfy them.
ALTER TABLE qqueue.tasks
    DROP CONSTRAINT tasks_queue_check,
    DROP CONSTRAINT tasks_kind_check,
    DROP CONSTRAINT tasks_priority_check,
    DROP CONSTRAINT tasks_max_attempts_check,
    DROP CONSTRAINT tasks_timeout_s_check,
    DROP CONSTRAINT tasks_idempotency_key_check,
    DROP CONSTRAINT tasks_correlation_id_check,
    DROP CONSTRAINT tasks_tags_check,
    DROP CONSTRAINT tasks_request_hash_check,
    DROP CONSTRAINT tasks_cache_key_check,
    DROP CONSTRAINT tasks_job_fields_check;

CREATE FUNCTION qqueue.tasks_check_submitted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    -- As with a CHECK constraint, a rule that comes out NULL passes (NOT NULL is NULL, and no WHEN takes it).
    broken text := CASE
        WHEN NOT (NEW.queue ~ '^[A-Za-z0-9_.:-]{1,64}$') THEN 'tasks_queue_check'
        WHEN NOT (NEW.kind ~ '^[A-Za-z0-9_.:-]{1,64}$') THEN 'tasks_kind_check'
        WHEN NOT (NEW.priority BETWEEN -100 AND 100) THEN 'tasks_priority_check'
        WHEN NOT (NEW.max_attempts BETWEEN 1 AND 100) THEN 'tasks_max_attempts_check'
        WHEN NOT (NEW.timeout_s IS NULL OR (NEW.timeout_s > 0 AND NEW.timeout_s <= 86400)) THEN 'tasks_timeout_s_check'
        WHEN NOT (length(NEW.idempotency_key) BETWEEN 1 AND 255) THEN 'tasks_idempotency_key_check'
        WHEN NOT (length(NEW.correlation_id) <= 255) THEN 'tasks_correlation_id_check'
        WHEN NOT (cardinality(NEW.tags) <= 32) THEN 'tasks_tags_check'
        WHEN NOT (length(NEW.request_hash) <= 128) THEN 'tasks_request_hash_check'
        WHEN NOT (length(NEW.cache_key) <= 128) THEN 'tasks_cache_key_check'
        WHEN NOT ((NEW.job_id IS NULL) = (NEW.job_pub IS NULL) AND (NEW.job_id IS NULL) = (NEW.job_part IS NULL))
            THEN 'tasks_job_fields_check'
    END;
BEGIN
    IF broken IS NOT NULL THEN
        RAISE EXCEPTION 'new row for relation "tasks" violates check constraint "%"', broken
            USING ERRCODE = 'check_violation', CONSTRAINT = broken, TABLE = 'tasks', SCHEMA = 'qqueue';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER tasks_check_submitted
    BEFORE INSERT OR UPDATE OF queue, kind, priority, max_attempts, timeout_s, idempotency_key, correlation_id,
                               tags, request_hash, cache_key, job_id, job_pub, job_part
    ON qqueue.tasks
    FOR EACH ROW EXECUTE FUNCTION qqueue.tasks_check_submitted();
