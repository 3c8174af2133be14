"""What the API's request handlers share: its options, the connection pool, the long-poll waiters and the
event reader, and the lifespan that opens and closes them.

The pool is created once and never replaced. When the database goes away, requests answer 503 and the pool
reconnects by itself (psycopg_pool, with backoff); a failed request also makes the pool test its idle
connections, so dead ones left by a database restart are dropped at once rather than handed out one by one.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import psycopg
from litestar import Litestar
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from qqueue.api.eventhub import EventHub
from qqueue.api.waiters import FinishedWaiters
from qqueue.config import Settings
from qqueue.errors import DatabaseUnavailableError
from qqueue.intake import ParserPool
from qqueue.store import db, event_reads, migrate, reads
from qqueue.webhooks import targets

T = TypeVar("T")

log = logging.getLogger("qqueue.api")

__all__ = ["ApiContext"]

#: How long a request waits for a connection while the database is known to be down.
DOWN_TIMEOUT_S = 1.0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ApiContext:
    """What the request handlers share: settings, the query pool, the long-poll waiters and the event reader."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self.expected_schema_version = migrate.latest_version()
        self.expected_schema_versions = frozenset(m.version for m in migrate.available())
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "application_name": f"qqueue-api@{socket.gethostname()}"[:63],
            # Every session is bounded (statement and idle-in-transaction timeouts) and speaks UTC.
            "options": db.session_options(settings.statement_timeout_s, settings.idle_in_transaction_timeout_s)
            + " -c TimeZone=UTC",
            "connect_timeout": settings.api_connect_timeout_s,
        }
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            database_url,
            kwargs=self._connect_kwargs,
            min_size=settings.api_pool_min_size,
            max_size=settings.api_pool_max_size,
            timeout=settings.api_pool_timeout_s,
            name="qqueue-api",
            open=False,
        )
        self.intake = ParserPool(processes=settings.intake_processes, memory_bytes=settings.intake_memory_bytes,
                                 deadline_s=settings.intake_deadline_s, batch_budget_s=settings.intake_batch_budget_s)
        self.waiters = FinishedWaiters(self._listen_connection, self._finished, backstop_s=settings.api_wait_backstop_s)
        self.events = EventHub(self._event_rows, poll_s=settings.api_events_poll_s,
                               max_streams=settings.api_events_max_streams)
        #: monotonic time of the first failure of the current outage; None while the database answers.
        self._down_since: float | None = None
        self._check_task: asyncio.Task[None] | None = None

    @property
    def callback_allow(self) -> targets.AllowList:
        """What callback URLs may reach besides public addresses (QQUEUE_WEBHOOK_ALLOW), checked at submission."""
        return targets.allow_list(tuple(self.settings.webhook_allow))

    async def _listen_connection(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self.database_url, **self._connect_kwargs)

    async def _finished(self, ids: list[uuid.UUID]) -> list[uuid.UUID]:
        return await self.read(reads.finished_of(ids))

    async def _event_rows(self, after: int, limit: int) -> event_reads.EventBatch:
        return await self.read(event_reads.event_batch(after, limit))

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection. Database failures become `DatabaseUnavailableError` (503) and make the pool
        drop its broken idle connections, so the next request gets a fresh one. While the database is known
        to be down, requests wait only briefly for a connection: a 503 should come fast."""
        if self._down_since is not None:
            timeout = min(timeout or self.settings.api_pool_timeout_s, DOWN_TIMEOUT_S)
        try:
            async with self.pool.connection(timeout=timeout) as conn:
                yield conn
        except PoolTimeout as exc:
            self._mark_down(exc)
            raise DatabaseUnavailableError("no database connection available") from exc
        except DatabaseUnavailableError as exc:
            self._mark_down(exc)
            self._check_pool_soon()
            raise
        except psycopg.OperationalError as exc:
            self._mark_down(exc)
            self._check_pool_soon()
            raise DatabaseUnavailableError(f"database error: {exc}") from exc
        else:
            if self._down_since is not None:
                log.warning("database reachable again after %.1f s", time.monotonic() - self._down_since)
                self._down_since = None

    def _mark_down(self, exc: BaseException) -> None:
        # Logged once per outage, not once per failed request.
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("database unavailable; answering 503 until it returns: %s", _first_line(exc))

    async def read(self, read: reads.Read[T], *, timeout: float | None = None) -> T:
        """Run a read; after a database restart the pool may still hold dead connections, so a failure is
        retried once on a fresh connection (safe: nothing was written)."""
        try:
            async with self.connection(timeout) as conn:
                return await reads.fetch_async(conn, read)
        except DatabaseUnavailableError as exc:
            if isinstance(exc.__cause__, PoolTimeout):
                raise  # no connection to be had: waiting twice would not help
            # Shielded: the check is shared, and a client hanging up must not cancel it for everyone.
            await asyncio.shield(self._check_pool_soon())
            async with self.connection(timeout) as conn:
                return await reads.fetch_async(conn, read)

    def _check_pool_soon(self) -> asyncio.Task[None]:
        """Start a check of the pool's idle connections, unless one is running; return it."""
        if self._check_task is None or self._check_task.done():
            self._check_task = asyncio.get_running_loop().create_task(self._check_pool())
        return self._check_task

    async def _check_pool(self) -> None:
        """Test the idle connections; broken ones are replaced (psycopg_pool reconnects with backoff)."""
        try:
            await self.pool.check()
        except Exception as exc:  # a check must never take a request down with it
            log.warning("pool check failed: %s", exc)

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        """Open the pool (fail fast), check the schema, start the parser processes, listen for finished tasks;
        undo it all on exit."""
        try:
            await self.pool.open(wait=True, timeout=max(self.settings.api_pool_timeout_s, 2.0))
        except PoolTimeout as exc:
            await self.pool.close()
            raise DatabaseUnavailableError(f"cannot connect to the database at startup: {exc}") from exc
        try:
            # The same check, and messages, as workers use.
            await anyio.to_thread.run_sync(self._check_schema)
            # In the background: /health answers at once, and a submission arriving first waits for a parser.
            threading.Thread(target=self.intake.start, name="intake-start", daemon=True).start()
            self.waiters.start()
            self.events.start()
            log.info("api ready (pool of %d to %d connections)", self.settings.api_pool_min_size,
                     self.settings.api_pool_max_size)
            yield
        finally:
            await self.events.stop()
            await self.waiters.stop()
            await self.pool.close()
            self.intake.close()

    def _check_schema(self) -> None:
        with db.connection(self.database_url, connect_timeout_s=self.settings.api_connect_timeout_s) as conn:
            migrate.check_current(conn)
