"""The `data:` of GET /events: one JSON object per server-sent event, `task.status` or `job.status`."""

from __future__ import annotations

import uuid
from datetime import datetime

from msgspec import Struct

from qqueue.api.schemas.jobs import JobStatus
from qqueue.tasks import TaskStatus


class TaskEvent(Struct, kw_only=True):
    """`event: task.status`: one row of a task's status history (qqueue.task_events); the SSE `id:` is its id."""

    task_id: uuid.UUID
    #: The job the task is a part of, if any.
    job_id: uuid.UUID | None
    queue: str
    status: TaskStatus
    attempt: int
    at: datetime
    #: Why, where there is more to say (a retry's error, a reclaimed lease, a cache answer).
    note: str | None
    #: For a final failure: the error's type (as in GET /tasks/{id}).
    error_code: str | None


class JobEvent(Struct, kw_only=True):
    """`event: job.status`: a job's status, derived from its tasks when the stream read a change of one of them;
    sent after that task's event, under the same `id:`."""

    job_id: uuid.UUID
    queue: str
    status: JobStatus
    tasks_done: int
    tasks_total: int
    at: datetime
