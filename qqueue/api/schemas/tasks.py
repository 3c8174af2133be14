"""The task endpoints' bodies and answers: POST /tasks (one or a batch), GET /tasks and /tasks/{task_id},
POST /tasks/{task_id}/cancel and /retry, POST /tasks/retry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from qqueue.api.schemas.common import (
    TAG_PATTERN,
    CallbackUrl,
    ErrorDetail,
    KindName,
    Observables,
    ParameterValues,
    QueueName,
    SimulationOptions,
    Tag,
    UtcTime,
)
from qqueue.intake.model import MAX_SHOTS
from qqueue.tasks import TaskStatus

#: Most tasks one POST /tasks/batch may carry.
MAX_BATCH = 1000


class TaskSubmission(Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /tasks; the minimal body is `{"qc": "...", "shots": 100}`."""

    #: OpenQASM 2 or 3 source. Required for circuit kinds ("simulate").
    qc: Annotated[str, Meta(min_length=1)] | None = None
    #: 0 (kind simulate, with outputs statevector or probabilities): exact results, no sampling.
    shots: Annotated[int, Meta(ge=0, le=MAX_SHOTS)] = 1024
    kind: KindName = "simulate"
    queue: QueueName = "default"
    #: Higher runs first.
    priority: Annotated[int, Meta(ge=-100, le=100)] = 0
    #: Start no earlier than this; give at most one of run_at and delay_s. Neither: due now.
    run_at: UtcTime | None = None
    delay_s: Annotated[float, Meta(ge=0, le=366 * 86400)] | None = None
    max_attempts: Annotated[int, Meta(ge=1, le=100)] = 3
    #: Execution time limit per attempt; unset takes the worker's default.
    timeout_s: Annotated[float, Meta(gt=0, le=86400)] | None = None
    tags: Annotated[list[Tag], Meta(max_length=32)] = msgspec.field(default_factory=list)
    #: Small free-form object kept with the task (at most 8 KiB as JSON).
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    options: SimulationOptions = msgspec.field(default_factory=SimulationOptions)
    #: Only for kinds without a circuit (noop, sleep, fail): handed to the kind as is.
    payload: dict[str, Any] | None = None
    #: The circuit's inputs (`input float theta;`, Qiskit Parameters): an array whose last axis follows the
    #: circuit's parameters sorted by name, or an object of parameter name -> array; broadcast as in Qiskit.
    #: simulate runs once per parameter set (one parse); sample and estimate take it as their PUB's values.
    parameter_values: ParameterValues | None = None
    #: kind "estimate": the observables, a Pauli-string object ({"ZZ": 1.0, "XI": -0.5}), a bare Pauli string,
    #: or (nested) lists of them, broadcast against the parameter sets.
    observables: Observables | None = None
    #: kind "estimate": target precision; 0 is exact (no shot noise), as Aer's EstimatorV2.
    precision: Annotated[float, Meta(ge=0, le=1)] | None = None
    #: kind "simulate" with shots 0: exact outputs instead of counts.
    outputs: Annotated[list[Literal["counts", "statevector", "probabilities"]], Meta(max_length=3)] | None = None
    #: POSTed a signed `WebhookEvent` when the task ends (README, "Webhooks"): http(s), no credentials, and a
    #: public address unless the server's allow-list names it.
    callback_url: CallbackUrl | None = None


