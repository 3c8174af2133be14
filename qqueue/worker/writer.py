"""Writing outcomes behind the loop: a thread with a database session of its own.

With one session, the supervisor waited for every outcome write before it could claim or dispatch again, and
the database waited for the supervisor in between: each side idle half the time. The writer takes one batch at a
time and runs its statements (`Outcomes.write`) while the loop claims, dispatches and reads the slots. The
database work is the same, fenced the same way; only the waiting overlaps.

The thread owns its session: it opens it when it first has something to write, and closes it after any error,
so the loop never closes a connection the thread is using. A batch that fails is handed back whole, with the
error, for the loop to put back in front of its buffers and to treat as a lost database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg

__all__ = ["OutcomeWriter"]


class OutcomeWriter:
    """Runs `write(conn, batch)` for one batch at a time on a thread and session of its own."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]],
                 write: Callable[[psycopg.Connection[Any], Any], None], wake: Callable[[], None]) -> None:
        self._connect = connect
        self._write = write
        self._wake = wake
        self._cond = threading.Condition()
        self._batch: Any = None
        #: A finished batch that failed, and why; None once collected.
        self._failed: tuple[Any, Exception] | None = None
        self._closing = False
        self._conn: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="outcome-writer", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """Whether a batch is being written (or failed and not yet collected)."""
        with self._cond:
            return self._batch is not None or self._failed is not None

    def submit(self, batch: Any) -> None:
        """Start writing `batch`. Only when not `busy`."""
        with self._cond:
            assert self._batch is None and self._failed is None
            self._batch = batch
            self._cond.notify_all()

    def collect(self) -> tuple[Any, Exception] | None:
        """The batch that failed and its error, once; None while writing or after a success."""
        with self._cond:
            failed, self._failed = self._failed, None
            return failed

    def wait(self) -> None:
        """Block until the batch in hand, if any, is written or has failed."""
        with self._cond:
            self._cond.wait_for(lambda: self._batch is None)

    def close(self) -> None:
        """Finish the batch in hand, stop the thread and close its session."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._batch is not None or self._closing)
                batch = self._batch
            if batch is None:
                self._drop_session()
                return
            failed = None
            try:
                if self._conn is None:
                    self._conn = self._connect()
                self._write(self._conn, batch)
            except Exception as exc:  # a lost database, or a bug: either way the loop re-raises it
                failed = (batch, exc)
                self._drop_session()
            with self._cond:
                self._batch = None
                self._failed = failed
                self._cond.notify_all()
            self._wake()

    def _drop_session(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # closing a broken connection may fail in any way; it is gone either way
                pass
            self._conn = None
