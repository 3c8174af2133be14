"""The task model shared by every layer: statuses, what a client submits, what a worker claims, and ids."""

from __future__ import annotations

import enum
import os
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import msgspec


class TaskStatus(str, enum.Enum):
    """A task's state; the values equal the Postgres enum qqueue.task_status."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True once the task can change no more."""
        return self in TERMINAL_STATUSES


#: The statuses a task (and a job, whose statuses have the same names) ends in. Members compare equal to their
#: values, so `"failed" in TERMINAL_STATUSES` holds too.
TERMINAL_STATUSES: frozenset[TaskStatus] = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class TaskSpec(msgspec.Struct, kw_only=True):
    """Everything needed to queue one task; field names match the columns of qqueue.tasks."""

    kind: str
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 3
    #: Absolute start time; wins over `delay_s`. Both unset: due now (by the database clock).
    run_at: datetime | None = None
    delay_s: float | None = None
    timeout_s: float | None = None
    idempotency_key: str | None = None
    correlation_id: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    #: What intake measured of the circuit; None for non-circuit kinds.
    profile: dict[str, Any] | None = None
    #: Content hash of everything a seeded result depends on; equal keys may share one result.
    cache_key: str | None = None
    #: Hash of the request an idempotency key was first used with (a reuse with another body is refused).
    request_hash: str | None = None
    #: Who submitted it, with API keys on; None for tasks queued without keys (or by plain SQL).
    tenant: str | None = None
    #: The job the task is a part of (qqueue.jobs), the PUB it runs (0-based) and which part of that PUB.
    job_id: uuid.UUID | None = None
    job_pub: int | None = None
    job_part: int | None = None
    #: POSTed a signed notice when the task ends (qqueue.webhooks); checked against the allow-list by intake.
    callback_url: str | None = None
    #: True for the tasks of a job with a callback: their ends are watched for the job's (migration 0018).
    job_callback: bool | None = None
    #: Assigned at enqueue when unset.
    id: uuid.UUID | None = None


class ClaimedTask(msgspec.Struct, kw_only=True, frozen=True):
    """A task a worker holds a lease on. (id, attempt) is the fencing token for every later write."""

    id: uuid.UUID
    kind: str
    #: The payload's JSON text, passed to the slot as read (a worker has no use for its contents).
    payload: msgspec.Raw
    attempt: int
    max_attempts: int
    timeout_s: float | None
    correlation_id: str | None
    #: Set when a completed task with the same cache key answers for this one.
    cached_from: uuid.UUID | None = None
    cached_result: Any = None


_last_ms = 0
_counter = 0
_id_lock = threading.Lock()


def new_task_id() -> uuid.UUID:
    """A UUID version 7 (RFC 9562) that sorts after every id this process made before.

    The 12-bit sub-millisecond field is a counter, so tasks enqueued in one batch keep their order (FIFO among
    equal priority and run_at) and the primary-key index is appended to rather than written at random.
    """
    global _last_ms, _counter
    with _id_lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms, _counter = now_ms, 0
        else:
            _counter += 1
            if _counter > 0xFFF:  # 4,096 ids in one millisecond: borrow the next one
                _last_ms, _counter = _last_ms + 1, 0
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (_last_ms << 80) | (0x7 << 76) | (_counter << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)
