"""The read behind GET /events and the dashboard's live refresh: history rows after a position, with the snapshot's
transactions in progress, so a stream can tell which rows may still appear behind it (`qqueue.api.eventhub`)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from qqueue.api.schemas import JobEvent, TaskEvent
from qqueue.store.reads import Read
from qqueue.tasks import TaskStatus

__all__ = ["EventBatch", "EventFilter", "EventRow", "event_batch"]


class EventFilter(msgspec.Struct, kw_only=True, frozen=True):
    """What one GET /events stream asks for; None matches everything (a tenant None: every tenant's)."""

    tenant: str | None = None
    task_ids: frozenset[uuid.UUID] | None = None
    job_id: uuid.UUID | None = None
    queue: str | None = None

    def matches(self, row: EventRow) -> bool:
        """Whether the stream wants this history row."""
        task = row.task
        return ((self.tenant is None or row.tenant == self.tenant)
                and (self.task_ids is None or task.task_id in self.task_ids)
                and (self.job_id is None or task.job_id == self.job_id)
                and (self.queue is None or task.queue == self.queue))


class EventRow(msgspec.Struct, kw_only=True, frozen=True):
    """One history row as GET /events sends it: its id, its task's tenant, the task event and, for a job's task,
    the job's status when it was read."""

    id: int
    tenant: str | None
    task: TaskEvent
    job: JobEvent | None


class EventBatch(msgspec.Struct, kw_only=True, frozen=True):
    """History rows oldest first, with the transactions in progress in the snapshot they were read in (those
    that may write this database) and the highest history id it saw."""

    running: frozenset[int]
    last_id: int
    rows: list[EventRow]


def event_batch(after: int, limit: int, where: EventFilter | None = None, upto: int | None = None) -> Read[EventBatch]:
    """History rows with `after < id <= upto` (no upper bound without `upto`) matching `where`."""
    where = where or EventFilter()
    params = {"after": after, "upto": upto, "limit": limit, "tenant": where.tenant,
              "task_ids": list(where.task_ids) if where.task_ids is not None else None,
              "job_id": where.job_id, "queue": where.queue}
    return Read("event_read", params, _event_batch)


def _event_batch(rows: list[dict[str, Any]]) -> EventBatch:
    events = []
    for r in rows:
        if r["id"] is None:  # the row that only carries the snapshot
            continue
        task = TaskEvent(task_id=r["task_id"], job_id=r["job_id"], queue=r["queue"], status=TaskStatus(r["status"]),
                         attempt=r["attempt"], at=r["at"], note=r["note"], error_code=r["error_type"])
        job = None if r["job_status"] is None else JobEvent(
            job_id=r["job_id"], queue=r["queue"], status=r["job_status"], tasks_done=r["job_tasks_done"],
            tasks_total=r["job_tasks_total"], at=r["at"])
        events.append(EventRow(id=r["id"], tenant=r["tenant"], task=task, job=job))
    return EventBatch(running=frozenset(rows[0]["running"]), last_id=rows[0]["last_id"], rows=events)
