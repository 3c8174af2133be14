-- qqueue schema, version 6: API keys and tenants.
-- With API keys on, every task belongs to the tenant whose key submitted it, and a tenant sees only its own.
-- Tasks queued with keys off (or by plain SQL) have no tenant.

CREATE TABLE qqueue.tenants (
    name              text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    -- NULL limits mean the API's defaults (QQUEUE_API_TENANT_MAX_PENDING, QQUEUE_API_TENANT_SUBMIT_RATE).
    max_pending       integer     CHECK (max_pending IS NULL OR max_pending >= 0),
    submit_rate_per_s double precision CHECK (submit_rate_per_s IS NULL OR submit_rate_per_s > 0),
    -- Token bucket for submissions: kept in the database so every API process shares one limit.
    tokens            double precision,
    refilled_at       timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now()
);
-- Updated by every admitted submission: keep room for HOT updates and vacuum it often.
ALTER TABLE qqueue.tenants SET (fillfactor = 50, autovacuum_vacuum_threshold = 100,
                                autovacuum_vacuum_scale_factor = 0.0);

-- Only a SHA-256 of each key is stored; the key itself is shown once, when it is created. `prefix` is the
-- public part of the key (qq_<prefix>_<secret>) that finds the row; the hash is compared in constant time.
CREATE TABLE qqueue.api_keys (
    id          uuid        PRIMARY KEY DEFAULT qqueue.uuid_v7(),
    prefix      text        NOT NULL UNIQUE CHECK (prefix ~ '^[a-z0-9]{12}$'),
    key_hash    bytea       NOT NULL CHECK (length(key_hash) = 32),
    tenant      text        NOT NULL REFERENCES qqueue.tenants (name),
    label       text        CHECK (length(label) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

ALTER TABLE qqueue.tasks ADD COLUMN tenant text;

-- An Idempotency-Key is the client's own name for a request, so it is unique per tenant, not globally: two
-- tenants choosing the same key must neither collide nor ever see each other's task.
ALTER TABLE qqueue.tasks DROP CONSTRAINT tasks_idempotency_key_key;
CREATE UNIQUE INDEX tasks_tenant_idempotency_key_idx ON qqueue.tasks ((coalesce(tenant, '')), idempotency_key);

-- A tenant's pending-task limit is checked on every submission; this index keeps that count to its own rows.
CREATE INDEX tasks_tenant_pending_idx ON qqueue.tasks (tenant) WHERE status = 'pending' AND tenant IS NOT NULL;
-- A tenant's listing, newest first, without scanning other tenants' history.
CREATE INDEX tasks_tenant_created_idx ON qqueue.tasks (tenant, created_at, id) WHERE tenant IS NOT NULL;
