-- qqueue schema, version 7: vacuum the status history as eagerly as the tasks.
-- Every purge deletes a task's history rows with it (ON DELETE CASCADE), so under retention the history table
-- churns as fast as the task table. With the defaults (vacuum once 20% of the table is dead) its size kept
-- climbing for minutes under steady load; with the task table's settings it levels off with it.
ALTER TABLE qqueue.task_events SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);
