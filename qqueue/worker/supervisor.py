"""The worker supervisor: all of a worker's database work, none of its computing.

One thread, one event loop over pipes and sockets. This module is the loop: it waits (LISTEN/NOTIFY, slot pipes,
signals), starts and stops the worker, and wires together the services that do the work: `dispatch` (claiming),
`completer` (recording outcomes), `leases` (renewal, cancels, timeouts) and `maintenance` (reclaiming, purging),
around the state they share: `held` (the tasks held) and `slots`.

Because it never runs a circuit, a CPU-bound task can never starve lease renewal (a known cause of duplicate runs
in asyncio queues). It holds three connections (queries, LISTEN, and the outcome writer's: `writer`) however
many slots it runs; the webhook deliverer (`qqueue.webhooks.deliverer`), a thread of its own, opens a fourth
only while webhooks are due, woken through the loop's LISTEN session and its backstop probe.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid
from multiprocessing.connection import wait
from typing import Any

import psycopg

from qqueue import __version__
from qqueue.config import Settings
from qqueue.errors import DatabaseUnavailableError
from qqueue.store import db, migrate
from qqueue.webhooks.deliverer import Deliverer
from qqueue.worker.completer import Completer
from qqueue.worker.connection import Connections, Link
from qqueue.worker.dispatch import Dispatcher, Pace
from qqueue.worker.held import HeldTasks
from qqueue.worker.leases import Leases
from qqueue.worker.maintenance import Maintenance
from qqueue.worker.protocol import Done
from qqueue.worker.slots import SlotHandle, Slots

log = logging.getLogger("qqueue.worker")

TASKS_CHANNEL = "qqueue_tasks_v1"
CANCEL_CHANNEL = "qqueue_cancel_v1"
WEBHOOKS_CHANNEL = "qqueue_webhooks_v1"

#: Slots that die this many times in a row without running anything mean a broken setup, not bad luck.
CRASH_LOOP_LIMIT = 5

EXIT_OK = 0
EXIT_SLOTS_CRASH_LOOP = 3


class Supervisor:
    """Runs one `qqueue worker`: see the module docstring. Use `run()`; it returns the exit code."""

    def __init__(self, settings: Settings, database_url: str, *, burst: bool = False) -> None:
        self.settings = settings
        #: Exit once nothing is due and nothing is held (tests, benchmarks, one-off drains).
        self.burst = burst
        self.worker_id = uuid.uuid4()
        self.concurrency = settings.effective_concurrency()
        self.link = Link(database_url, settings, self.worker_id, listen_webhooks=settings.webhook_deliver)
        self.held = HeldTasks()
        self.slots = Slots(settings.imports)
        pace = Pace()
        self.completer = Completer(settings, self.worker_id, self.held, pace)
        self.dispatcher = Dispatcher(settings, self.worker_id, self.held, self.slots, self.completer, pace)
        self.leases = Leases(settings, self.worker_id, self.held, self.slots, self.completer)
        self.maintenance = Maintenance(settings, self.worker_id)
        #: Sends due webhooks on a thread of its own, with a session of its own while any are due (None when
        #: this worker does not send them).
        self.deliverer = Deliverer(settings, self.link.open_webhooks, self.worker_id) if settings.webhook_deliver \
            else None
        self.stopping = False
        self.stop_deadline = 0.0
        self.exit_code = EXIT_OK
        self._signals = 0
        self._wake_r, self._wake_w = socket.socketpair()

    # ----------------------------------------------------------------------------------------------- setup

    def run(self) -> int:
        """Serve until stopped by SIGTERM/SIGINT (or, in burst mode, until the queues are drained)."""
        self._install_signal_handlers()
        conn = self._connect().query
        migrate.check_current(conn)
        self.completer.start_writer(self.link.open_outcomes, self._wake)
        self.maintenance.check_autovacuum(conn)
        if self.deliverer is not None:
            self.deliverer.start()
        # Slots first: a worker is listed live once it can take tasks, not while its forkserver still imports
        # the kind modules (seconds), when workers that came up sooner would take every task of a burst.
        self.slots.start(self.concurrency)
        db.run(conn, "worker_register", id=self.worker_id, hostname=socket.gethostname(), pid=os.getpid(),
               queues=self.settings.queues, concurrency=self.concurrency, version=__version__)
        log.info("worker started", extra={"worker_id": str(self.worker_id), "count": self.concurrency,
                                          "queue": ",".join(self.settings.queues)})
        try:
            return self._loop()
        except Exception:
            # A bug, not a condition we handle: say so in the log stream operators watch, with the traceback.
            log.exception("worker failed on an unexpected error", extra={"worker_id": str(self.worker_id)})
            raise
        finally:
            self._shutdown()

    def _install_signal_handlers(self) -> None:
        # The wakeup fd interrupts the wait() below at once; a handler alone would only run when it returns.
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals += 1

    def _wake(self) -> None:
        """Rouse the loop's wait (from the outcome writer's thread)."""
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # full, so already roused; or closed, so nobody waits

    def _connect(self) -> Connections:
        opened = self.link.connect()
        # Anything could have been queued or cancelled (or a webhook made due) while we were not listening.
        self.dispatcher.wake()
        if self.deliverer is not None:
            self.deliverer.check_soon()
        return opened

    @property
    def db_up(self) -> bool:
        """Whether both sessions are open."""
        return self.link.current is not None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The query connection. Between a lost connection and the reconnect there is none, and whatever asks
        for it meets the database as unavailable, as it would have on the connection itself."""
        return self._open().query

    @property
    def listen_conn(self) -> psycopg.Connection[Any]:
        """The LISTEN connection; like `conn`, unavailable while the database is."""
        return self._open().listen

    def _open(self) -> Connections:
        if self.link.current is None:
            raise DatabaseUnavailableError("not connected to the database")
        return self.link.current

    @property
    def autovacuum_on(self) -> bool:
        """Whether the server's autovacuum runs (read at start; without it a purging worker vacuums)."""
        return self.maintenance.autovacuum_on

    @autovacuum_on.setter
    def autovacuum_on(self, value: bool) -> None:
        self.maintenance.autovacuum_on = value

    def _purge(self, now: float) -> None:
        # One purge pass outside the loop, as the retention test drives it.
        self.maintenance.purge(self.conn, now)

    # ------------------------------------------------------------------------------------------ main loop

    def _loop(self) -> int:
        while True:
            now = time.monotonic()
            if self._signals:
                self._begin_stop(now)
            if self.link.current is None and now >= self.link.reconnect_at:
                try:
                    self._connect()
                    log.info("database connection restored", extra={"worker_id": str(self.worker_id)})
                except DatabaseUnavailableError as exc:
                    self.link.lost(exc)
            if (conns := self.link.current) is not None:
                try:
                    self._database_round(conns.query, now)
                except DatabaseUnavailableError as exc:
                    self.link.lost(exc)
            self.dispatcher.dispatch()
            self.leases.check_timeouts(now)
            if self.stopping and not self.held and not self.completer.unflushed:
                return self.exit_code
            if self.stopping and now >= self.stop_deadline:
                self._abandon_running()
                if not self.completer.unflushed or not self.db_up:
                    return self.exit_code
            if self.burst and not self.stopping and not self.held and not self.dispatcher.maybe_due and self.db_up:
                self._begin_stop(now)
                continue
            if self.slots.crash_streak >= CRASH_LOOP_LIMIT:
                log.error("slots keep dying before running anything; stopping",
                          extra={"count": self.slots.crash_streak})
                self._begin_stop(now)
                self.stop_deadline = now
                self.exit_code = EXIT_SLOTS_CRASH_LOOP
            self._wait(self._wait_timeout(now))

    def _database_round(self, conn: psycopg.Connection[Any], now: float) -> None:
        """Everything that talks to Postgres in one pass, in the order that keeps latency lowest."""
        if self.stopping:
            # What is left is written here and now, in order, before the worker may exit.
            if self.completer.unflushed:
                self.completer.flush(conn)
        else:
            self.completer.write_behind(now)
        if now >= self.leases.next_renew:
            self.leases.renew(conn)
        if self.maintenance.run(conn, now):
            self.dispatcher.wake()
        self.dispatcher.tick(now)
        if not self.stopping:
            self.dispatcher.claim(conn)
        if self.deliverer is not None:
            self.deliverer.check_due(conn, now)

    def _wait_timeout(self, now: float) -> float:
        deadlines = [self.leases.next_deadline(now), self.dispatcher.next_deadline(), self.maintenance.next_reclaim]
        if self.db_up and (flush_at := self.completer.flush_at(now)) is not None:
            deadlines.append(now if self.stopping else flush_at)
        if self.db_up and self.deliverer is not None:
            deadlines.append(self.deliverer.next_check)
        if not self.db_up:
            deadlines.append(self.link.reconnect_at)
        if self.stopping:
            deadlines.append(self.stop_deadline)
        return max(0.0, min(deadlines) - now)

    def _wait(self, timeout: float) -> None:
        listen = self.link.current.listen if self.link.current is not None else None
        waitables: list[Any] = [self._wake_r, *self.slots.waitables()]
        if listen is not None:
            waitables.append(listen.fileno())
        ready = wait(waitables, timeout)
        if self._wake_r in ready:
            try:
                while self._wake_r.recv(64):
                    pass
            except BlockingIOError:
                pass
        for slot in self.slots:
            if slot.conn in ready or slot.conn.poll():
                self._read_slot(slot)
            if slot.proc.sentinel in ready:
                self._on_slot_exit(slot)
        if listen is not None and listen.fileno() in ready:
            try:
                for note in listen.notifies(timeout=0):
                    self._on_notify(note.channel, note.payload)
            except psycopg.OperationalError as exc:
                self.link.lost(exc)

    def _on_notify(self, channel: str, payload: str) -> None:
        if channel == TASKS_CHANNEL:
            if payload in self.settings.queues:
                self.dispatcher.wake()
        elif channel == CANCEL_CHANNEL:
            self.leases.on_cancel_request(payload)
        elif channel == WEBHOOKS_CHANNEL and self.deliverer is not None:
            self.deliverer.wake()

    # ------------------------------------------------------------------------------------------ slots

    def _read_slot(self, slot: SlotHandle) -> None:
        for message in slot.receive():
            if isinstance(message, Done):
                if message.outcomes:
                    self.slots.ran()
                self.completer.on_done(slot, message.outcomes)
            else:
                self.completer.on_skipped(slot, message.seqs)

    def _on_slot_exit(self, slot: SlotHandle) -> None:
        self._read_slot(slot)  # results it sent before dying still count
        slot.proc.join()
        had_tasks = self.completer.settle_dead_slot(slot)
        self.slots.retire(slot, had_tasks=had_tasks, replace=not self.stopping)

    # ---------------------------------------------------------------------------------------- stopping

    def _begin_stop(self, now: float) -> None:
        self._signals = 0
        if self.stopping:  # a second signal: stop now
            self.stop_deadline = now
            return
        self.stopping = True
        self.stop_deadline = now + (0.0 if self.burst else self.settings.grace_s)
        log.info("worker stopping: finishing running tasks", extra={"worker_id": str(self.worker_id),
                                                                    "count": len(self.held)})
        self.completer.hand_back_ready()
        self.slots.request_stop()

    def _abandon_running(self) -> None:
        """Grace period over: kill the slots; their tasks go back to 'pending' via _on_slot_exit."""
        for slot in self.slots.busy():
            slot.kill("shutdown")
            slot.proc.join()
            self._on_slot_exit(slot)
        self.completer.hand_back_all()
        if (conns := self.link.current) is not None:
            try:
                self.completer.flush(conns.query)
            except DatabaseUnavailableError as exc:
                self.link.lost(exc)

    def _shutdown(self) -> None:
        self.slots.close()
        if (conns := self.link.current) is not None:
            try:
                self.completer.flush(conns.query)
                db.run(conns.query, "worker_stop", id=self.worker_id)
            except DatabaseUnavailableError:
                pass  # leases will lapse and any worker will reclaim what we held
        signal.set_wakeup_fd(-1)
        self.close()
        log.info("worker stopped", extra={"worker_id": str(self.worker_id)})

    def close(self) -> None:
        """Release the database connections and the signal wakeup sockets (safe to call twice)."""
        if self.deliverer is not None:
            self.deliverer.stop()
        self.completer.close()
        self.link.close()
        self._wake_r.close()
        self._wake_w.close()
