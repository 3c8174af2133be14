-- qqueue schema, version 4: the result cache.
-- A seeded circuit task carries a content hash of everything its result depends on (canonical circuit, shots,
-- seed, method, backend, library versions). When a completed task with the same hash exists, a worker answers
-- from its result without simulating and records where the answer came from.

ALTER TABLE qqueue.tasks
    ADD COLUMN cache_key text CHECK (length(cache_key) <= 128),
    ADD COLUMN cached_from uuid;

-- Only completed rows can answer; the index stays as small as the set of distinct cached results.
CREATE INDEX tasks_cache_key_idx ON qqueue.tasks (cache_key) WHERE status = 'completed' AND cache_key IS NOT NULL;
