"""Every type on the wire of the HTTP API, defined once as msgspec Structs.

Litestar decodes request bodies into these and generates the OpenAPI document from them. They are separate
from the domain records (`qqueue.tasks`): the wire may rename or hide, the domain never bends to HTTP.
Constraints mirror the CHECKs of qqueue.tasks, so a bad value is a 400 at the door, not a database error.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from qqueue.intake.model import MAX_SHOTS
from qqueue.tasks import TaskStatus

#: Same rule as the CHECK on qqueue.tasks.queue and .kind. The lookahead is for Python, where "$" also matches
#: before a final newline (PostgreSQL's does not): without it "default\n" passes here and fails the INSERT.
NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$(?!\n)"
#: Most tasks one POST /tasks/batch may carry.
MAX_BATCH = 1000

#: Tags: anything but NUL, which PostgreSQL text cannot hold.
TAG_PATTERN = r"^[^\x00]+$"
#: What each pattern asks for, in words: validation messages quote these instead of the regular expression,
#: whose backslashes a JSON answer would double again.
PATTERN_WORDS = {NAME_PATTERN: "1-64 characters of A-Z a-z 0-9 _ . : -", TAG_PATTERN: "no NUL character"}

QueueName = Annotated[str, Meta(pattern=NAME_PATTERN, description="Queue name: 1-64 of A-Z a-z 0-9 _ . : -")]
KindName = Annotated[str, Meta(pattern=NAME_PATTERN, description="Task kind: 1-64 of A-Z a-z 0-9 _ . : -")]
Tag = Annotated[str, Meta(min_length=1, max_length=100, pattern=TAG_PATTERN)]
UtcTime = Annotated[datetime, Meta(tz=True, description="ISO 8601 with a UTC offset")]


#: Parameter values as sent: nested lists of numbers, or an object of parameter name -> nested lists. Intake
#: checks their shape, their names and that every value is a finite number.
ParameterValues = Annotated[Any, Meta(description="Nested array (last axis: the circuit's parameters in name order) "
                                                  "or an object of parameter name to nested array")]
Observables = Annotated[Any, Meta(description='Pauli-string object such as {"ZZ": 1.0, "XI": -0.5}, a Pauli '
                                              "string, or nested lists of them")]


class SimulationOptions(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """How a circuit is run. Unset fields take the simulator's defaults; intake checks the values."""

    #: Aer simulation method, e.g. "automatic", "statevector", "stabilizer", "matrix_product_state".
    method: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    #: Simulator seed, for reproducible counts.
    seed: Annotated[int, Meta(ge=0, le=2**63 - 1)] | None = None
    #: A device to transpile for (e.g. a fake backend name); unset runs the circuit as written.
    backend: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    #: Transpiler optimisation level, used only with a backend.
    optimization_level: Annotated[int, Meta(ge=0, le=3)] | None = None
    #: Also return the per-shot measurement outcomes.
    memory: bool = False
    #: Add a measurement of every qubit (for circuits without measurements).
    measure_all: bool = False
    #: kind "convert": "qasm2", "qasm3" or "qir".
    target: Literal["qasm2", "qasm3", "qir"] | None = None
    #: kind "transpile" without a backend: the gate set, and optionally the coupling map, to target.
    basis_gates: Annotated[list[Annotated[str, Meta(min_length=1, max_length=32)]], Meta(max_length=64)] | None = None
    coupling_map: Annotated[list[tuple[int, int]], Meta(max_length=10_000)] | None = None


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


