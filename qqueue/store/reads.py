"""Every read the API and the CLI make, as typed values: a `Read[T]` names its query, holds its parameters and
shapes the rows into `T` (the wire Structs of `qqueue.api.schemas`, so the CLI prints what the API answers).

A read is built once and run by either `fetch` (a blocking connection: CLI, tests) or `fetch_async` (the API's
pool), so no caller writes SQL parameters or maps a row by hand, and the two paths cannot disagree. The reads of
jobs (`qqueue.store.job_reads`), of the event stream (`qqueue.store.event_reads`) and of the metrics
(`qqueue.store.metric_reads`) are built the same way, in modules of their own.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import msgspec
import psycopg

from qqueue.api.schemas import (
    DurationHistogram,
    Durations,
    FailureGroup,
    QueueStats,
    TaskDetail,
    TaskPage,
    TaskSource,
    TaskSummary,
    ThroughputMinute,
    Timings,
    WebhookDelivery,
    WorkerInfo,
)
from qqueue.api.schemas.webhooks import event_of
from qqueue.errors import CursorError, JobNotFoundError, TaskNotFoundError
from qqueue.store import db
from qqueue.tasks import TaskStatus

T = TypeVar("T")

__all__ = [
    "ApiKeyRow",
    "HealthFigures",
    "ListFilter",
    "Read",
    "api_key",
    "durations",
    "failure_groups",
    "fetch",
    "fetch_async",
    "finished_of",
    "health",
    "job_webhooks",
    "live_workers",
    "queue_stats",
    "task_detail",
    "task_page",
    "task_source",
    "task_webhooks",
    "throughput",
]


@dataclass(frozen=True, slots=True)
class Read(Generic[T]):
    """One named query with its parameters, and how its rows become a `T`."""

    query: str
    params: dict[str, Any]
    shape: Callable[[Any], T]


def fetch(conn: psycopg.Connection[Any], read: Read[T]) -> T:
    """Run `read` on a blocking connection."""
    return read.shape(db.run(conn, read.query, **read.params))


async def fetch_async(conn: psycopg.AsyncConnection[Any], read: Read[T]) -> T:
    """Run `read` on an async connection."""
    return read.shape(await db.run_async(conn, read.query, **read.params))


class ListFilter(msgspec.Struct, kw_only=True, frozen=True):
    """The filters of a task or job listing; None matches everything. `cursor` is a page's `next_cursor`."""

    tenant: str | None = None
    statuses: Sequence[str] | None = None
    queue: str | None = None
    kind: str | None = None
    tags: Sequence[str] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = 50
    cursor: str | None = None

    def params(self) -> dict[str, Any]:
        """The listing query's parameters: one row more than a page, to learn whether more follow."""
        after_created_at, after_id = decode_cursor(self.cursor) if self.cursor else (None, None)
        return {"tenant": self.tenant, "statuses": list(self.statuses) if self.statuses else None,
                "queue": self.queue, "kind": self.kind, "tags": list(self.tags) if self.tags else None,
                "created_after": self.created_after, "created_before": self.created_before,
                "cursor_created_at": after_created_at, "cursor_id": after_id, "limit": self.limit + 1}


# tasks -------------------------------------------------------------------------------------------------------


def task_detail(task_id: uuid.UUID, tenant: str | None = None) -> Read[TaskDetail]:
    """GET /tasks/{id}: the task, its history, its place in line and its timings. Another tenant's task reads
    exactly like one that does not exist: `TaskNotFoundError`."""

    def shape(row: dict[str, Any] | None) -> TaskDetail:
        if row is None:
            raise TaskNotFoundError(task_id)
        return _detail(row)

    return Read("task_get_detail", {"id": task_id, "tenant": tenant}, shape)


def _detail(row: dict[str, Any]) -> TaskDetail:
    return TaskDetail(
        task_id=row["id"], status=row["status"], message=_status_message(row), submitted_at=row["created_at"],
        kind=row["kind"], queue=row["queue"], priority=row["priority"],
        queue_position=row["queue_position"], attempt=row["attempt"], max_attempts=row["max_attempts"],
        created_at=row["created_at"], run_at=row["run_at"], started_at=row["started_at"],
        finished_at=row["finished_at"], cancel_requested_at=row["cancel_requested_at"], timeout_s=row["timeout_s"],
        worker_id=row["worker_id"], correlation_id=row["correlation_id"], tags=row["tags"],
        metadata=row["metadata"], profile=row["profile"],
        # Results can be large: passed through as the JSON text Postgres holds, never decoded here.
        result=msgspec.Raw(row["result_json"].encode()) if row["result_json"] is not None else None,
        cached=row["cached_from"] is not None, cache_key=row["cache_key"], cached_from=row["cached_from"],
        callback_url=row["callback_url"], error=row["error"],
        timings=Timings(queued_s=row["queued_s"], running_s=row["running_s"], reported=row["timings"]),
        status_history=msgspec.Raw(row["history_json"].encode()),  # type: ignore[arg-type]
    )


