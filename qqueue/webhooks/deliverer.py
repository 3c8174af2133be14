"""The deliverer: a thread of the worker that sends due webhooks, on a database session of its own that it holds
only while deliveries are due.

It claims due rows of qqueue.webhook_deliveries with SKIP LOCKED (as workers claim tasks, so several workers
never send one delivery at once), sends them on a small thread pool, and records each outcome: delivered on a
2xx, else tried again after an exponential backoff until the attempts run out. Its sends and its session are
its own, so a slow or dead receiver never delays a claim.

Most workers never see a callback, so waiting for one costs no connection: the supervisor's LISTEN session,
which the worker holds anyway, also listens on qqueue_webhooks_v1 (sent by the trigger that writes a delivery)
and `wake()`s the thread; and as the backstop (a lost notification, a retry that falls due after its backoff,
the deliveries of a worker that died) the supervisor asks, once per poll interval, with one probe of the due
index on its query session, whether anything is due (`check_due`). Only then does the thread connect; it closes
its session again once nothing was due for `idle_close_s`. Waking is setting an event and the probe is one
index read, so the claim loop never waits on a delivery.
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
#: A session that claimed nothing for this long is closed, until deliveries are due again.
IDLE_CLOSE_S = 30.0

_encoder = msgspec.json.Encoder()


class Deliverer:
    """Sends due webhooks on a thread of its own; `start()`, then `stop()` when the worker stops. The supervisor
    calls `wake()` on a notification and `check_due()` from its database round."""

    def __init__(self, settings: Settings, connect: Callable[[], psycopg.Connection[Any]],
                 worker_id: uuid.UUID | None = None, *, idle_close_s: float = IDLE_CLOSE_S) -> None:
        self._settings = settings
        self._connect = connect
        self._worker_id = str(worker_id) if worker_id else None
        self._idle_close_s = idle_close_s
        self._allow = targets.allow_list(tuple(settings.webhook_allow))
        self._stop = threading.Event()
        #: Set when deliveries may be due: by a notification, the supervisor's probe, or a failed attempt.
        self._work = threading.Event()
        #: Whether the thread holds its session (written by the thread, read by the supervisor's probe).
        self.connected = False
        #: Monotonic time of the supervisor's next probe (read and written by the supervisor only).
        self.next_check = 0.0
        self._thread = threading.Thread(target=self._run, name="webhook-deliverer", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the thread to stop and wait for it a little: a send in flight is bounded by its own timeout, and
        a delivery left unrecorded is sent again once its claim lapses."""
        self._stop.set()
        self._work.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def wake(self) -> None:
        """Deliveries may be due (a notification on qqueue_webhooks_v1): the thread connects, if it is not."""
        self._work.set()

    def check_soon(self) -> None:
        """Probe at the next `check_due`: after the supervisor reconnects, notifications may have been missed."""
        self.next_check = 0.0

    def check_due(self, conn: psycopg.Connection[Any], now: float) -> None:
        """The backstop, once per poll interval on the supervisor's query session: wake the thread if a delivery
        is due. A thread that holds its session polls on it by itself. Raises `DatabaseUnavailableError`."""
        if now < self.next_check:
            return
        self.next_check = now + self._settings.webhook_poll_interval_s
        if not self.connected and db.run(conn, "webhook_delivery_due")["due"]:
            self._work.set()

    def _run(self) -> None:
        with sender.new_client(self._settings.webhook_timeout_s) as client, \
                ThreadPoolExecutor(BATCH, thread_name_prefix="webhook-send") as pool:
            while not self._stop.is_set():
                self._work.wait()
                if self._stop.is_set():
                    return
                try:
                    conn = self._connect()
                    self.connected = True
                    try:
                        self._serve(conn, client, pool)
                    finally:
                        self.connected = False
                        conn.close()
                except DatabaseUnavailableError as exc:
                    log.warning("webhook deliverer lost the database; reconnecting",
                                extra={"worker_id": self._worker_id, "error": str(exc)})
                    self._retry_later()
                except Exception:  # a bug: log it where operators look, and keep delivering
                    log.exception("webhook deliverer failed", extra={"worker_id": self._worker_id})
                    self._retry_later()

    def _retry_later(self) -> None:
        # What was due is still due (at least once): try again after a pause, woken or not.
        self._work.set()
        self._stop.wait(RECONNECT_S)

    def _serve(self, conn: psycopg.Connection[Any], client: Any, pool: ThreadPoolExecutor) -> None:
        """Deliver until nothing was due for `idle_close_s` (or stop), polling every poll interval meanwhile."""
        idle_since = time.monotonic()
        while not self._stop.is_set():
            # Cleared before the claim, so a wake that comes during this round makes the wait below return.
            self._work.clear()
            claimed = self.deliver_due(conn, client, pool)
            now = time.monotonic()
            if claimed:
                idle_since = now
            if claimed == BATCH:
                continue  # more may be due
            idle_left = self._idle_close_s - (now - idle_since)
            if idle_left <= 0:
                return
            self._work.wait(min(self._settings.webhook_poll_interval_s, idle_left))

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
