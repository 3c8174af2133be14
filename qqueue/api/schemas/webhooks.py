"""The body of a webhook: what qqueue POSTs to a task's `callback_url` when the task ends."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from msgspec import Struct

from qqueue.tasks import TaskStatus


class WebhookError(Struct, kw_only=True):
    """Why a failed task failed (the `type` and `message` of its error)."""

    code: str
    message: str


class WebhookEvent(Struct, kw_only=True):
    """Body of a webhook POST (`X-QQueue-Signature` signs it). Delivered at least once: the same `delivery_id`
    may arrive more than once; a receiver that must act once keeps the ids it has seen."""

    event: Literal["task.finished"] = "task.finished"
    #: Unique per notice; a redelivery repeats it.
    delivery_id: int
    task_id: uuid.UUID
    status: TaskStatus
    attempt: int
    finished_at: datetime
    #: Set for failed tasks (and tasks cancelled after a failed attempt).
    error: WebhookError | None = None
    #: Where the task and its result are read (GET, with the API key); only for completed tasks. Absolute
    #: when the server knows its public address (QQUEUE_PUBLIC_URL), else a path on the API.
    result_url: str | None = None
