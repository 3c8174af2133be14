"""Webhooks on the wire: what qqueue POSTs to a task's (or a job's) `callback_url` when it ends, and the record of
those sends that GET /tasks/{task_id}/webhooks and GET /jobs/{job_id}/webhooks answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from msgspec import Struct

from qqueue.tasks import TaskStatus

#: What a webhook notice announces: the body's `event`, its X-QQueue-Event header, and the listing's `event`.
WebhookEventName = Literal["task.finished", "job.finished"]


def event_of(job_id: uuid.UUID | None) -> WebhookEventName:
    """The event of a delivery (qqueue.webhook_deliveries names a task or a job, never both): a job's end when it
    names a job, else its task's."""
    return "job.finished" if job_id is not None else "task.finished"


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


class JobWebhookEvent(Struct, kw_only=True):
    """Body of a job's webhook POST, sent once when the job ends (no task of it pending or running), signed as a
    task's. Delivered at least once, as `WebhookEvent`; `event` (and the X-QQueue-Event header) tells them apart."""

    event: Literal["job.finished"] = "job.finished"
    #: Unique per notice; a redelivery repeats it.
    delivery_id: int
    job_id: uuid.UUID
    #: The job's status as GET /jobs/{job_id} says it: failed if a task failed, else cancelled if one was.
    status: TaskStatus
    #: When its last task ended.
    finished_at: datetime
    #: The error of its first failed task (in PUB order), for a failed job.
    error: WebhookError | None = None
    #: GET /jobs/{job_id}, for a completed job; absolute as `WebhookEvent.result_url` is.
    result_url: str | None = None


class WebhookDelivery(Struct, kw_only=True):
    """One webhook notice of a task or a job, and how sending it went (qqueue.webhook_deliveries). The secret it
    is signed with is never shown."""

    #: The notice's `delivery_id`, as its body and its X-QQueue-Delivery header carry it.
    delivery_id: int
    event: WebhookEventName
    #: The task, or the job, it announces (the other is null).
    task_id: uuid.UUID | None
    job_id: uuid.UUID | None
    url: str
    #: How the task (or job) had ended when the notice was made; a later retry changes it, never the notice.
    status: TaskStatus
    #: The task's attempt that ended it; null for a job.
    attempt: int | None
    finished_at: datetime
    #: Sends tried so far.
    attempts: int
    #: When the next send is due; null once delivered or abandoned.
    next_attempt_at: datetime | None
    #: The receiver's answer to the last send, or why it got none.
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    #: Set when the sends ran out, or the target was refused at send time: never tried again.
    abandoned_at: datetime | None
    created_at: datetime