class BatchSubmission(Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /tasks/batch: each item is a body of POST /tasks. An item that is not a valid submission is
    refused alone, its error at its index of the answer, while the others are queued: items are decoded one by
    one (`decode_item`), so the schema lists them as TaskSubmission while the decoder takes any JSON value."""

    tasks: Annotated[list[Any], Meta(min_length=1, max_length=MAX_BATCH)]


def decode_item(index: int, item: Any) -> TaskSubmission:
    """One batch item as a `TaskSubmission`, under exactly the rules of a single submission's body; raises
    `msgspec.ValidationError` whose message names the item (`tasks[3].shots: …`)."""
    try:
        return msgspec.json.decode(msgspec.json.encode(item), type=TaskSubmission)
    except msgspec.ValidationError as exc:
        text = str(exc)
        path = text.rsplit(" - at `$", 1)
        if len(path) == 2:
            text = f"tasks[{index}]{path[1].rstrip('`')}: {path[0]}"
        else:
            text = f"tasks[{index}]: {text}"
        raise msgspec.ValidationError(text) from None


class ErrorDetail(Struct, kw_only=True, omit_defaults=True):
    """A machine-readable reason: `code`, a message and, for circuits, the 1-based source position."""

    code: str
    message: str
    line: int | None = None
    column: int | None = None
    details: dict[str, Any] | None = None


class ErrorAnswer(Struct, kw_only=True, omit_defaults=True):
    """Every error answer. No answer ever carries a traceback."""

    status: Literal["error"]
    message: str
    error: ErrorDetail | None = None
    correlation_id: str | None = None


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


# Jobs: many PUBs of one primitive under one id (POST /jobs).

#: Most PUBs one job may carry.
MAX_JOB_PUBS = 1000
JobStatus = Literal["pending", "running", "completed", "failed", "cancelled"]


class PubSubmission(Struct, kw_only=True, forbid_unknown_fields=True):
    """One PUB (primitive unified bloc) of a job: a circuit and what it is run with, as Qiskit's primitives
    take it. Unset `shots` / `precision` take the job's."""

    #: OpenQASM 2 or 3 source; parameters as OpenQASM 3 inputs (`input float theta;`), as `qasm3.dumps` writes.
    qc: Annotated[str, Meta(min_length=1)]
    parameter_values: ParameterValues | None = None
    #: kind "estimate" only (required there).
    observables: Observables | None = None
    #: kind "sample" only.
    shots: Annotated[int, Meta(ge=1, le=MAX_SHOTS)] | None = None
    #: kind "estimate" only.
    precision: Annotated[float, Meta(ge=0, le=1)] | None = None


class JobSubmission(Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /jobs: a primitive and its PUBs. Each PUB becomes one task, or several when its parameter
    sets exceed `chunk_size` (contiguous sets per task, joined back in order)."""

    kind: Literal["sample", "estimate"]
    pubs: Annotated[list[PubSubmission], Meta(min_length=1, max_length=MAX_JOB_PUBS)]
    #: sample only: shots of every PUB that sets none (default 1024).
    shots: Annotated[int, Meta(ge=1, le=MAX_SHOTS)] | None = None
    #: estimate only: precision of every PUB that sets none; 0 (the default) is exact.
    precision: Annotated[float, Meta(ge=0, le=1)] | None = None
    #: seed (reproducible results), method; sample: memory (also return every shot's bitstring).
    options: SimulationOptions = msgspec.field(default_factory=SimulationOptions)
    #: Parameter sets per task; unset takes the server's (QQUEUE_JOB_CHUNK_SIZE).
    chunk_size: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    queue: QueueName = "default"
    priority: Annotated[int, Meta(ge=-100, le=100)] = 0
    max_attempts: Annotated[int, Meta(ge=1, le=100)] = 3
    #: Time limit of each task of the job; unset takes the worker's default.
    timeout_s: Annotated[float, Meta(gt=0, le=86400)] | None = None
    tags: Annotated[list[Tag], Meta(max_length=32)] = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class JobSubmitAnswer(Struct, kw_only=True):
    """Answer of POST /jobs: 201 for a new job, 200 for an Idempotency-Key replay (same job)."""

    job_id: uuid.UUID
    status: JobStatus
    message: str
    pubs: int
    tasks_total: int
    submitted_at: datetime
    correlation_id: str | None


class JobTask(Struct, kw_only=True):
    """One task of a job: which PUB, which of its parameter sets (flat, row-major: `start` to `stop`)."""

    task_id: uuid.UUID
    pub: int
    part: int
    start: int
    stop: int
    status: TaskStatus
    worker_id: uuid.UUID | None


class JobFailure(Struct, kw_only=True):
    """A PUB that did not complete: the task and its error ({"type", "message", "retryable"}), or null for a
    cancelled one."""

    pub: int
    part: int
    task_id: uuid.UUID
    status: TaskStatus
    error: dict[str, Any] | None


class PubResult(Struct, kw_only=True):
    """One PUB's result, in PrimitiveResult order. Arrays are flat, in row-major order of `shape` (the PUB's
    broadcast shape; [] for a single set).

    sample: `data` maps each classical register to {"num_bits", "counts": [one object per set], and with
    option memory "samples": [one list of bitstrings per set]}. estimate: `data` is {"evs": [...], "stds": [...]}.
    """

    shape: list[int]
    data: dict[str, Any]
    metadata: dict[str, Any]


class JobProgress(Struct, kw_only=True):
    tasks_done: int
    tasks_total: int
    pending: int
    running: int
    completed: int
    failed: int
    cancelled: int


class JobDetail(Struct, kw_only=True):
    """Answer of GET /jobs/{job_id}. `results` holds every PUB once the job is completed; a failed or
    cancelled job lists what did not complete in `failures`, and `results` keeps the PUBs that did (null at a
    PUB with a part missing)."""

    job_id: uuid.UUID
    kind: Literal["sample", "estimate"]
    status: JobStatus
    message: str
    pubs: int
    progress: JobProgress
    queue: str
    tags: list[str]
    metadata: dict[str, Any]
    correlation_id: str | None
    created_at: datetime
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    failures: list[JobFailure]
    results: list[PubResult | None] | None
    tasks: list[JobTask]


class JobSummary(Struct, kw_only=True):
    """One job in GET /jobs."""

    job_id: uuid.UUID
    kind: Literal["sample", "estimate"]
    status: JobStatus
    pubs: int
    tasks_total: int
    tasks_done: int
    queue: str
    tags: list[str]
    correlation_id: str | None
    created_at: datetime
    finished_at: datetime | None


class JobPage(Struct, kw_only=True):
    """Answer of GET /jobs, newest first; `next_cursor` as in GET /tasks."""

    items: list[JobSummary]
    next_cursor: str | None


class JobCancelAnswer(Struct, kw_only=True):
    """Answer of POST /jobs/{job_id}/cancel: pending tasks cancelled at once, running ones asked to stop."""

    job_id: uuid.UUID
    cancelled: int
    cancel_requested: int
    message: str


# Backends: what GET /backends lists, for clients that build a Qiskit Target from it.

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
