"""The deliverer: a thread of the worker, with a database session of its own, that sends due webhooks.

It claims due rows of qqueue.webhook_deliveries with SKIP LOCKED (as workers claim tasks, so several workers
never send one delivery at once), sends them on a small thread pool, and records each outcome: delivered on a
2xx, else tried again after an exponential backoff until the attempts run out. It shares nothing with the
supervisor's loop but the settings, so a slow or dead receiver never delays a claim. A notification
(qqueue_webhooks_v1, sent by the trigger that writes a delivery) wakes it; a slow poll is the backstop.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import psycopg

from qqueue.config import Settings
from qqueue.errors import DatabaseUnavailableError
from qqueue.retry import backoff_s
from qqueue.store import db
from qqueue.webhooks import sender, targets

__all__ = ["Deliverer"]

log = logging.getLogger("qqueue.webhooks")

#: Deliveries claimed, and sent at once, per round.
BATCH = 8
#: A claimed delivery is left alone by other workers this long past the send's timeout.
LEASE_MARGIN_S = 30.0
#: Pause before reconnecting after the database was lost.
RECONNECT_S = 2.0

_encoder = msgspec.json.Encoder()


class Deliverer:
    """Sends due webhooks on a thread of its own; `start()`, then `stop()` when the worker stops."""

    def __init__(self, settings: Settings, connect: Callable[[], psycopg.Connection[Any]],
                 worker_id: uuid.UUID | None = None) -> None:
        self._settings = settings
        self._connect = connect
        self._worker_id = str(worker_id) if worker_id else None
        self._allow = targets.allow_list(tuple(settings.webhook_allow))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-deliverer", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the thread to stop and wait for it a little: a send in flight is bounded by its own timeout, and
        a delivery left unrecorded is sent again once its claim lapses."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        with sender.new_client(self._settings.webhook_timeout_s) as client, \
                ThreadPoolExecutor(BATCH, thread_name_prefix="webhook-send") as pool:
            while not self._stop.is_set():
                try:
                    conn = self._connect()
                    try:
                        db.run(conn, "webhook_listen")
                        self._serve(conn, client, pool)
                    finally:
                        conn.close()
                except DatabaseUnavailableError as exc:
                    log.warning("webhook deliverer lost the database; reconnecting",
                                extra={"worker_id": self._worker_id, "error": str(exc)})
                    self._stop.wait(RECONNECT_S)
                except Exception:  # a bug: log it where operators look, and keep delivering
                    log.exception("webhook deliverer failed", extra={"worker_id": self._worker_id})
                    self._stop.wait(RECONNECT_S)

    def _serve(self, conn: psycopg.Connection[Any], client: Any, pool: ThreadPoolExecutor) -> None:
        while not self._stop.is_set():
            if self.deliver_due(conn, client, pool) == BATCH:
                continue  # more may be due
            self._wait(conn)

    def _wait(self, conn: psycopg.Connection[Any]) -> None:
        """Until a notification, the poll interval, or stop; in short slices, so stopping is prompt."""
        deadline = time.monotonic() + self._settings.webhook_poll_interval_s
        while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
            try:
                if any(True for _ in conn.notifies(timeout=min(left, 0.5), stop_after=1)):
                    return
            except psycopg.OperationalError as exc:
                raise DatabaseUnavailableError(f"database error: {exc}") from exc

    def deliver_due(self, conn: psycopg.Connection[Any], client: Any, pool: ThreadPoolExecutor) -> int:
        """Claim, send and record one batch of due deliveries; how many were claimed."""
        settings = self._settings
        rows = db.run(conn, "webhook_delivery_claim", limit=BATCH,
                      lease_s=settings.webhook_timeout_s + LEASE_MARGIN_S)
        if not rows:
            return 0
        attempts = list(pool.map(lambda r: sender.send(client, self._allow, r, sender.body_of(r, settings.public_url)),
                                 rows))
        outcomes = []
        for row, attempt in zip(rows, attempts, strict=True):
            give_up = not attempt.delivered and (attempt.final or row["attempts"] >= settings.webhook_max_attempts)
            retry_in_s = 0.0 if attempt.delivered or give_up else backoff_s(
                row["attempts"], base_s=settings.webhook_backoff_base_s, cap_s=settings.webhook_backoff_cap_s)
            outcomes.append({"id": row["id"], "attempts": row["attempts"], "status_code": attempt.status_code,
                             "error": attempt.error, "delivered": attempt.delivered, "abandon": give_up,
                             "retry_in_s": retry_in_s})
            self._log(row, attempt, give_up)
        db.run(conn, "webhook_delivery_record", outcomes=_encoder.encode(outcomes).decode())
        return len(rows)

    def _log(self, row: dict[str, Any], attempt: sender.Attempt, give_up: bool) -> None:
        subject = {"job_id": str(row["job_id"])} if row["job_id"] is not None else {"task_id": str(row["task_id"])}
        extra = {**subject, "worker_id": self._worker_id, "attempt": row["attempts"], "error": attempt.error}
        if attempt.delivered:
            log.info("webhook delivered", extra=extra)
        elif give_up:
            log.warning("webhook abandoned", extra=extra)
        else:
            log.info("webhook attempt failed; will retry", extra=extra)
