-- qqueue schema, version 15: per-task webhooks. A task submitted with a `callback_url` is POSTed to it when it
-- ends (completed, failed, cancelled), signed with its tenant's secret; each such notice is a row of
-- qqueue.webhook_deliveries that workers claim with SKIP LOCKED, as they claim tasks, and retry with backoff.
--
-- The statements that finish tasks are the hottest of the queue and are not touched: a row trigger whose WHEN
-- clause reads only the new row writes the delivery. For a task without a callback the clause is false and the
-- trigger queues nothing (no function call, no event), so finishing such tasks costs what it did.

ALTER TABLE qqueue.tasks ADD COLUMN callback_url text;

-- 244 random bits (pg_strong_random, through gen_random_uuid) as 64 hex digits.
CREATE FUNCTION qqueue.webhook_secret_new() RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT 'whsec_' || encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'hex')
$$;

-- HMAC needs the secret itself, so it is stored as is (unlike API keys, of which only a hash is kept).
-- A volatile default gives every existing tenant a secret of its own.
ALTER TABLE qqueue.tenants ADD COLUMN webhook_secret text NOT NULL DEFAULT qqueue.webhook_secret_new();

-- Tasks queued without API keys have no tenant: their webhooks are signed with the one service-wide secret.
CREATE TABLE qqueue.webhook_service_secret (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    secret   text    NOT NULL DEFAULT qqueue.webhook_secret_new()
);
INSERT INTO qqueue.webhook_service_secret DEFAULT VALUES;

CREATE TABLE qqueue.webhook_deliveries (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- No foreign key: one would add a check to every update of every task (see version 10); the rows go with
    -- their task through the delete trigger below.
    task_id          uuid        NOT NULL,
    tenant           text,
    url              text        NOT NULL,
    -- How the task ended, as it was then: a later retry of the task changes its row, never this notice.
    task_status      qqueue.task_status NOT NULL CHECK (task_status IN ('completed', 'failed', 'cancelled')),
    task_attempt     integer     NOT NULL,
    finished_at      timestamptz NOT NULL,
    error            jsonb,
    -- Sends tried so far. A claim counts one and moves next_attempt_at past the send's timeout, so a worker
    -- that dies mid-send leaves the row due again later (at least once), never lost and never sent twice at once.
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    -- Set when attempts ran out, or the target was refused at send time: never tried again.
    abandoned_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
-- The claim reads only rows still to deliver, so its cost follows the backlog, not the history.
CREATE INDEX webhook_deliveries_due_idx ON qqueue.webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND abandoned_at IS NULL;
CREATE INDEX webhook_deliveries_task_idx ON qqueue.webhook_deliveries (task_id);

CREATE FUNCTION qqueue.tasks_after_finish_webhook() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO qqueue.webhook_deliveries (task_id, tenant, url, task_status, task_attempt, finished_at, error)
    VALUES (NEW.id, NEW.tenant, NEW.callback_url, NEW.status, NEW.attempt, NEW.finished_at, NEW.error);
    -- Identical notifications of one transaction are sent once, so a batch of finishes wakes deliverers once.
    PERFORM pg_notify('qqueue_webhooks_v1', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_after_finish_webhook AFTER UPDATE OF status ON qqueue.tasks
    FOR EACH ROW
    WHEN (NEW.callback_url IS NOT NULL AND NEW.status IN ('completed', 'failed', 'cancelled')
          AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION qqueue.tasks_after_finish_webhook();

-- What the API checks at submission, kept for tasks queued by plain SQL; fires only where a callback is set.
CREATE FUNCTION qqueue.tasks_check_callback() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (length(NEW.callback_url) <= 2048 AND NEW.callback_url ~* '^https?://') THEN
        RAISE EXCEPTION 'new row for relation "tasks" violates check constraint "tasks_callback_url_check"'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tasks_callback_url_check', TABLE = 'tasks',
                  SCHEMA = 'qqueue';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER tasks_check_callback BEFORE INSERT OR UPDATE OF callback_url ON qqueue.tasks
    FOR EACH ROW WHEN (NEW.callback_url IS NOT NULL)
    EXECUTE FUNCTION qqueue.tasks_check_callback();

CREATE FUNCTION qqueue.tasks_after_delete_webhooks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Most purges meet an empty table: say so with one index probe before collecting ids.
    IF EXISTS (SELECT 1 FROM qqueue.webhook_deliveries) THEN
        DELETE FROM qqueue.webhook_deliveries WHERE task_id = ANY (ARRAY(SELECT id FROM gone_tasks));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_after_delete_webhooks AFTER DELETE ON qqueue.tasks
    REFERENCING OLD TABLE AS gone_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION qqueue.tasks_after_delete_webhooks();

CREATE FUNCTION qqueue.tasks_after_truncate_webhooks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE qqueue.webhook_deliveries;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_after_truncate_webhooks AFTER TRUNCATE ON qqueue.tasks
    FOR EACH STATEMENT EXECUTE FUNCTION qqueue.tasks_after_truncate_webhooks();
