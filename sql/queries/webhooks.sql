-- Webhook deliveries (qqueue/webhooks/deliverer.py, qqueue/store/reads.py) and secrets (qqueue/store/webhooks.py).
-- Header format as in tasks.sql.

-- name: webhook_delivery_claim :many
-- Take up to `limit` due deliveries, oldest due first. Claiming counts the attempt and moves next_attempt_at
-- `lease_s` ahead (past the send's timeout), so no other worker takes the row while it is being sent, and one
-- whose worker died is sent again once that passes. The secret is read here, at send time, so a rotation
-- applies to every later attempt.
WITH due AS (
    SELECT id FROM qqueue.webhook_deliveries
    WHERE delivered_at IS NULL AND abandoned_at IS NULL AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE qqueue.webhook_deliveries d
SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => %(lease_s)s)
FROM due
WHERE d.id = due.id
RETURNING d.id, d.task_id, d.job_id, d.tenant, d.url, d.task_status, d.task_attempt, d.finished_at, d.error, d.attempts,
          CASE WHEN d.tenant IS NULL THEN (SELECT s.secret FROM qqueue.webhook_service_secret s)
               ELSE (SELECT t.webhook_secret FROM qqueue.tenants t WHERE t.name = d.tenant) END AS secret;

-- name: webhook_delivery_due :one
-- Whether any delivery is due: the backstop probe a worker runs on its query session, once per poll interval,
-- while its deliverer holds no session of its own (one read of the due index; see qqueue/webhooks/deliverer.py).
SELECT EXISTS (
    SELECT 1 FROM qqueue.webhook_deliveries
    WHERE delivered_at IS NULL AND abandoned_at IS NULL AND next_attempt_at <= now()
) AS due;

-- name: webhook_delivery_list :many
-- The deliveries of one task (`task_id`) or one job (`job_id`; the other NULL), newest first. With a tenant given,
-- another tenant's task or job is not found: no row at all. A visible one without deliveries is one row of NULLs.
-- The secret is never read here.
WITH owner AS (
    SELECT 1 FROM qqueue.tasks t
    WHERE t.id = %(task_id)s::uuid AND (%(tenant)s::text IS NULL OR t.tenant = %(tenant)s::text)
    UNION ALL
    SELECT 1 FROM qqueue.jobs j
    WHERE j.id = %(job_id)s::uuid AND (%(tenant)s::text IS NULL OR j.tenant = %(tenant)s::text)
)
SELECT d.id, d.task_id, d.job_id, d.url, d.task_status, d.task_attempt, d.attempts,
       -- Only a delivery still to be sent has a next attempt.
       CASE WHEN d.delivered_at IS NULL AND d.abandoned_at IS NULL THEN d.next_attempt_at END AS next_attempt_at,
       d.last_status_code, d.last_error, d.finished_at, d.delivered_at, d.abandoned_at, d.created_at
FROM (SELECT 1 FROM owner LIMIT 1) AS visible
LEFT JOIN qqueue.webhook_deliveries d ON d.task_id = %(task_id)s::uuid OR d.job_id = %(job_id)s::uuid
ORDER BY d.id DESC;

-- name: webhook_delivery_record :exec
-- The outcome of each send of a claimed batch, in one statement. Fenced on `attempts`: a row that was claimed
-- again after this claim lapsed belongs to the newer attempt, which records its own outcome.
UPDATE qqueue.webhook_deliveries d
SET last_status_code = o.status_code,
    last_error = o.error,
    delivered_at = CASE WHEN o.delivered THEN now() END,
    abandoned_at = CASE WHEN o.abandon THEN now() END,
    next_attempt_at = CASE WHEN o.delivered OR o.abandon THEN d.next_attempt_at
                           ELSE now() + make_interval(secs => o.retry_in_s) END
FROM jsonb_to_recordset(%(outcomes)s::jsonb) AS o(
    id bigint, attempts integer, status_code integer, error text, delivered boolean, abandon boolean,
    retry_in_s double precision)
WHERE d.id = o.id AND d.attempts = o.attempts AND d.delivered_at IS NULL AND d.abandoned_at IS NULL;

-- name: webhook_listen :exec
-- On the worker's LISTEN session, beside worker_listen, when the worker delivers webhooks: a notice to send wakes
-- its deliverer, which holds no session while nothing is due.
LISTEN qqueue_webhooks_v1;

-- name: webhook_secret_get :one
-- The secret webhooks of `tenant` are signed with; NULL tenant: the service-wide secret (tasks without one).
SELECT CASE WHEN %(tenant)s::text IS NULL THEN (SELECT s.secret FROM qqueue.webhook_service_secret s)
            ELSE (SELECT t.webhook_secret FROM qqueue.tenants t WHERE t.name = %(tenant)s::text) END AS secret;

-- name: webhook_secret_rotate :one
-- A new secret for `tenant` (NULL: the service-wide one); the old one stops signing at once.
WITH tenant AS (
    UPDATE qqueue.tenants SET webhook_secret = qqueue.webhook_secret_new()
    WHERE %(tenant)s::text IS NOT NULL AND name = %(tenant)s::text
    RETURNING webhook_secret
), service AS (
    UPDATE qqueue.webhook_service_secret SET secret = qqueue.webhook_secret_new()
    WHERE %(tenant)s::text IS NULL
    RETURNING secret
)
SELECT coalesce((SELECT webhook_secret FROM tenant), (SELECT secret FROM service)) AS secret;