class BatchSubmission(Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /tasks/batch: each item is a body of POST /tasks. An item that is not a valid submission is
    refused alone, its error at its index of the answer, while the others are queued: items are decoded one by
    one (`decode_item`), so the schema lists them as TaskSubmission while the decoder takes any JSON value."""

    tasks: Annotated[list[Any], Meta(min_length=1, max_length=MAX_BATCH)]


def decode_item(index: int, item: Any) -> TaskSubmission:
    """One batch item as a `TaskSubmission`, under exactly the rules of a single submission's body; raises
    `msgspec.ValidationError` whose message names the item (`tasks[3].shots: …`). Fields the item holds as
    JSON text (`qqueue.api.bodies`) are kept so, not decoded again."""
    text_fields = {name: value for name, value in item.items() if isinstance(value, msgspec.Raw)} \
        if isinstance(item, dict) else {}
    try:
        sub = msgspec.json.decode(msgspec.json.encode(
            {name: value for name, value in item.items() if name not in text_fields} if text_fields else item),
            type=TaskSubmission)
        return msgspec.structs.replace(sub, **text_fields) if text_fields else sub
    except msgspec.ValidationError as exc:
        text = str(exc)
        path = text.rsplit(" - at `$", 1)
        if len(path) == 2:
            text = f"tasks[{index}]{path[1].rstrip('`')}: {path[0]}"
        else:
            text = f"tasks[{index}]: {text}"
        raise msgspec.ValidationError(text) from None


class SubmitAnswer(Struct, kw_only=True):
    """Answer of POST /tasks: 201 for a new task, 200 for an Idempotency-Key replay (same task)."""

    task_id: uuid.UUID
    status: TaskStatus
    message: str
    submitted_at: datetime
    correlation_id: str | None


class BatchItem(Struct, kw_only=True, omit_defaults=True):
    """One task of a batch, at its request index: its id, or why it was not queued."""

    index: int
    task_id: uuid.UUID | None = None
    #: False when an Idempotency-Key replay found the task of an earlier request.
    created: bool | None = None
    error: ErrorDetail | None = None


class BatchAnswer(Struct, kw_only=True):
    """Answer of POST /tasks/batch. Valid tasks are queued (in one statement) even when others are rejected."""

    status: Literal["ok", "partial", "error"]
    message: str
    queued: int
    rejected: int
    correlation_id: str
    items: list[BatchItem]


class StatusChange(Struct, kw_only=True):
    """One row of a task's status history (qqueue.task_events), oldest first."""

    status: TaskStatus
    transitioned_at: datetime
    attempt: int
    worker_id: uuid.UUID | None
    #: Why, where there is more to say (a retry's error, a reclaimed lease, a cache answer).
    notes: str | None


class Timings(Struct, kw_only=True):
    """Where the time went, in seconds."""

    #: Submission to first start (to the end, or to now, for a task that has not started).
    queued_s: float | None
    #: Time spent running, over all attempts, the current one up to now.
    running_s: float | None
    #: What the worker measured of the last run, e.g. slot_started_at and exec_s.
    reported: dict[str, Any] | None


class TaskDetail(Struct, kw_only=True):
    """Answer of GET /tasks/{task_id}."""

    task_id: uuid.UUID
    status: TaskStatus
    #: The status in words; for a failed task, the error's message.
    message: str
    #: When the task was accepted (the same instant as created_at).
    submitted_at: datetime
    kind: str
    queue: str
    priority: int
    #: 1-based place among the due pending tasks of its queue, in claim order; null unless pending.
    queue_position: int | None
    attempt: int
    max_attempts: int
    created_at: datetime
    run_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    timeout_s: float | None
    #: The worker that ran (or runs) the latest attempt.
    worker_id: uuid.UUID | None
    correlation_id: str | None
    tags: list[str]
    metadata: dict[str, Any]
    #: Where the task's end is POSTed (GET /tasks/{task_id}/webhooks lists the sends); null without one.
    callback_url: str | None = None
    #: What intake measured of the circuit (qubits, depth, memory...).
    profile: dict[str, Any] | None
    #: The kind's result once completed (for circuits: counts and more).
    result: Any
    #: True when the result cache answered: a completed task with the same content hash (`cache_key`:
    #: canonical circuit, shots, seed, method, backend, library versions), `cached_from`, was not run again.
    cached: bool = False
    cache_key: str | None = None
    cached_from: uuid.UUID | None = None
    #: {"type", "message", "retryable"} of the latest failure.
    error: dict[str, Any] | None
    timings: Timings
    status_history: list[StatusChange]


class TaskSummary(Struct, kw_only=True):
    """One task in GET /tasks; GET /tasks/{task_id} has the rest (result, error, history)."""

    task_id: uuid.UUID
    status: TaskStatus
    kind: str
    queue: str
    priority: int
    attempt: int
    max_attempts: int
    tags: list[str]
    correlation_id: str | None
    created_at: datetime
    run_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TaskPage(Struct, kw_only=True):
    """Answer of GET /tasks, newest first. Pass `next_cursor` as `cursor` for the next page; null at the end."""

    items: list[TaskSummary]
    next_cursor: str | None


class CancelAnswer(Struct, kw_only=True):
    """Answer of POST /tasks/{task_id}/cancel: 200 when cancelled, 202 when the running task was asked to stop."""

    task_id: uuid.UUID
    status: Literal["cancelled", "cancel_requested"]
    message: str


#: Most tasks one POST /tasks/retry changes: a bulk retry is bounded work; call again while `more` is true.
MAX_RETRY_BATCH = 1000

#: Why a task is retried, kept in its history (with who asked).
RetryReason = Annotated[str, Meta(min_length=1, max_length=200, pattern=TAG_PATTERN)]


class RetryRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /tasks/{task_id}/retry; it may be left out."""

    reason: RetryReason | None = None


class RetryAnswer(Struct, kw_only=True):
    """Answer of POST /tasks/{task_id}/retry: the task is pending again, with as many attempts again as it was
    submitted with (its attempt counter keeps counting)."""

    task_id: uuid.UUID
    status: Literal["pending"]
    previous_status: Literal["failed", "cancelled"]
    message: str


class BulkRetryRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /tasks/retry: the task listing's filters (all must match), oldest first, at most `limit`."""

    #: Only failed and cancelled tasks can be retried.
    status: Annotated[list[Literal["failed", "cancelled"]], Meta(min_length=1, max_length=2)] = msgspec.field(
        default_factory=lambda: ["failed"])
    queue: QueueName | None = None
    kind: KindName | None = None
    #: Tasks carrying every one of these tags.
    tags: Annotated[list[Tag], Meta(max_length=32)] = msgspec.field(default_factory=list)
    created_after: UtcTime | None = None
    created_before: UtcTime | None = None
    #: Count and list what would be retried, changing nothing.
    dry_run: bool = False
    limit: Annotated[int, Meta(ge=1, le=MAX_RETRY_BATCH)] = MAX_RETRY_BATCH
    reason: RetryReason | None = None


class BulkRetryAnswer(Struct, kw_only=True):
    """Answer of POST /tasks/retry: how many tasks were (with `dry_run`, would be) retried, and their ids."""

    dry_run: bool
    retried: int
    task_ids: list[uuid.UUID]
    #: More tasks match than `limit`: send the same request again (with `dry_run`, they were not counted).
    more: bool
    limit: int
    message: str
