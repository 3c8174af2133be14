-- qqueue schema, version 14: running totals behind the Prometheus metrics (GET /metrics), so that counters and
-- histograms read from the database are the same for every API process, survive restarts, stay monotonic when
-- finished tasks are deleted, and cost a scrape the same however many finished rows the table holds.
--
-- How: finished tasks are rolled up into totals behind a moving mark (qqueue.metric_rollup_mark.upto): totals
-- hold every task that finished before the mark, and a scrape adds the few rows that finished since (read
-- through tasks_finished_idx). The roll-up runs on scrape (metric_roll_up), in bounded steps, never in the
-- worker's claim or completion statements, which do no more work than before. A finished task that leaves the
-- table (deleted by the retention purge, with its job, by a plain DELETE or TRUNCATE) goes through
-- metric_leave, in the deleting statement's transaction: folded into the totals if it finished after the mark
-- (else it is there already), and counted as gone, so the gauge of finished tasks still stored stays right.
--
-- A task inserted already finished behind the mark (plain SQL, the benchmarks' history fill) is folded by an insert
-- trigger. What the totals assume: a finished task's finished_at is never changed (a statement that takes a task
-- out of its finished state, such as a retry, passes its old row to metric_leave in the same transaction).
--
-- The mark trails now() by a lag (see metric_roll_up) because a row's finished_at is its statement's start, not
-- its commit: a task finishing in a statement that commits after the mark passed its finished_at would be missed.
-- qqueue's finishing statements are single statements bounded by statement_timeout, well inside the lag.

-- The bounds (in seconds) of the queue-wait and run-time histograms: from a millisecond (a cached answer, a
-- no-op) to a day (the longest timeout a task may have). A bound is never changed in place: totals are kept per
-- bound, so changing the list takes a migration that moves what the totals hold.
CREATE FUNCTION qqueue.metric_buckets() RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '{0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30,60,120,300,600,1800,3600,7200,21600,86400}'
           ::double precision[]
$$;

