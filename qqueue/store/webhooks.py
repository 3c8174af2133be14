"""Webhook secrets: one per tenant, and one for tasks without a tenant. The record of deliveries is read through
`qqueue.store.reads` (`task_webhooks`, `job_webhooks`)."""

from __future__ import annotations

from typing import Any

import psycopg

from qqueue.errors import NotFoundError
from qqueue.store import db

__all__ = ["rotate_secret", "secret"]


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

