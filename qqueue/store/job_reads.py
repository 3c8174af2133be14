"""The reads of primitive jobs (`qqueue.api.jobs`, the dashboard's jobs page, the CLI), as `Read`s of
`qqueue.store.reads`: a job, its tasks in PUB order, its page of the list, and the job an Idempotency-Key names."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec

from qqueue.api.schemas import JobPage, JobStatus, JobSummary
from qqueue.errors import JobNotFoundError
from qqueue.store.reads import ListFilter, Read, keyset_page
from qqueue.tasks import TaskStatus

__all__ = ["JobKeyRow", "JobRow", "JobTaskRow", "job_by_key", "job_page", "job_state", "job_tasks", "job_unfinished"]


def job_page(where: ListFilter) -> Read[JobPage]:
    """GET /jobs: newest first, keyset-paginated as tasks are."""

    def shape(rows: list[dict[str, Any]]) -> JobPage:
        page, next_cursor = keyset_page(rows, where.limit, "job_id")
        return JobPage(items=[JobSummary(**r) for r in page], next_cursor=next_cursor)

    return Read("job_list", where.params(), shape)


class JobRow(msgspec.Struct, kw_only=True, frozen=True):
    """A job with its progress (qqueue.job_stats) and what joining its results needs."""

    id: uuid.UUID
    kind: Literal["sample", "estimate"]
    status: JobStatus
    queue: str
    pubs: int
    tasks_total: int
    tasks_done: int
    pending: int
    running: int
    completed: int
    failed: int
    cancelled: int
    tags: list[str]
    correlation_id: str | None
    created_at: datetime
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    #: Each PUB's broadcast shape.
    shapes: list[list[int]]
    metadata: dict[str, Any]
    callback_url: str | None
    #: When the job was first seen finished (from then on none of its tasks may change); None before.
    seen_finished_at: datetime | None


def job_state(job_id: uuid.UUID, tenant: str | None = None) -> Read[JobRow]:
    """The job; another tenant's reads exactly like one that does not exist: `JobNotFoundError`."""

    def shape(row: dict[str, Any] | None) -> JobRow:
        if row is None:
            raise JobNotFoundError(job_id)
        return JobRow(**row)

    return Read("job_get", {"id": job_id, "tenant": tenant}, shape)


class JobTaskRow(msgspec.Struct, kw_only=True, frozen=True):
    """One task of a job: which PUB and part, which parameter sets, how it stands; `result_json` is the
    completed task's result as JSON text when asked for (decoded once, by whoever joins the parts)."""

    id: uuid.UUID
    job_pub: int
    job_part: int
    start: int
    stop: int
    status: TaskStatus
    worker_id: uuid.UUID | None
    error: dict[str, Any] | None
    result_json: str | None


def job_tasks(job_id: uuid.UUID, *, results: bool) -> Read[list[JobTaskRow]]:
    """A job's tasks in PUB and part order, with their results when `results`."""
    return Read("job_get_tasks", {"id": job_id, "results": results}, lambda rows: [JobTaskRow(**r) for r in rows])


def job_unfinished(job_id: uuid.UUID) -> Read[list[uuid.UUID]]:
    """The ids of a job's tasks still pending or running."""
    return Read("job_unfinished_task_ids", {"id": job_id}, lambda rows: [r["id"] for r in rows])


class JobKeyRow(msgspec.Struct, kw_only=True, frozen=True):
    """The job an Idempotency-Key already names, and the request hash a replay must match."""

    id: uuid.UUID
    request_hash: str | None
    created_at: datetime
    correlation_id: str | None
    pubs: int
    tasks_total: int
    status: JobStatus


def job_by_key(key: str, tenant: str | None) -> Read[JobKeyRow | None]:
    """The tenant's job submitted under Idempotency-Key `key`, or None."""
    return Read("job_get_by_idempotency_key", {"key": key, "tenant": tenant},
                lambda row: JobKeyRow(**row) if row else None)
