-- qqueue schema, version 16: a finished task sent back to 'pending' (a retry, through the API, the CLI or plain
-- SQL) leaves the metrics as a deleted one does: its finish stays counted, folded into the totals if the roll-up
-- had not reached it yet, and it no longer counts as stored in its old status. When it ends again, that end is
-- counted too: the counters count ends, not tasks. The trigger's WHEN clause is false for every claim and every
-- outcome (they change running and pending tasks), so the worker's statements never call it.
CREATE FUNCTION qqueue.tasks_after_unfinish() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM qqueue.metric_leave(ARRAY[ROW(OLD.queue, OLD.kind, OLD.status, OLD.error, OLD.created_at, OLD.run_at,
                                          OLD.started_at, OLD.finished_at)::qqueue.metric_fact]);
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_after_unfinish AFTER UPDATE OF status ON qqueue.tasks
    FOR EACH ROW
    WHEN (OLD.status IN ('completed', 'failed', 'cancelled') AND NEW.status NOT IN ('completed', 'failed', 'cancelled'))
    EXECUTE FUNCTION qqueue.tasks_after_unfinish();
