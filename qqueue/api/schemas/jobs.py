"""The job endpoints' bodies and answers: many PUBs of one primitive under one id (POST /jobs, GET /jobs and
/jobs/{job_id}, POST /jobs/{job_id}/cancel)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from qqueue.api.schemas.common import CallbackUrl, Observables, ParameterValues, QueueName, SimulationOptions, Tag
from qqueue.intake.model import MAX_SHOTS
from qqueue.tasks import TaskStatus

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
    #: POSTed a signed `JobWebhookEvent` once, when the job ends (every task of it finished); checked as a task's.
    callback_url: CallbackUrl | None = None


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
    #: Where the job's end is POSTed (GET /jobs/{job_id}/webhooks lists the sends); null without one.
    callback_url: str | None = None
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
