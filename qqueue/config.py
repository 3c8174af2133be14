"""Settings: one msgspec Struct, read once from `QQUEUE_*` environment variables, each overridable by a CLI flag."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from qqueue.errors import ConfigError

ENV_PREFIX = "QQUEUE_"


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "qqueue")


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything qqueue can be told; defaults suit one machine."""

    #: libpq URL of the database; None means the embedded Postgres under `data_dir`.
    database_url: str | None = None
    #: Where the embedded Postgres keeps its data (kept across restarts).
    data_dir: str = msgspec.field(default_factory=_default_data_dir)
    #: Queues a worker consumes.
    queues: list[str] = msgspec.field(default_factory=lambda: ["default"])
    #: Slot processes per worker; None means one per CPU core.
    concurrency: int | None = None
    #: How long a claim stays valid without renewal. A crashed worker's tasks are reclaimed after this.
    lease_s: float = 30.0
    #: Slow poll backstop for lost notifications; LISTEN/NOTIFY wakes workers at once otherwise.
    poll_interval_s: float = 5.0
    #: Most tasks claimed in one statement.
    claim_batch: int = 500
    #: Tasks handed to a slot at once; small keeps latency fair, large cuts pipe overhead.
    slot_batch: int = 200
    #: Seconds a stopping worker waits for running tasks before handing them back.
    grace_s: float = 30.0
    #: Execution time limit for tasks that set none.
    default_timeout_s: float = 600.0
    #: Exponential retry backoff: base * 2**(attempt-1), capped, with +-50% jitter.
    retry_base_s: float = 1.0
    retry_cap_s: float = 300.0
    #: Finished tasks older than this are deleted by workers (about once a minute); None keeps them forever.
    retention_s: float | None = None
    #: Extra modules a worker imports to register task kinds.
    imports: list[str] = msgspec.field(default_factory=list)
    #: Every connection sets these so a stuck query or an abandoned transaction cannot pin the queue.
    statement_timeout_s: float = 30.0
    idle_in_transaction_timeout_s: float = 60.0
    log_level: str = "INFO"
    #: HTTP API: connections its pool keeps open, and the most it opens under load.
    api_pool_min_size: int = 2
    api_pool_max_size: int = 10
    #: How long a request waits for a connection before answering 503.
    api_pool_timeout_s: float = 5.0
    #: /health answers within about this, database down or not.
    api_health_timeout_s: float = 2.0
    #: libpq connect_timeout of every new API connection (seconds; libpq's minimum is 2).
    api_connect_timeout_s: int = 3
    #: Largest body of POST /tasks (and of the other single requests); larger answers 413 before it is read
    #: whole. Also what arrays and objects one object of any submission's body may hold outside its parameter
    #: values and observables (`qqueue.api.bodies`), so that no body holds the event loop for long.
    api_max_body_bytes: int = 1024 * 1024
    #: Largest body of POST /tasks/batch and of POST /jobs.
    api_max_batch_body_bytes: int = 32 * 1024 * 1024
    #: Long-poll waiters are re-checked against the database this often even without a notification.
    api_wait_backstop_s: float = 5.0
    #: GET /events: streams one API process serves at once (one more answers 503), how often its event reader
    #: reads the status history, and the quiet after which a stream sends a `: keepalive` comment.
    api_events_max_streams: int = 100
    api_events_poll_s: float = 0.5
    api_events_keepalive_s: float = 15.0
    #: GET /metrics reads the database at most once per this many seconds per API process; scrapes in between
    #: (several Prometheus servers, a dashboard) get the same figures. 0 reads on every scrape.
    api_metrics_cache_s: float = 2.0
    #: Require `Authorization: Bearer <key>` (keys from `qqueue keys create`) on every endpoint but /health; each
    #: tenant then sees only its own tasks.
    api_auth: bool = False
    #: Signs the dashboard's CSRF tokens. Unset, each API process draws its own at start: set one shared value when
    #: several API processes serve /ui behind one address, so a form from one is accepted by another.
    ui_secret: str | None = None
    #: Per-tenant defaults (a tenant's own limits, set with `qqueue keys create`, win): most pending tasks, and
    #: submissions per second with bursts of up to `api_tenant_submit_burst`. Over either: 429 with Retry-After.
    api_tenant_max_pending: int = 10_000
    api_tenant_submit_rate: float = 100.0
    api_tenant_submit_burst: float = 1_000.0
    #: Kinds the API queues without a circuit (their `payload` as given); every other kind goes through intake.
    #: None on a production API: `qqueue dev` and the benchmarks open the test kinds noop, sleep and fail.
    api_raw_kinds: list[str] = msgspec.field(default_factory=list)
    #: Intake's parser processes (per API process): how many, the memory each may use beyond its size at start,
    #: how long one submission's parse may take, and how long a batch's may take in all.
    intake_processes: int = 2
    intake_memory_bytes: int = 2 * 1024**3
    intake_deadline_s: float = 10.0
    intake_batch_budget_s: float = 60.0
    #: Parameter sets per task of a job: a PUB with more is split into contiguous parts that different
    #: workers run at once (a job may choose its own, `chunk_size`).
    job_chunk_size: int = 250
    #: Webhooks: hosts and addresses callbacks may reach although not public (loopback, private ranges...):
    #: addresses, CIDR ranges, host names or `*.domain` (QQUEUE_WEBHOOK_ALLOW=10.0.0.0/8,hooks.internal).
    webhook_allow: list[str] = msgspec.field(default_factory=list)
    #: Whether workers send due webhooks (a thread of each worker, with a database session of its own while any
    #: are due).
    webhook_deliver: bool = True
    #: Sends per delivery before it is given up, and the backoff between them: base * 2**(n-1), capped, +-50%.
    webhook_max_attempts: int = 8
    webhook_backoff_base_s: float = 5.0
    webhook_backoff_cap_s: float = 3600.0
    #: Time limit of one send (connect, write, read the answer's head).
    webhook_timeout_s: float = 10.0
    #: Backstop poll for due deliveries; a notification wakes the deliverer at once otherwise.
    webhook_poll_interval_s: float = 5.0
    #: The API's address as receivers reach it, for the `result_url` of webhooks (else a path is sent).
    public_url: str | None = None

    def __post_init__(self) -> None:
        if self.concurrency is not None and not 1 <= self.concurrency <= 1024:
            raise ConfigError("concurrency must be between 1 and 1024")
        if self.lease_s < 1:
            raise ConfigError("lease_s must be at least 1 second")
        if self.poll_interval_s <= 0 or self.claim_batch < 1 or self.slot_batch < 1:
            raise ConfigError("poll_interval_s, claim_batch and slot_batch must be positive")
        if self.retention_s is not None and self.retention_s < 60:
            raise ConfigError("retention_s must be at least 60 seconds")
        if self.api_tenant_max_pending < 0 or self.api_tenant_submit_rate <= 0 or self.api_tenant_submit_burst < 1:
            raise ConfigError("tenant limits must be positive (max pending may be 0)")
        if not 0 <= self.api_metrics_cache_s <= 60:
            raise ConfigError("api_metrics_cache_s must be between 0 and 60 seconds")
        if not self.queues:
            raise ConfigError("at least one queue is required")
        if not 1 <= self.intake_processes <= 64 or self.intake_memory_bytes < 64 * 1024**2 or \
                self.intake_deadline_s <= 0 or self.intake_batch_budget_s <= 0:
            raise ConfigError("intake needs 1 to 64 processes, at least 64 MiB each and positive time limits")
        if not 1 <= self.api_events_max_streams <= 100_000 or not 0.01 <= self.api_events_poll_s <= 60 or \
                not 0.1 <= self.api_events_keepalive_s <= 3600:
            raise ConfigError("event streams need 1 to 100,000 streams, a poll of 0.01 to 60 s and a keepalive of "
                              "0.1 to 3600 s")
        if not 1 <= self.job_chunk_size <= 100_000:
            raise ConfigError("job_chunk_size must be between 1 and 100,000 parameter sets")
        if not 1 <= self.webhook_max_attempts <= 100 or self.webhook_backoff_base_s < 0 or \
                self.webhook_backoff_cap_s < self.webhook_backoff_base_s or not 0 < self.webhook_timeout_s <= 300 \
                or self.webhook_poll_interval_s <= 0:
            raise ConfigError("webhooks need 1 to 100 attempts, a backoff base no larger than its cap, a send "
                              "timeout of up to 300 s and a positive poll interval")
        from qqueue.webhooks.targets import AllowList

        AllowList.from_entries(self.webhook_allow)  # a bad entry is a configuration error at start

    def effective_concurrency(self) -> int:
        """Slots to run: the configured number, or the machine's core count."""
        return self.concurrency or (os.cpu_count() or 1)


_LIST_FIELDS = {"queues", "imports", "api_raw_kinds", "webhook_allow"}


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from `QQUEUE_*` variables, then CLI overrides (None values are ignored).

    Lists in the environment are comma-separated, e.g. ``QQUEUE_QUEUES=default,bulk``.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    for field in msgspec.structs.fields(Settings):
        value = env.get(ENV_PREFIX + field.name.upper())
        if value is None or value == "":
            continue
        raw[field.name] = [v.strip() for v in value.split(",") if v.strip()] if field.name in _LIST_FIELDS else value
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid setting: {exc}") from None
