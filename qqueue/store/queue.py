"""The queue: the only code that changes task state, each change through one named query.

Every function takes an autocommit connection and runs one statement, so each call is one atomic transition
with its history rows (a keyed batch submission, whose idempotency check takes a second statement, runs in
one transaction). Writes by a worker are fenced on (task id, attempt, worker, status = 'running').
The HTTP API's writes (submit, cancel) have `_async` twins beside them, sharing all that interprets the rows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any

import msgspec
import psycopg

from qqueue.errors import IdempotencyConflictError, InvalidTransitionError, TaskNotFoundError
from qqueue.store import db
from qqueue.tasks import TERMINAL_STATUSES, ClaimedTask, TaskSpec, new_task_id

_json = msgspec.json.Encoder()

__all__ = [
    "Completion",
    "Failure",
    "Submitted",
    "cancel",
    "cancel_async",
    "claim",
    "complete_many",
    "enqueue",
    "enqueue_many",
    "enqueue_many_async",
    "fail_many",
    "finish_cancelled_many",
    "get",
    "get_events",
    "wait_finished",
    "NextDue",
    "next_due",
    "next_run_at",
    "purge_finished",
    "reclaim_expired",
    "release_many",
    "renew_leases",
]


class Submitted(msgspec.Struct, kw_only=True, frozen=True):
    """What a submission reports per task. `created` is False when its idempotency key named an earlier task,
    whose id, status, submission time and correlation id are then reported."""

    id: uuid.UUID
    created: bool
    created_at: datetime
    status: str
    correlation_id: str | None


def enqueue_many(conn: psycopg.Connection[Any], specs: Sequence[TaskSpec]) -> list[Submitted]:
    """Queue many tasks in one insert statement (one NOTIFY per queue); results in input order.

    A spec whose idempotency key already names a task creates nothing and reports that task, provided the
    task was submitted with the same `request_hash`; otherwise `IdempotencyConflictError` is raised and
    nothing of this call is kept (a keyed batch runs in one transaction, so its other rows are undone).
    """
    if not specs:
        return []
    insert = _Insert(specs)
    with conn.transaction() if insert.atomic else nullcontext():
        insert.inserted(db.run(conn, "task_insert_many", tasks=insert.tasks_json))
        if insert.skipped:
            insert.existing(db.run(conn, "task_list_by_idempotency_keys", **insert.lookup()))
        return insert.submitted()


async def enqueue_many_async(conn: psycopg.AsyncConnection[Any], specs: Sequence[TaskSpec]) -> list[Submitted]:
    """`enqueue_many` on an async connection, for the HTTP API."""
    if not specs:
        return []
    insert = _Insert(specs)
    async with conn.transaction() if insert.atomic else nullcontext():
        insert.inserted(await db.run_async(conn, "task_insert_many", tasks=insert.tasks_json))
        if insert.skipped:
            insert.existing(await db.run_async(conn, "task_list_by_idempotency_keys", **insert.lookup()))
        return insert.submitted()


def enqueue(conn: psycopg.Connection[Any], spec: TaskSpec) -> Submitted:
    """Queue one task; see `enqueue_many`."""
    return enqueue_many(conn, [spec])[0]


class _Insert:
    """One enqueue call's rows, what the insert did with them, and what that means: the parts of
    `enqueue_many` that do not depend on how the statements are run."""

    def __init__(self, specs: Sequence[TaskSpec]) -> None:
        self.rows, self.tasks_json = prepare_insert(specs)
        # Only a key conflict can skip a row; unkeyed rows are all inserted by one statement, no transaction.
        # One keyed row either went in or met its key: nothing to undo on a conflict either.
        self.atomic = len(self.rows) > 1 and any(s.idempotency_key for s in self.rows)
        self.by_id: dict[uuid.UUID, dict[str, Any]] = {}
        self.by_key: dict[str, dict[str, Any]] = {}
        self.skipped: list[str] = []

    def inserted(self, rows: list[dict[str, Any]]) -> None:
        self.by_id = {r["id"]: r for r in rows}
        self.skipped = [s.idempotency_key for s in self.rows if s.id not in self.by_id and s.idempotency_key]

    def lookup(self) -> dict[str, Any]:
        # One submission is one tenant's, so every row shares the tenant whose keys are looked up.
        return {"keys": self.skipped, "tenant": self.rows[0].tenant}

    def existing(self, rows: list[dict[str, Any]]) -> None:
        self.by_key = {r["idempotency_key"]: r for r in rows}

    def submitted(self) -> list[Submitted]:
        out = []
        for spec in self.rows:
            assert spec.id is not None
            if (new := self.by_id.get(spec.id)) is not None:
                out.append(Submitted(id=spec.id, created=True, created_at=new["created_at"], status="pending",
                                     correlation_id=spec.correlation_id))
                continue
            row = self.by_key.get(spec.idempotency_key or "")
            if row is None:
                # Only a key conflict skips an insert, and that row exists.
                raise InvalidTransitionError("task insert was skipped without an idempotency key match")
            if row["request_hash"] != spec.request_hash:
                raise IdempotencyConflictError(str(spec.idempotency_key))
            out.append(Submitted(id=row["id"], created=False, created_at=row["created_at"],
                                 status=str(row["status"]), correlation_id=row["correlation_id"]))
        return out


def claim(
    conn: psycopg.Connection[Any], *, worker_id: uuid.UUID, queues: Sequence[str], limit: int, lease_s: float
) -> list[ClaimedTask]:
    """Take up to `limit` due tasks of `queues`, best first, leased to `worker_id` for `lease_s` seconds."""
    rows = db.run(conn, "task_claim", worker_id=worker_id, queues=list(queues), limit=limit, lease_s=lease_s)
    for row in rows:
        row["payload"] = msgspec.Raw(row["payload"])
    return [ClaimedTask(**row) for row in rows]


class Completion(msgspec.Struct, kw_only=True, frozen=True):
    """A successful run to record."""

    id: uuid.UUID
    attempt: int
    result: Any
    timings: dict[str, Any] | None = None
    #: The completed task whose cached result this is, if any.
    cached_from: uuid.UUID | None = None


class Failure(msgspec.Struct, kw_only=True, frozen=True):
    """A failed run to record; `retry_delay_s` None means do not retry."""

    id: uuid.UUID
    attempt: int
    error: dict[str, Any]
    retry_delay_s: float | None
    timings: dict[str, Any] | None = None


def complete_many(conn: psycopg.Connection[Any], *, worker_id: uuid.UUID, done: Sequence[Completion]) -> set[uuid.UUID]:
    """Record results; returns the ids whose fence matched (the others were lost to another attempt)."""
    if not done:
        return set()
    rows = db.run(conn, "task_complete_many", worker_id=worker_id, results=_json.encode(done).decode())
    return {r["id"] for r in rows}


def fail_many(
    conn: psycopg.Connection[Any], *, worker_id: uuid.UUID, failed: Sequence[Failure]
) -> dict[uuid.UUID, str]:
    """Record failures (retry or final); returns id -> new status for the ids whose fence matched."""
    if not failed:
        return {}
    rows = db.run(conn, "task_fail_many", worker_id=worker_id, failures=_json.encode(failed).decode())
    return {r["id"]: r["status"] for r in rows}


def finish_cancelled_many(
    conn: psycopg.Connection[Any], *, worker_id: uuid.UUID, held: Sequence[tuple[uuid.UUID, int]]
) -> set[uuid.UUID]:
    """Record running tasks this worker stopped on a cancel request."""
    if not held:
        return set()
    ids, attempts = zip(*held, strict=True)
    rows = db.run(conn, "task_finish_cancelled_many", worker_id=worker_id, ids=list(ids), attempts=list(attempts))
    return {r["id"] for r in rows}


def release_many(
    conn: psycopg.Connection[Any], *, worker_id: uuid.UUID, held: Sequence[tuple[uuid.UUID, int]], note: str
) -> set[uuid.UUID]:
    """Hand held tasks back to 'pending' unfinished, giving their attempt back."""
    if not held:
        return set()
    ids, attempts = zip(*held, strict=True)
    rows = db.run(conn, "task_release_many", worker_id=worker_id, ids=list(ids), attempts=list(attempts), note=note)
    return {r["id"] for r in rows}


def renew_leases(
    conn: psycopg.Connection[Any], *, worker_id: uuid.UUID, held: Sequence[tuple[uuid.UUID, int]], lease_s: float
) -> dict[uuid.UUID, bool]:
    """Extend every lease held; returns id -> cancel requested, for the leases still ours."""
    if not held:
        return {}
    ids, attempts = zip(*held, strict=True)
    rows = db.run(conn, "task_renew_leases", worker_id=worker_id, ids=list(ids), attempts=list(attempts),
                  lease_s=lease_s)
    return {r["id"]: r["cancel_requested"] for r in rows}


def reclaim_expired(conn: psycopg.Connection[Any], *, limit: int = 1000) -> list[dict[str, Any]]:
    """Return tasks whose lease lapsed to 'pending' (or 'failed'/'cancelled'); any worker may call this."""
    return db.run(conn, "task_reclaim_expired", limit=limit)


def cancel(conn: psycopg.Connection[Any], task_id: uuid.UUID, *, tenant: str | None = None) -> str:
    """Cancel a task: 'cancelled' when it was pending, 'cancel_requested' when it is running.

    With `tenant`, only that tenant's task can be cancelled. Raises `TaskNotFoundError` (no such task, or
    another tenant's), or `InvalidTransitionError` when the task already finished.
    """
    return _cancel_outcome(task_id, db.run(conn, "task_cancel", id=task_id, tenant=tenant))


async def cancel_async(conn: psycopg.AsyncConnection[Any], task_id: uuid.UUID, *, tenant: str | None = None) -> str:
    """`cancel` on an async connection, for the HTTP API."""
    return _cancel_outcome(task_id, await db.run_async(conn, "task_cancel", id=task_id, tenant=tenant))


def get(conn: psycopg.Connection[Any], task_id: uuid.UUID) -> dict[str, Any]:
    """The task row; raises `TaskNotFoundError`."""
    row = db.run(conn, "task_get", id=task_id)
    if row is None:
        raise TaskNotFoundError(task_id)
    return row


def get_events(conn: psycopg.Connection[Any], task_id: uuid.UUID) -> list[dict[str, Any]]:
    """The task's status history, oldest first."""
    return db.run(conn, "task_get_events", id=task_id)


