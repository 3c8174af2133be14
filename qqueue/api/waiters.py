"""Long-poll support: one LISTEN connection on `qqueue_finished_v1` wakes the requests waiting for tasks to end.

Every statement that moves tasks to a terminal status sends one notification whose payload is the ids it
finished (comma-separated) or '*' when there were many. A notification is a hint, not the truth: waiters are
re-checked against the database after a '*', after every (re)connection of the LISTEN session (anything may
have ended while nobody listened), and on a slow backstop timer (a connection can die silently). A woken
request always re-reads the task, so an early or spurious wake-up is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from qqueue.errors import DatabaseUnavailableError
from qqueue.store import db

log = logging.getLogger("qqueue.api.waiters")

CHANNEL = "qqueue_finished_v1"
_FIRST_RETRY_S = 0.2

Connect = Callable[[], Awaitable[psycopg.AsyncConnection[Any]]]
Recheck = Callable[[list[uuid.UUID]], Awaitable[list[uuid.UUID]]]


class FinishedWaiters:
    """Asyncio futures keyed by task id, resolved when the task ends.

    Parameters
    ----------
    connect
        Opens the dedicated autocommit LISTEN connection.
    recheck
        Given waited-on ids, returns those that have ended (or no longer exist); runs on the query pool.
    backstop_s
        How often waiters are re-checked against the database even without a notification.
    """

    def __init__(self, connect: Connect, recheck: Recheck, *, backstop_s: float = 5.0) -> None:
        self._connect = connect
        self._recheck = recheck
        self._backstop_s = backstop_s
        self._waiting: dict[uuid.UUID, set[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        #: Set while the LISTEN session is up; for health and tests.
        self.listening = asyncio.Event()

    def start(self) -> None:
        """Start listening in the background (call from the running event loop)."""
        self._task = asyncio.create_task(self._run(), name="qqueue-api-listen")

    def close(self) -> None:
        """Wake every waiter now, and resolve later watches at once: the server is shutting down, and a
        long-poll should answer with the task's current state rather than be cut off."""
        self._closing = True
        self._wake(list(self._waiting))

    async def stop(self) -> None:
        """Stop listening and wake every waiter (each then re-reads its task and answers)."""
        self.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._wake(list(self._waiting))

    @contextlib.contextmanager
    def watch(self, task_id: uuid.UUID) -> Iterator[asyncio.Future[None]]:
        """A future resolved once `task_id` may have ended. Register before reading the task, so an end
        between the read and the wait cannot be missed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closing:
            future.set_result(None)
        self._waiting.setdefault(task_id, set()).add(future)
        try:
            yield future
        finally:
            futures = self._waiting.get(task_id)
            if futures is not None:
                futures.discard(future)
                if not futures:
                    del self._waiting[task_id]

    @property
    def waiting(self) -> int:
        """How many tasks are waited on."""
        return len(self._waiting)

    def _wake(self, ids: list[uuid.UUID]) -> None:
        for task_id in ids:
            for future in self._waiting.pop(task_id, ()):
                if not future.done():
                    future.set_result(None)

    def on_payload(self, payload: str) -> bool:
        """Handle one notification: wake the ids it names. True when everyone must be re-checked ('*')."""
        if payload == "*":
            return True
        ids = []
        for part in payload.split(","):
            try:
                ids.append(uuid.UUID(part))
            except ValueError:
                log.warning("malformed %s payload %r; re-checking all waiters", CHANNEL, payload[:200])
                return True
        self._wake([i for i in ids if i in self._waiting])
        return False

    async def recheck_all(self) -> None:
        """Ask the database which waited-on tasks have ended and wake those."""
        ids = list(self._waiting)
        if not ids:
            return
        try:
            ended = await self._recheck(ids)
        except (DatabaseUnavailableError, psycopg.Error) as exc:
            log.warning("could not re-check long-poll waiters: %s", exc)
            return
        except Exception as exc:  # a bug here must not stop the listener; the next re-check may succeed
            log.error("re-checking long-poll waiters failed", exc_info=exc)
            return
        self._wake(ended)

    async def _run(self) -> None:
        delay_s = _FIRST_RETRY_S
        while True:
            try:
                conn = await self._connect()
            except (DatabaseUnavailableError, psycopg.Error) as exc:
                # The first failure of an outage is a warning; the retries that follow are noise.
                level = logging.WARNING if delay_s == _FIRST_RETRY_S else logging.DEBUG
                log.log(level, "cannot open the LISTEN connection (retrying with backoff): %s", exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, self._backstop_s)
                continue
            delay_s = _FIRST_RETRY_S
            try:
                await db.run_async(conn, "task_listen_finished")
                self.listening.set()
                # Tasks may have ended while nobody listened.
                await self.recheck_all()
                while True:
                    async for note in conn.notifies(timeout=self._backstop_s):
                        if self.on_payload(note.payload):
                            await self.recheck_all()
                    # The backstop: a notification can be lost with a connection that died silently.
                    await AsyncConnectionPool.check_connection(conn)
                    await self.recheck_all()
            except (DatabaseUnavailableError, psycopg.Error) as exc:
                log.warning("LISTEN connection lost; reconnecting: %s", exc)
            except Exception as exc:  # never let long-polls lose their listener to a bug: log, pause, go on
                log.error("long-poll listener failed; restarting it", exc_info=exc)
                await asyncio.sleep(1.0)
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    await conn.close()
