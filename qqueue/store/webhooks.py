"""Webhook secrets (one per tenant, one for tasks without a tenant) and the record of deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
import psycopg

from qqueue.errors import NotFoundError
from qqueue.store import db

__all__ = ["Delivery", "deliveries", "rotate_secret", "secret"]


class Delivery(msgspec.Struct, kw_only=True, frozen=True):
    """One webhook of a task (qqueue.webhook_deliveries): where, how often tried, how it went."""

    id: int
    task_id: uuid.UUID
    url: str
    #: How the task had ended when the notice was made, and in which of its attempts.
    task_status: str
    task_attempt: int
    #: Sends tried so far.
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    abandoned_at: datetime | None
    created_at: datetime


def _tenant_secret(row: dict[str, Any] | None, tenant: str | None) -> str:
    if row is None or row["secret"] is None:
        raise NotFoundError(f"no tenant named {tenant!r}")
    return str(row["secret"])


def secret(conn: psycopg.Connection[Any], tenant: str | None) -> str:
    """The secret `tenant`'s webhooks are signed with; None: the service-wide one (tasks without a tenant)."""
    return _tenant_secret(db.run(conn, "webhook_secret_get", tenant=tenant), tenant)


def rotate_secret(conn: psycopg.Connection[Any], tenant: str | None) -> str:
    """Replace the secret (of `tenant`, or the service-wide one) with a new one, which is returned; every send
    from now on, retries included, is signed with it."""
    return _tenant_secret(db.run(conn, "webhook_secret_rotate", tenant=tenant), tenant)


def deliveries(conn: psycopg.Connection[Any], task_id: uuid.UUID, tenant: str | None = None) -> list[Delivery]:
    """A task's webhook deliveries, oldest first (only `tenant`'s, if given)."""
    rows = db.run(conn, "webhook_delivery_list", task_id=task_id, tenant=tenant)
    return [Delivery(**{**r, "task_status": str(r["task_status"])}) for r in rows]