-- The histogram bucket of an observation: the smallest bound at or above it (Prometheus' `le`), or Infinity.
-- width_bucket counts the bounds at or below the value; written as one expression so the planner inlines it.
CREATE FUNCTION qqueue.metric_le(seconds double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN seconds IS NULL THEN NULL
        WHEN width_bucket(seconds, qqueue.metric_buckets()) > 0
             AND (qqueue.metric_buckets())[width_bucket(seconds, qqueue.metric_buckets())] = seconds
            THEN seconds
        ELSE coalesce((qqueue.metric_buckets())[width_bucket(seconds, qqueue.metric_buckets()) + 1], 'Infinity')
    END
$$;

-- What one finished task observes, the one definition both the scrape (over live rows) and the folding below
-- use. Queue wait: from when the attempt that ended the task was due (its run_at, never before the task was
-- created) to when that attempt started; a task scheduled for later has not waited while it was not due. Run
-- time: from that start to the end. Both only for tasks that ended completed or failed (a task cancelled while
-- pending never ran; one cancelled after a retry would count its backoff as running).
CREATE FUNCTION qqueue.metric_queue_wait_s(t_status qqueue.task_status, t_created_at timestamptz,
                                           t_run_at timestamptz, t_started_at timestamptz)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN t_status IN ('completed', 'failed') AND t_started_at IS NOT NULL
                THEN extract(epoch FROM t_started_at - greatest(t_run_at, t_created_at))::double precision END
$$;

CREATE FUNCTION qqueue.metric_run_time_s(t_status qqueue.task_status, t_started_at timestamptz,
                                         t_finished_at timestamptz)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN t_status IN ('completed', 'failed') AND t_started_at IS NOT NULL
                THEN extract(epoch FROM t_finished_at - t_started_at)::double precision END
$$;

-- The failure a finished task counts under: its error's `type`, for failed tasks only ('' otherwise; a task
-- cancelled after a failed attempt keeps that attempt's error, but did not fail).
CREATE FUNCTION qqueue.metric_error_type(t_status qqueue.task_status, t_error jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN t_status = 'failed' THEN coalesce(t_error ->> 'type', '') ELSE '' END
$$;

-- Finished tasks rolled up (finished before the mark, or after it and since deleted), by how they ended.
CREATE TABLE qqueue.metric_task_totals (
    queue      text               NOT NULL,
    kind       text               NOT NULL,
    status     qqueue.task_status NOT NULL CHECK (status IN ('completed', 'failed', 'cancelled')),
    -- the failure's `type` (metric_error_type), '' for others.
    error_type text               NOT NULL,
    tasks      bigint             NOT NULL CHECK (tasks >= 0),
    PRIMARY KEY (queue, kind, status, error_type)
);

-- The histogram observations of the same tasks: per bucket (not cumulative), how many and their sum in seconds.
CREATE TABLE qqueue.metric_histogram_totals (
    metric       text             NOT NULL CHECK (metric IN ('queue_wait', 'run_time')),
    queue        text             NOT NULL,
    kind         text             NOT NULL,
    le           double precision NOT NULL,
    observations bigint           NOT NULL CHECK (observations >= 0),
    seconds      double precision NOT NULL,
    PRIMARY KEY (metric, queue, kind, le)
);

-- Finished tasks that left the table (whenever they finished): stored = rolled up + finished since the mark - gone.
CREATE TABLE qqueue.metric_gone_totals (
    queue  text               NOT NULL,
    status qqueue.task_status NOT NULL CHECK (status IN ('completed', 'failed', 'cancelled')),
    tasks  bigint             NOT NULL CHECK (tasks >= 0),
    PRIMARY KEY (queue, status)
);

-- One row: every task that finished before `upto` is in the totals.
CREATE TABLE qqueue.metric_rollup_mark (
    one  boolean     PRIMARY KEY DEFAULT true CHECK (one),
    upto timestamptz NOT NULL
);
INSERT INTO qqueue.metric_rollup_mark (upto) VALUES ('-infinity');

-- One finished task as the totals read it: only the columns the metrics use (never its payload or result).
-- Passed as an array of these: a composite array costs a fraction of what JSON would to build and read.
CREATE TYPE qqueue.metric_fact AS (
    queue text, kind text, status qqueue.task_status, error jsonb,
    created_at timestamptz, run_at timestamptz, started_at timestamptz, finished_at timestamptz
);

-- Adds finished tasks to the totals. Rows are upserted in key order, so two statements folding at once (two
-- workers purging) lock the same total rows in the same order: no deadlock.
CREATE FUNCTION qqueue.metric_fold(facts qqueue.metric_fact[]) RETURNS void
LANGUAGE sql AS $$
    WITH t AS (
        SELECT * FROM unnest(facts) AS t WHERE t.status IN ('completed', 'failed', 'cancelled')
    ), counted AS (
        INSERT INTO qqueue.metric_task_totals AS m (queue, kind, status, error_type, tasks)
        SELECT queue, kind, status, qqueue.metric_error_type(status, error), count(*)
        FROM t
        GROUP BY 1, 2, 3, 4
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (queue, kind, status, error_type) DO UPDATE SET tasks = m.tasks + excluded.tasks
    ), observed AS (
        SELECT queue, kind, 'queue_wait' AS metric,
               qqueue.metric_queue_wait_s(status, created_at, run_at, started_at) AS s
        FROM t
        UNION ALL
        SELECT queue, kind, 'run_time', qqueue.metric_run_time_s(status, started_at, finished_at)
        FROM t
    )
    INSERT INTO qqueue.metric_histogram_totals AS m (metric, queue, kind, le, observations, seconds)
    SELECT metric, queue, kind, qqueue.metric_le(s), count(*), sum(s)
    FROM observed
    WHERE s IS NOT NULL
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (metric, queue, kind, le) DO UPDATE
        SET observations = m.observations + excluded.observations, seconds = m.seconds + excluded.seconds
$$;

-- Finished tasks leaving their finished state: deleted, or (for any future statement that does so, such as a
-- retry) made unfinished again. Call it in the same transaction as the change. Waits for a
-- roll-up in progress (the mark's row lock), so a task is never folded both by it and here.
CREATE FUNCTION qqueue.metric_leave(facts qqueue.metric_fact[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    mark timestamptz;
BEGIN
    IF cardinality(facts) = 0 THEN
        RETURN;
    END IF;
    SELECT upto INTO mark FROM qqueue.metric_rollup_mark FOR SHARE;
    PERFORM qqueue.metric_fold(ARRAY(SELECT f FROM unnest(facts) AS f WHERE f.finished_at >= mark));
    INSERT INTO qqueue.metric_gone_totals AS m (queue, status, tasks)
    SELECT f.queue, f.status, count(*)
    FROM unnest(facts) AS f
    WHERE f.status IN ('completed', 'failed', 'cancelled')
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (queue, status) DO UPDATE SET tasks = m.tasks + excluded.tasks;
END
$$;

-- Moves the mark forward: folds tasks that finished between it and now() - lag, at most about max_rows of them
-- (stopping at a finished_at, so tasks finished by one statement are folded together). Returns how many it folded
-- and the mark it leaves. Run on scrape, by whichever API process gets the mark's lock; the others pass (SKIP
-- LOCKED), since a scrape adds what is not rolled up yet anyway. Called until it folds fewer than max_rows, a
-- table left unscraped for long (or filled in bulk) is worked off in bounded steps.
CREATE FUNCTION qqueue.metric_roll_up(lag_s double precision, max_rows integer, OUT folded bigint,
                                      OUT mark timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    new_mark timestamptz := now() - make_interval(secs => lag_s);
    boundary timestamptz;
    facts qqueue.metric_fact[];
BEGIN
    folded := 0;
    SELECT m.upto INTO mark FROM qqueue.metric_rollup_mark m FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        SELECT m.upto INTO mark FROM qqueue.metric_rollup_mark m;
        RETURN;
    END IF;
    IF mark >= new_mark THEN
        RETURN;
    END IF;
    -- Each statement below reads a snapshot taken after the lock: a delete that committed while we waited has
    -- folded its rows already (under the old mark) and is not seen again here.
    SELECT finished_at INTO boundary FROM qqueue.tasks
    WHERE finished_at >= mark AND finished_at < new_mark
    ORDER BY finished_at OFFSET max_rows LIMIT 1;
    IF boundary > mark THEN
        new_mark := boundary;
    END IF;
    facts := ARRAY(SELECT ROW(queue, kind, status, error, created_at, run_at, started_at,
                              finished_at)::qqueue.metric_fact
                   FROM qqueue.tasks WHERE finished_at >= mark AND finished_at < new_mark);
    PERFORM qqueue.metric_fold(facts);
    UPDATE qqueue.metric_rollup_mark SET upto = new_mark;
    folded := cardinality(facts);
    mark := new_mark;
END
$$;

-- The history trigger of version 10, now also taking the deleted tasks out of the metrics (metric_leave).
-- Statement-level, so a purge batch does it in one call, in the transaction of its delete. A job's deletion
-- cascades to its tasks through this trigger too.
CREATE OR REPLACE FUNCTION qqueue.tasks_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- = ANY of an array, not a join: the planner knows nothing of a transition table's size and could choose a
    -- scan of the whole history for a purge batch.
    DELETE FROM qqueue.task_events WHERE task_id = ANY (ARRAY(SELECT id FROM gone_tasks));
    PERFORM qqueue.metric_leave(ARRAY(SELECT ROW(queue, kind, status, error, created_at, run_at, started_at,
                                              finished_at)::qqueue.metric_fact
                                       FROM gone_tasks WHERE finished_at IS NOT NULL));
    RETURN NULL;
END
$$;

-- TRUNCATE has no transition table: the finished rows are taken out before they go.
CREATE FUNCTION qqueue.tasks_before_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM qqueue.metric_leave(ARRAY(SELECT ROW(queue, kind, status, error, created_at, run_at, started_at,
                                              finished_at)::qqueue.metric_fact
                                       FROM qqueue.tasks WHERE finished_at IS NOT NULL));
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_before_truncate BEFORE TRUNCATE ON qqueue.tasks
    FOR EACH STATEMENT EXECUTE FUNCTION qqueue.tasks_before_truncate();

-- Tasks inserted already finished (plain SQL, an import, the benchmarks' history fill) with a finished_at behind the
-- mark would be neither rolled up nor added by a scrape: they are folded as they arrive. Tasks qqueue inserts are
-- pending, so for them this is one look over the statement's new rows.
CREATE FUNCTION qqueue.tasks_after_insert_metrics() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    mark timestamptz;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_tasks WHERE finished_at IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    -- The mark's row lock: a roll-up waits for this insert, and then sees these rows at or after the mark.
    SELECT upto INTO mark FROM qqueue.metric_rollup_mark FOR SHARE;
    PERFORM qqueue.metric_fold(ARRAY(SELECT ROW(queue, kind, status, error, created_at, run_at, started_at,
                                              finished_at)::qqueue.metric_fact
                                       FROM new_tasks WHERE finished_at < mark));
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_after_insert_metrics AFTER INSERT ON qqueue.tasks
    REFERENCING NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION qqueue.tasks_after_insert_metrics();
