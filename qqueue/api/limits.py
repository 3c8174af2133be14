"""Per-tenant submission limits: most pending tasks, and submissions per second (a token bucket).

Both live in the database (qqueue.tenants), so every API process enforces one shared limit. A submission is
admitted and inserted in one transaction that holds the tenant's row lock, so concurrent requests can never
overrun a limit together. Over a limit: `RateLimitedError`, answered 429 with Retry-After.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from qqueue.config import Settings
from qqueue.errors import RateLimitedError
from qqueue.store import db

__all__ = ["admitted", "check_pending"]

#: Retry-After for a full pending queue: tasks leave it as workers run them, at a pace we cannot predict.
PENDING_RETRY_AFTER_S = 5


@asynccontextmanager
async def admitted(
    conn: psycopg.AsyncConnection[Any], settings: Settings, tenant: str | None, n: int
) -> AsyncIterator[None]:
    """A transaction in which `n` tasks of `tenant` may be inserted; raises `RateLimitedError` when they may
    not. Without a tenant (API keys off) there is nothing to limit and no transaction is opened."""
    if tenant is None or n == 0:
        yield
        return
    async with conn.transaction():
        await _admit(conn, settings, tenant, n)
        yield


async def check_pending(conn: psycopg.AsyncConnection[Any], settings: Settings, tenant: str | None) -> None:
    """Inside the caller's transaction, after it made tasks of `tenant` pending again (a retry): raises
    `RateLimitedError` when the tenant now holds more pending tasks than it may, so the caller's change is
    undone. A retry spends no submission tokens: what it re-queues was admitted once already."""
    if tenant is not None:
        await _admit(conn, settings, tenant, 0)


async def _admit(conn: psycopg.AsyncConnection[Any], settings: Settings, tenant: str, n: int) -> None:
    row = await db.run_async(conn, "tenant_admit", tenant=tenant, n=n,
                             default_max_pending=settings.api_tenant_max_pending,
                             default_rate=settings.api_tenant_submit_rate, burst=settings.api_tenant_submit_burst)
    if row is not None and row["refused"] == "pending_limit":
        asked = f" and asked for {n} more" if n > 1 else ""
        raise RateLimitedError(
            f"Too many pending tasks: this tenant may have {row['max_pending']} pending, has {row['pending']}"
            f"{asked if n else ' with these'}. Retry once some have run.",
            retry_after_s=PENDING_RETRY_AFTER_S, code="pending_limit")
    if row is not None and row["refused"] == "rate_limit":
        raise RateLimitedError("Too many submissions per second for this tenant; slow down.",
                               retry_after_s=max(1, math.ceil(row["retry_after_s"])), code="rate_limit")