def _status_message(row: dict[str, Any]) -> str:
    """The task's state in a sentence, as clients of the original contract show it."""
    status = row["status"]
    if status == "completed":
        return "Task completed successfully." + (" (answered from the result cache)" if row["cached_from"] else "")
    if status == "failed":
        error = row["error"] or {}
        return f"Task failed: {error.get('message') or 'no reason was recorded'}"
    if status == "cancelled":
        return "Task was cancelled."
    if status == "running":
        return "Task is running." if row["cancel_requested_at"] is None else "Task is running; cancellation requested."
    if row["queue_position"] is None:
        return "Task is scheduled and waits for its run_at."
    return f"Task is queued (position {row['queue_position']})."


def task_page(where: ListFilter) -> Read[TaskPage]:
    """GET /tasks: newest first, keyset-paginated."""

    def shape(rows: list[dict[str, Any]]) -> TaskPage:
        page, next_cursor = keyset_page(rows, where.limit, "task_id")
        return TaskPage(items=[TaskSummary(**r) for r in page], next_cursor=next_cursor)

    return Read("task_list", where.params(), shape)


def task_source(task_id: uuid.UUID, tenant: str | None = None) -> Read[TaskSource]:
    """The circuit and options a task was queued with; another tenant's task is `TaskNotFoundError`."""

    def shape(row: dict[str, Any] | None) -> TaskSource:
        if row is None:
            raise TaskNotFoundError(task_id)
        payload = msgspec.json.decode(row["payload_json"])
        if not isinstance(payload, dict):
            return TaskSource(circuit_format=None, circuit_source=None, options={"payload": payload})
        circuit = payload.pop("circuit", None)
        if not isinstance(circuit, dict):
            return TaskSource(circuit_format=None, circuit_source=None, options=payload)
        return TaskSource(circuit_format=circuit.get("format"), circuit_source=circuit.get("source"), options=payload)

    return Read("task_get_payload", {"id": task_id, "tenant": tenant}, shape)


def failure_groups(tenant: str | None = None, *, limit: int = 50, examples: int = 5) -> Read[list[FailureGroup]]:
    """Failed tasks grouped by error code and message, the largest groups first, with their newest `examples`."""
    return Read("task_failures_grouped", {"tenant": tenant, "limit": limit, "examples": examples},
                lambda rows: [FailureGroup(**r) for r in rows])


def finished_of(ids: Sequence[uuid.UUID]) -> Read[list[uuid.UUID]]:
    """Of the tasks `ids`, those that ended or no longer exist (the long-poll backstop)."""
    return Read("task_list_finished", {"ids": list(ids)}, lambda rows: [r["id"] for r in rows])


# webhooks ----------------------------------------------------------------------------------------------------


def task_webhooks(task_id: uuid.UUID, tenant: str | None = None) -> Read[list[WebhookDelivery]]:
    """GET /tasks/{id}/webhooks: the task's webhook deliveries, newest first. Another tenant's task reads
    exactly like one that does not exist: `TaskNotFoundError`."""
    return _webhooks({"task_id": task_id, "job_id": None, "tenant": tenant}, lambda: TaskNotFoundError(task_id))


def job_webhooks(job_id: uuid.UUID, tenant: str | None = None) -> Read[list[WebhookDelivery]]:
    """GET /jobs/{id}/webhooks: the job's webhook deliveries, newest first; `JobNotFoundError` as
    `job_reads.job_state`."""
    return _webhooks({"task_id": None, "job_id": job_id, "tenant": tenant}, lambda: JobNotFoundError(job_id))


