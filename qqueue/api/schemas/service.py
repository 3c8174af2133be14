"""The service's own answers: health, queue statistics, live workers, and the backends runs may target (what
clients build a Qiskit Target from)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct


class Health(Struct, kw_only=True):
    """Answer of GET /health: 200 when the database answers and its schema is current, else 503.

    `status`, `timestamp`, `database_status` and `queue_status` are the fields of the contract clients of the
    system qqueue replaces read; the rest says why. With API keys on, the figures (workers, depth, long-polls)
    are left out: /health answers anyone."""

    status: Literal["healthy", "unhealthy"]
    timestamp: datetime
    database_status: Literal["connected", "disconnected"]
    #: "connected" when the queue's schema is present and current, so tasks can be queued and claimed.
    queue_status: Literal["connected", "disconnected"]
    database: Literal["ok", "unreachable"]
    schema: Literal["current", "behind", "missing", "unknown"]
    schema_version: int | None
    expected_schema_version: int
    live_workers: int | None
    #: Due pending tasks over all queues.
    queue_depth: int | None
    #: Long-polls (GET /tasks/{id}?wait=…) this API process is holding open.
    long_polls: int | None
    message: str | None = None


class QueueStats(Struct, kw_only=True):
    """One queue, from the qqueue.queue_stats view."""

    queue: str
    pending: int
    due: int
    running: int
    completed: int
    failed: int
    cancelled: int
    oldest_due_age_s: float | None
    completed_last_minute: int
    failed_last_minute: int
    #: A paused queue's tasks are not claimed by any worker until it is resumed.
    paused: bool = False
    #: At most this many of the queue's tasks run at once, over every worker; null for no limit.
    max_running: int | None = None


class QueueControls(Struct, kw_only=True):
    """A queue's controls, as an operator set them (POST /queues/{name}/pause, /resume, /limit)."""

    queue: str
    paused: bool
    paused_at: datetime | None
    max_running: int | None
    updated_at: datetime


#: The largest max_running a queue may be given: the bound of POST /queues/{name}/limit, which the dashboard's
#: form and `qqueue queue limit` read from here.
MAX_RUNNING = 1_000_000


class QueueLimit(Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /queues/{name}/limit: the most of the queue's tasks that may run at once; null removes the
    limit."""

    max_running: Annotated[int, Meta(ge=1, le=MAX_RUNNING)] | None


class WorkerInfo(Struct, kw_only=True):
    """One live worker, from the qqueue.live_workers view."""

    id: uuid.UUID
    #: Where the worker runs; null for a tenant's key (with API keys on, only the operator sees hosts).
    hostname: str | None
    pid: int | None
    queues: list[str]
    concurrency: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age_s: float
    running_tasks: int


class BackendInfo(Struct, kw_only=True):
    """A simulator or offline fake device runs can target (options.backend; "aer_simulator" is the ideal
    simulator)."""

    name: str
    num_qubits: int
    basis_gates: list[str]
    #: Directed edges, each [control, target]; null for all-to-all (the ideal simulator).
    coupling_map: list[Annotated[list[int], Meta(min_length=2, max_length=2)]] | None
    simulator: bool
    #: True for a fake device: runs use its noise model.
    noisy: bool
    description: str
