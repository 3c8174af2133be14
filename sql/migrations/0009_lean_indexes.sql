-- qqueue schema, version 9: the indexes every task update writes, only where they hold something.
-- Claiming and finishing a task move it between the partial indexes of its status, so those updates are never
-- HOT: each writes a new entry into every index whose predicate the new row meets. An index over all rows is
-- therefore paid twice per task. Most tasks carry no tags and no Idempotency-Key, and an empty tag list or a
-- NULL key is never looked up, so these two indexes now cover only the rows that have one. Lookups say as much
-- (task_list adds tags <> '{}' to a tag filter; a key compared with = is never NULL), so they still use them.

DROP INDEX qqueue.tasks_tags_idx;
CREATE INDEX tasks_tags_idx ON qqueue.tasks USING gin (tags) WHERE tags <> '{}'::text[];

-- NULL keys never conflicted (NULLs are distinct), so uniqueness is the same as before.
DROP INDEX qqueue.tasks_tenant_idempotency_key_idx;
CREATE UNIQUE INDEX tasks_tenant_idempotency_key_idx ON qqueue.tasks ((coalesce(tenant, '')), idempotency_key)
    WHERE idempotency_key IS NOT NULL;