def _webhooks(params: dict[str, Any], missing: Callable[[], Exception]) -> Read[list[WebhookDelivery]]:
    def shape(rows: list[dict[str, Any]]) -> list[WebhookDelivery]:
        if not rows:  # the task or job is not there, or not the tenant's
            raise missing()
        return [WebhookDelivery(
            delivery_id=r["id"], event=event_of(r["job_id"]),
            task_id=r["task_id"], job_id=r["job_id"], url=r["url"], status=TaskStatus(r["task_status"]),
            attempt=r["task_attempt"], finished_at=r["finished_at"], attempts=r["attempts"],
            next_attempt_at=r["next_attempt_at"], last_status_code=r["last_status_code"],
            last_error=r["last_error"], delivered_at=r["delivered_at"], abandoned_at=r["abandoned_at"],
            created_at=r["created_at"]) for r in rows if r["id"] is not None]

    return Read("webhook_delivery_list", params, shape)


# queues, workers, health, keys -------------------------------------------------------------------------------


def queue_stats(tenant: str | None = None) -> Read[list[QueueStats]]:
    """Per-queue counts from qqueue.queue_stats; with `tenant`, counted over that tenant's tasks only."""
    if tenant is None:
        return Read("queue_stats_all", {}, _queue_stats)
    return Read("queue_stats_tenant", {"tenant": tenant}, _queue_stats)


def _queue_stats(rows: list[dict[str, Any]]) -> list[QueueStats]:
    return [QueueStats(**r) for r in rows]


def live_workers(*, show_hosts: bool = True) -> Read[list[WorkerInfo]]:
    """Workers that heartbeat within the last minute; without `show_hosts`, host name and pid are left out
    (where workers run is the operator's to know)."""

    def shape(rows: list[dict[str, Any]]) -> list[WorkerInfo]:
        if show_hosts:
            return [WorkerInfo(**r) for r in rows]
        return [WorkerInfo(**{**r, "hostname": None, "pid": None}) for r in rows]

    return Read("worker_list_live", {}, shape)


def throughput(tenant: str | None = None) -> Read[list[ThroughputMinute]]:
    """Tasks that ended in each of the last 60 minutes, oldest first (the current minute last)."""
    return Read("dashboard_throughput", {"tenant": tenant}, lambda rows: [ThroughputMinute(**r) for r in rows])


#: Upper edges of the duration buckets, in seconds: a log scale from queue-fast to hour-long tasks.
DURATION_EDGES_S = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def durations(tenant: str | None = None) -> Read[Durations]:
    """Histograms of queue wait and run time over the tasks that ended in the last hour."""
    edges = list(DURATION_EDGES_S)

    def shape(rows: list[dict[str, Any]]) -> Durations:
        counts = {"wait": [0] * (len(edges) + 1), "run": [0] * (len(edges) + 1)}
        for row in rows:
            counts[row["measure"]][row["bucket"]] += row["tasks"]
        return Durations(wait=DurationHistogram(edges_s=edges, tasks=counts["wait"]),
                         run=DurationHistogram(edges_s=edges, tasks=counts["run"]))

    return Read("dashboard_durations", {"tenant": tenant, "edges_s": edges}, shape)


class HealthFigures(msgspec.Struct, kw_only=True, frozen=True):
    """What GET /health asks of the database in one round trip."""

    versions: list[int]
    live_workers: int
    queue_depth: int


def health() -> Read[HealthFigures]:
    """Applied schema versions, live workers and due tasks; fails with `UndefinedTable` on an unmigrated
    database."""
    return Read("health_check", {}, lambda row: HealthFigures(**row))


class ApiKeyRow(msgspec.Struct, kw_only=True, frozen=True):
    """A stored API key: only its hash, whom it speaks for, and whether it was revoked."""

    key_hash: str
    tenant: str | None
    role: Literal["tenant", "operator"]
    revoked: bool


def api_key(prefix: str) -> Read[ApiKeyRow | None]:
    """The key whose public prefix is `prefix`, or None."""
    return Read("api_key_get", {"prefix": prefix}, lambda row: ApiKeyRow(**row) if row else None)


# paging ------------------------------------------------------------------------------------------------------


def keyset_page(rows: list[dict[str, Any]], limit: int, id_column: str) -> tuple[list[dict[str, Any]], str | None]:
    """A page of a list read with one row more than `limit` (that row says more follow), and the cursor of the
    next page (None at the end)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1]["created_at"], rows[-1][id_column])


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """The opaque cursor of the page after the row (created_at, id)."""
    raw = msgspec.json.encode([created_at.isoformat(), str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """(created_at, id) of a cursor made by `encode_cursor`; `CursorError` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = msgspec.json.decode(raw, type=tuple[datetime, uuid.UUID])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise CursorError() from None
    return created_at, row_id
