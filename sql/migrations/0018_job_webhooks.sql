-- qqueue schema, version 18: webhooks for jobs. A job submitted with a `callback_url` is POSTed once when it ends
-- (no task of it is pending or running any more), by the same deliverers, signed the same way: its notice is a
-- row of qqueue.webhook_deliveries naming the job instead of a task.
--
-- As in version 15, the statements that finish tasks are not touched. The tasks of a job with a callback carry
-- `job_callback`, and only for them is the row trigger below called: for every other task its WHEN clause, which
-- reads only the new and old rows, is false, so finishing them costs what it did.

ALTER TABLE qqueue.jobs ADD COLUMN callback_url text
    CONSTRAINT jobs_callback_url_check CHECK (length(callback_url) <= 2048 AND callback_url ~* '^https?://');

-- True on every task of a job with a callback; NULL otherwise (no default: adding the column rewrites nothing).
ALTER TABLE qqueue.tasks ADD COLUMN job_callback boolean;

-- A notice is of a task or of a job, never both. A job's has no attempt: its tasks each have their own.
ALTER TABLE qqueue.webhook_deliveries
    ALTER COLUMN task_id DROP NOT NULL,
    ALTER COLUMN task_attempt DROP NOT NULL,
    ADD COLUMN job_id uuid,
    ADD CONSTRAINT webhook_deliveries_subject_check CHECK ((task_id IS NULL) <> (job_id IS NULL)),
    ADD CONSTRAINT webhook_deliveries_task_attempt_check CHECK (task_id IS NULL OR task_attempt IS NOT NULL);
-- One notice per end of a job (a job re-opened by a retry ends again, later); it also lists a job's deliveries.
CREATE UNIQUE INDEX webhook_deliveries_job_idx ON qqueue.webhook_deliveries (job_id, finished_at)
    WHERE job_id IS NOT NULL;

CREATE FUNCTION qqueue.tasks_after_finish_job_webhook() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Two transactions finishing a job's last two tasks would each see the other's task still running, and
    -- neither would see the job end. They take turns here, and each statement below reads a fresh snapshot, so
    -- the later one sees the earlier one's commit. One lock for every job, not one per job: a statement finishing
    -- tasks of several jobs would take their locks in its own order, and two such statements could deadlock.
    -- Only finishes of tasks of jobs with callbacks take it, and each holds it until its statement commits.
    PERFORM pg_advisory_xact_lock(hashtext('qqueue.job_webhooks')::bigint);
    -- The job still runs: most calls stop here. Parts finish roughly in order, so reading them from the last one
    -- backwards meets an unfinished part first.
    PERFORM 1 FROM qqueue.tasks t
    WHERE t.job_id = NEW.job_id AND t.status IN ('pending', 'running')
    ORDER BY t.job_pub DESC, t.job_part DESC
    LIMIT 1;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    -- A statement that ends a job calls this once per task it finished; the first call wrote the notice.
    IF EXISTS (SELECT 1 FROM qqueue.webhook_deliveries d
               WHERE d.job_id = NEW.job_id AND d.finished_at >= NEW.finished_at) THEN
        RETURN NULL;
    END IF;
    -- Status and finish time as GET /jobs/{id} reads them; the error is the first failed part's.
    INSERT INTO qqueue.webhook_deliveries (job_id, tenant, url, task_status, finished_at, error)
    SELECT j.id, j.tenant, j.callback_url, s.status::qqueue.task_status, s.finished_at,
           (SELECT t.error FROM qqueue.tasks t
            WHERE t.job_id = j.id AND t.status = 'failed'
            ORDER BY t.job_pub, t.job_part
            LIMIT 1)
    FROM qqueue.jobs j
    JOIN qqueue.job_stats s ON s.id = j.id
    WHERE j.id = NEW.job_id AND j.callback_url IS NOT NULL
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        PERFORM pg_notify('qqueue_webhooks_v1', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_after_finish_job_webhook AFTER UPDATE OF status ON qqueue.tasks
    FOR EACH ROW
    WHEN (NEW.job_callback AND NEW.status IN ('completed', 'failed', 'cancelled')
          AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION qqueue.tasks_after_finish_job_webhook();

-- A job's notices go with it (a purge deletes jobs whole); no foreign key, as for tasks' (version 15).
CREATE FUNCTION qqueue.jobs_after_delete_webhooks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM qqueue.webhook_deliveries WHERE job_id = ANY (ARRAY(SELECT id FROM gone_jobs));
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_after_delete_webhooks AFTER DELETE ON qqueue.jobs
    REFERENCING OLD TABLE AS gone_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION qqueue.jobs_after_delete_webhooks();
