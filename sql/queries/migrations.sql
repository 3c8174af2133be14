-- Named queries of the migration runner (see tasks.sql for the header format).

-- name: migration_applied_versions :many
SELECT version FROM qqueue.schema_migrations ORDER BY version;

-- name: migration_bootstrap :exec
-- The ledger itself cannot be a migration: it records them.
CREATE SCHEMA IF NOT EXISTS qqueue;
CREATE TABLE IF NOT EXISTS qqueue.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: migration_ledger_exists :one
-- Asked first, so a database that was never migrated gets a clear message rather than a missing-table error.
SELECT to_regclass('qqueue.schema_migrations') IS NOT NULL AS present;

-- name: migration_lock :exec
-- Session-level lock: held across the per-migration transactions, so two `qqueue migrate` runs serialise.
SELECT pg_advisory_lock(hashtext('qqueue.migrate')::bigint);

-- name: migration_record :exec
INSERT INTO qqueue.schema_migrations (version, name, checksum) VALUES (%(version)s, %(name)s, %(checksum)s);

-- name: migration_unbounded :exec
-- Inside one migration's transaction only: a schema change on a large table (an index build) may
-- legitimately outlast the session's statement_timeout, which still bounds everything else.
SET LOCAL statement_timeout = 0;

-- name: migration_unlock :exec
SELECT pg_advisory_unlock(hashtext('qqueue.migrate')::bigint);
