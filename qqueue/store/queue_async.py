"""Async twins of the queue writes the HTTP API needs: submit and cancel.

Task state still changes only through the named queries of sql/queries/tasks.sql; what interprets their rows
lives in pure helpers of `qqueue.store.queue` (`prepare_insert`, `cancel_outcome`) that both modules call, so the
sync and async paths cannot drift apart. Keep it that way: no logic here that `queue` also needs.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import msgspec
import psycopg

from qqueue.errors import IdempotencyConflictError, InvalidTransitionError
from qqueue.store import db, queue
from qqueue.tasks import TaskSpec

__all__ = ["Submitted", "cancel", "enqueue_many"]


class Submitted(msgspec.Struct, kw_only=True, frozen=True):
    """What a submission reports per task. `created` is False when its idempotency key named an earlier task,
    whose id, status, submission time and correlation id are then reported."""

    id: uuid.UUID
    created: bool
    created_at: datetime
    status: str
    correlation_id: str | None


async def enqueue_many(conn: psycopg.AsyncConnection[Any], specs: Sequence[TaskSpec]) -> list[Submitted]:
    """Queue many tasks in one insert statement; results in input order.

    A spec whose idempotency key already names a task creates nothing and reports that task, provided the
    task was submitted with the same `request_hash`; otherwise `IdempotencyConflictError` is raised and
    nothing of this call is kept (a keyed batch runs in one transaction, so its other rows are undone).
    """
    if not specs:
        return []
    rows, tasks_json = queue.prepare_insert(specs)
    keyed = any(s.idempotency_key for s in rows)
    if not keyed:
        # Only a key conflict can skip a row, so every row is inserted: one statement, no transaction.
        inserted = {r["id"]: r for r in await db.run_async(conn, "task_insert_many", tasks=tasks_json)}
        return [_created(s, inserted) for s in rows]
    async with conn.transaction() if len(rows) > 1 else _no_transaction():
        inserted = {r["id"]: r for r in await db.run_async(conn, "task_insert_many", tasks=tasks_json)}
        skipped = [s.idempotency_key for s in rows if s.id not in inserted and s.idempotency_key]
        existing = {}
        if skipped:
            # One submission is one tenant's, so every row shares the tenant whose keys are looked up.
            found = await db.run_async(conn, "task_list_by_idempotency_keys", keys=skipped, tenant=rows[0].tenant)
            existing = {r["idempotency_key"]: r for r in found}
        out = []
        for spec in rows:
            if spec.id in inserted:
                out.append(_created(spec, inserted))
                continue
            row = existing.get(spec.idempotency_key)
            if row is None:
                # Only a key conflict skips an insert, and that row exists.
                raise InvalidTransitionError("task insert was skipped without an idempotency key match")
            if row["request_hash"] != spec.request_hash:
                raise IdempotencyConflictError(str(spec.idempotency_key))
            out.append(Submitted(id=row["id"], created=False, created_at=row["created_at"],
                                 status=str(row["status"]), correlation_id=row["correlation_id"]))
        return out


@asynccontextmanager
async def _no_transaction() -> AsyncIterator[None]:
    # One row: the insert either happened or met the key, so there is nothing to undo on a conflict.
    yield


def _created(spec: TaskSpec, inserted: dict[uuid.UUID, dict[str, Any]]) -> Submitted:
    assert spec.id is not None
    return Submitted(id=spec.id, created=True, created_at=inserted[spec.id]["created_at"], status="pending",
                     correlation_id=spec.correlation_id)


async def cancel(conn: psycopg.AsyncConnection[Any], task_id: uuid.UUID, *, tenant: str | None = None) -> str:
    """Cancel a task: 'cancelled' when it was pending, 'cancel_requested' when it is running.

    With `tenant`, only that tenant's task can be cancelled. Raises `TaskNotFoundError` (no such task, or
    another tenant's), or `InvalidTransitionError` when the task already finished.
    """
    return queue.cancel_outcome(task_id, await db.run_async(conn, "task_cancel", id=task_id, tenant=tenant))