class NextDue(msgspec.Struct, frozen=True):
    """When a worker's queues next have a task it may claim: `unlimited` for queues without a max_running,
    `limited` for those with one (whose due task may be waiting for room, not for its time). Paused queues are
    left out."""

    unlimited: datetime | None
    limited: datetime | None

    @property
    def earliest(self) -> datetime | None:
        """The sooner of the two, or None when neither kind of queue has a pending task."""
        return min((t for t in (self.unlimited, self.limited) if t is not None), default=None)


def next_due(conn: psycopg.Connection[Any], queues: Sequence[str]) -> NextDue:
    """When the earliest pending task of `queues` becomes due, by kind of queue."""
    row = db.run(conn, "task_next_run_at", queues=list(queues))
    return NextDue(row["next_run_at"], row["limited_next_run_at"])


def next_run_at(conn: psycopg.Connection[Any], queues: Sequence[str]) -> datetime | None:
    """When the earliest pending task of `queues` that is not paused becomes due; None when there is none."""
    return next_due(conn, queues).earliest


def purge_batch(conn: psycopg.Connection[Any], *, older_than_s: float, limit: int) -> int:
    """Delete at most `limit` finished tasks (with their history) older than `older_than_s`, and the jobs whose
    tasks all are; returns how many rows went."""
    return int(db.run(conn, "task_purge_finished", older_than_s=older_than_s, limit=limit)["deleted"])


