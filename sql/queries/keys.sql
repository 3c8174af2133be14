-- API keys and tenants (qqueue/keys.py, qqueue/api/auth.py). Header format as in tasks.sql.

-- name: api_key_get :one
-- The row a presented key's public prefix names; the caller compares hashes in constant time.
SELECT k.key_hash, k.tenant, k.role, k.revoked_at IS NOT NULL AS revoked
FROM qqueue.api_keys k
WHERE k.prefix = %(prefix)s;

-- name: api_key_insert :one
INSERT INTO qqueue.api_keys (prefix, key_hash, tenant, label, role)
VALUES (%(prefix)s, %(key_hash)s, %(tenant)s, %(label)s, %(role)s)
RETURNING id, prefix, tenant, role, created_at;

-- name: api_key_list :many
SELECT k.id, k.prefix, k.tenant, k.role, k.label, k.created_at, k.revoked_at
FROM qqueue.api_keys k
WHERE %(tenant)s::text IS NULL OR k.tenant = %(tenant)s::text
ORDER BY k.created_at, k.id;

-- name: api_key_revoke :one
-- By id or by prefix; revoking twice keeps the first revocation time.
UPDATE qqueue.api_keys
SET revoked_at = coalesce(revoked_at, now())
WHERE prefix = %(ref)s OR id::text = %(ref)s
RETURNING id, prefix, tenant, role, label, created_at, revoked_at;

-- name: tenant_admit :one
-- Admit `n` submissions of a tenant, or say why not, in the caller's transaction: the tenant row stays locked
-- until the tasks are inserted and committed, so concurrent submissions (on any API process) can neither
-- overrun the pending limit nor spend the same tokens twice. Tokens refill at `rate` per second up to `burst`.
WITH own AS (
    SELECT name, tokens, refilled_at,
           coalesce(max_pending, %(default_max_pending)s::integer) AS max_pending,
           coalesce(submit_rate_per_s, %(default_rate)s::double precision) AS rate
    FROM qqueue.tenants
    WHERE name = %(tenant)s
    FOR UPDATE
), t AS (
    -- A new bucket starts full; the bucket holds at least one second's worth of the tenant's rate.
    SELECT name, max_pending, rate,
           least(coalesce(tokens, %(burst)s::double precision) + extract(epoch FROM now() - refilled_at) * rate,
                 greatest(%(burst)s::double precision, rate)) AS available
    FROM own
), pending AS (
    -- Counting stops one past the limit: the answer is the same and a huge backlog costs no more.
    SELECT count(*) AS n
    FROM (SELECT 1 FROM qqueue.tasks, t
          WHERE tasks.tenant = t.name AND tasks.status = 'pending'
          LIMIT (SELECT max_pending + 1 FROM t)) p
), decision AS (
    SELECT t.name, t.available, t.rate, t.max_pending, pending.n AS pending,
           CASE WHEN pending.n + %(n)s::integer > t.max_pending THEN 'pending_limit'
                WHEN t.available < %(n)s::integer THEN 'rate_limit' END AS refused
    FROM t, pending
), updated AS (
    UPDATE qqueue.tenants x
    SET tokens = d.available - CASE WHEN d.refused IS NULL THEN %(n)s::integer ELSE 0 END, refilled_at = now()
    FROM decision d
    WHERE x.name = d.name
)
SELECT refused, pending, max_pending,
       -- Seconds until enough tokens have refilled (rate limit), for Retry-After.
       CASE WHEN refused = 'rate_limit' THEN (%(n)s::integer - available) / rate END AS retry_after_s
FROM decision;

-- name: tenant_upsert :one
-- Create a tenant, or change its limits (NULL keeps the current value).
INSERT INTO qqueue.tenants (name, max_pending, submit_rate_per_s)
VALUES (%(name)s, %(max_pending)s, %(submit_rate_per_s)s)
ON CONFLICT (name) DO UPDATE
SET max_pending = coalesce(EXCLUDED.max_pending, tenants.max_pending),
    submit_rate_per_s = coalesce(EXCLUDED.submit_rate_per_s, tenants.submit_rate_per_s)
RETURNING name, max_pending, submit_rate_per_s;