def purge_finished(conn: psycopg.Connection[Any], *, older_than_s: float, batch: int = 5000) -> int:
    """Delete finished tasks (and their history) older than `older_than_s`, batch by batch; returns how many."""
    total = 0
    while True:
        deleted = purge_batch(conn, older_than_s=older_than_s, limit=batch)
        total += deleted
        if deleted < batch:
            return total


def wait_finished(conn: psycopg.Connection[Any], task_id: uuid.UUID, *, timeout_s: float) -> dict[str, Any]:
    """Block until the task ends or `timeout_s` passes, woken by NOTIFY (never a polling loop); returns the row.

    Uses `conn` for LISTEN, so give it a connection of its own.
    """
    db.run(conn, "task_listen_finished")
    deadline = time.monotonic() + timeout_s
    while True:
        # Checked after LISTEN, so an end that happens in between is never missed.
        row = get(conn, task_id)
        left = deadline - time.monotonic()
        if row["status"] in TERMINAL_STATUSES or left <= 0:
            return row
        for note in conn.notifies(timeout=left):
            if note.payload == "*" or str(task_id) in note.payload.split(","):
                break


def prepare_insert(specs: Sequence[TaskSpec]) -> tuple[list[TaskSpec], str]:
    """Give every spec without an id a new one; return the specs and the JSON array `task_insert_many` takes."""
    rows = [msgspec.structs.replace(s, id=s.id or new_task_id()) for s in specs]
    return rows, _json.encode(rows).decode()


def _cancel_outcome(task_id: uuid.UUID, row: dict[str, Any] | None) -> str:
    if row is None:
        raise TaskNotFoundError(task_id)
    if row["cancelled"]:
        return "cancelled"
    if row["cancel_requested"]:
        return "cancel_requested"
    raise InvalidTransitionError(f"task {task_id} is already {row['previous_status']}")
