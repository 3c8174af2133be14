"""The worker supervisor: all of a worker's database work, none of its computing.

One thread, one event loop over pipes and sockets. It claims tasks in batches, hands them to slot processes,
records their outcomes in batches, renews every lease it holds in one statement, reclaims other workers'
expired leases, and listens for new tasks and cancel requests. Because it never runs a circuit, a CPU-bound
task can never starve lease renewal (a known cause of duplicate runs in asyncio queues).

It holds two connections (queries, LISTEN) however many slots it runs.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import wait
from typing import Any

import msgspec
import psycopg

from qqueue import __version__
from qqueue.config import Settings
from qqueue.errors import DatabaseUnavailableError
from qqueue.retry import backoff_s
from qqueue.store import db, migrate
from qqueue.store import queue as q
from qqueue.tasks import ClaimedTask
from qqueue.worker.protocol import Done, Outcome, TaskToRun
from qqueue.worker.slots import SlotHandle

log = logging.getLogger("qqueue.worker")

TASKS_CHANNEL = "qqueue_tasks_v1"
CANCEL_CHANNEL = "qqueue_cancel_v1"

#: Aim for slot batches that take about this long, so short tasks share a pipe message
#: while long tasks are never held back behind each other.
TARGET_BATCH_S = 0.010
#: Slots that die this many times in a row without running anything mean a broken setup, not bad luck.
CRASH_LOOP_LIMIT = 5

PURGE_BATCH = 5000
PURGE_INTERVAL_S = 60.0

EXIT_OK = 0
EXIT_SLOTS_CRASH_LOOP = 3

_decode_error = msgspec.json.Decoder(dict[str, Any]).decode


@dataclass(slots=True, eq=False)
class Held:
    """A task this worker holds a lease on."""

    task: ClaimedTask
    seq: int
    slot: SlotHandle | None = None
    #: Cancel requested while it sat in a slot's queue: record 'cancelled', whatever it returns.
    cancel: bool = False
    #: Lease lost to another worker: drop whatever it returns.
    lost: bool = False

    @property
    def token(self) -> tuple[uuid.UUID, int]:
        """The fencing token of every write about this task."""
        return self.task.id, self.task.attempt

    def log_extra(self) -> dict[str, Any]:
        """Context fields for log lines about this task."""
        return {"task_id": str(self.task.id), "correlation_id": self.task.correlation_id,
                "attempt": self.task.attempt, "kind": self.task.kind}


class Supervisor:
    """Runs one `qqueue worker`: see the module docstring. Use `run()`; it returns the exit code."""

    def __init__(self, settings: Settings, database_url: str, *, burst: bool = False) -> None:
        self.settings = settings
        self.url = database_url
        #: Exit once nothing is due and nothing is held (tests, benchmarks, one-off drains).
        self.burst = burst
        self.worker_id = uuid.uuid4()
        self.concurrency = settings.effective_concurrency()
        self._conn: psycopg.Connection[Any] | None = None
        self.listen_conn: psycopg.Connection[Any] | None = None
        self.slots: list[SlotHandle] = []
        self.ready: deque[Held] = deque()
        self.by_seq: dict[int, Held] = {}
        self.by_id: dict[uuid.UUID, Held] = {}
        self._seq = 0
        self.completions: list[q.Completion] = []
        self.failures: list[q.Failure] = []
        self.to_cancel: list[tuple[uuid.UUID, int]] = []
        self.to_release: list[tuple[uuid.UUID, int]] = []
        self.avg_exec_s: float | None = None
        self.maybe_due = True
        self.next_due_at: float | None = None
        self.stopping = False
        self.stop_deadline = 0.0
        self.db_up = False
        self.reconnect_at = 0.0
        self.reconnect_delay_s = 0.5
        self.crash_streak = 0
        now = time.monotonic()
        self.next_renew = now + self._renew_interval()
        self.next_reclaim = now
        self.next_poll = now + settings.poll_interval_s
        self.next_purge = now
        self.purged_since_vacuum = 0
        self.autovacuum_on = True
        self._signals = 0
        self.exit_code = EXIT_OK
        self._wake_r, self._wake_w = socket.socketpair()

    # ----------------------------------------------------------------------------------------------- setup

    def run(self) -> int:
        """Serve until stopped by SIGTERM/SIGINT (or, in burst mode, until the queues are drained)."""
        self._install_signal_handlers()
        self._connect()
        migrate.check_current(self.conn)
        self.autovacuum_on = db.run(self.conn, "maintenance_autovacuum_on")["enabled"]
        if not self.autovacuum_on:
            log.warning("autovacuum is off: dead rows of the queue tables are only reclaimed by workers that "
                        "purge (--retention), which then vacuum after each purge",
                        extra={"worker_id": str(self.worker_id)})
        # Slots first: a worker is listed live once it can take tasks, not while its forkserver still imports
        # the kind modules (seconds), when workers that came up sooner would take every task of a burst.
        self.slots = [SlotHandle(i, self.settings.imports) for i in range(self.concurrency)]
        db.run(self.conn, "worker_register", id=self.worker_id, hostname=socket.gethostname(), pid=os.getpid(),
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

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The query connection. Between a lost connection and the reconnect there is none, and whatever asks
        for it meets the database as unavailable, as it would have on the connection itself."""
        if self._conn is None:
            raise DatabaseUnavailableError("not connected to the database")
        return self._conn

    def _connect(self) -> None:
        statement_s = self.settings.statement_timeout_s
        idle_s = self.settings.idle_in_transaction_timeout_s
        self._conn = db.connect(self.url, application_name="qqueue-worker", statement_timeout_s=statement_s,
                                idle_in_transaction_timeout_s=idle_s)
        self.listen_conn = db.connect(self.url, application_name="qqueue-worker-listen",
                                      statement_timeout_s=statement_s, idle_in_transaction_timeout_s=idle_s)
        # A server lost between connecting and listening raises DatabaseUnavailableError, which the loop
        # reconnects from, like any other lost database.
        db.run(self.listen_conn, "worker_listen")
        self.db_up = True
        self.reconnect_delay_s = 0.5
        # Anything could have been queued or cancelled while we were not listening.
        self.maybe_due = True

    def _drop_connections(self, exc: Exception) -> None:
        if self.db_up:
            log.warning("database connection lost; reconnecting", extra={"worker_id": str(self.worker_id),
                                                                         "error": str(exc)})
        self.db_up = False
        for conn in (self._conn, self.listen_conn):
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # closing a broken connection may fail in any way; it is gone either way
                    pass
        self._conn = self.listen_conn = None
        self.reconnect_at = time.monotonic() + self.reconnect_delay_s
        self.reconnect_delay_s = min(self.reconnect_delay_s * 2, 10.0)

    # ------------------------------------------------------------------------------------------ main loop

    def _loop(self) -> int:
        while True:
            now = time.monotonic()
            if self._signals:
                self._begin_stop(now)
            if not self.db_up and now >= self.reconnect_at:
                try:
                    self._connect()
                    log.info("database connection restored", extra={"worker_id": str(self.worker_id)})
                except DatabaseUnavailableError as exc:
                    self._drop_connections(exc)
            if self.db_up:
                try:
                    self._database_round(now)
                except DatabaseUnavailableError as exc:
                    self._drop_connections(exc)
            self._dispatch()
            self._check_timeouts(now)
            if self.stopping and not self.by_id and not self._unflushed():
                return self.exit_code
            if self.stopping and now >= self.stop_deadline:
                self._abandon_running()
                if not self._unflushed() or not self.db_up:
                    return self.exit_code
            if self.burst and not self.stopping and not self.by_id and not self.maybe_due and self.db_up:
                self._begin_stop(now)
                continue
            if self.crash_streak >= CRASH_LOOP_LIMIT:
                log.error("slots keep dying before running anything; stopping", extra={"count": self.crash_streak})
                self._begin_stop(now)
                self.stop_deadline = now
                self.exit_code = EXIT_SLOTS_CRASH_LOOP
            self._wait(self._wait_timeout(now))

    def _database_round(self, now: float) -> None:
        """Everything that talks to Postgres in one pass, in the order that keeps latency lowest."""
        self._flush()
        if now >= self.next_renew:
            self._renew()
        if now >= self.next_reclaim:
            reclaimed = q.reclaim_expired(self.conn)
            if reclaimed:
                log.warning("reclaimed tasks with expired leases", extra={"count": len(reclaimed)})
                self.maybe_due = True
            self.next_reclaim = now + max(1.0, self.settings.lease_s / 2)
        if self.settings.retention_s is not None and now >= self.next_purge:
            self._purge(now)
        if now >= self.next_poll or (self.next_due_at is not None and now >= self.next_due_at):
            self.maybe_due = True
            self.next_poll = now + self.settings.poll_interval_s
            self.next_due_at = None
        if not self.stopping:
            self._claim()

    def _purge(self, now: float) -> None:
        # One bounded batch per pass keeps the loop responsive; a backlog is worked off over several passes.
        assert self.settings.retention_s is not None  # only called with a retention
        purged = q.purge_batch(self.conn, older_than_s=self.settings.retention_s, limit=PURGE_BATCH)
        self.next_purge = now + (1.0 if purged == PURGE_BATCH else PURGE_INTERVAL_S)
        self.purged_since_vacuum += purged
        if purged:
            log.info("purged finished tasks past retention", extra={"count": purged})
        if purged < PURGE_BATCH and self.purged_since_vacuum and not self.autovacuum_on:
            # Without autovacuum nothing would reuse the purged rows' space and the table would grow forever.
            db.run(self.conn, "maintenance_vacuum")
            self.purged_since_vacuum = 0

    def _wait_timeout(self, now: float) -> float:
        if self._unflushed() and self.db_up:
            return 0.0
        deadlines = [self.next_renew, self.next_poll, self.next_reclaim]
        if self.next_due_at is not None:
            deadlines.append(self.next_due_at)
        if not self.db_up:
            deadlines.append(self.reconnect_at)
        if self.stopping:
            deadlines.append(self.stop_deadline)
        for slot in self.slots:
            running = slot.running()
            if running is not None:
                deadlines.append(running[1] + self._timeout_of(self.by_seq.get(running[0])))
            elif slot.inflight:
                # Sent but not started yet: look again shortly, or its timeout clock would go unwatched.
                deadlines.append(now + 0.05)
        return max(0.0, min(deadlines) - now)

    def _wait(self, timeout: float) -> None:
        waitables: list[Any] = [self._wake_r]
        for slot in self.slots:
            waitables += [slot.conn, slot.proc.sentinel]
        if self.listen_conn is not None:
            waitables.append(self.listen_conn.fileno())
        ready = wait(waitables, timeout)
        if self._wake_r in ready:
            try:
                while self._wake_r.recv(64):
                    pass
            except BlockingIOError:
                pass
        for slot in list(self.slots):
            if slot.conn in ready or slot.conn.poll():
                self._read_slot(slot)
            if slot.proc.sentinel in ready:
                self._on_slot_exit(slot)
        if self.listen_conn is not None and self.listen_conn.fileno() in ready:
            try:
                for note in self.listen_conn.notifies(timeout=0):
                    self._on_notify(note.channel, note.payload)
            except psycopg.OperationalError as exc:
                self._drop_connections(exc)

    # ------------------------------------------------------------------------------------ claim, dispatch

    def _per_slot(self) -> int:
        if self.avg_exec_s is None:
            # Nothing run yet, so nothing known of how long tasks take: one each, so that tasks which turn out
            # long (a job's parts) are left for other workers rather than queued behind this one's slots.
            return 1
        return max(1, min(self.settings.slot_batch, int(TARGET_BATCH_S / max(self.avg_exec_s, 1e-6))))

    def _slot_capacity(self, per_slot: int) -> int:
        # Short tasks: keep a second batch queued in the pipe so the slot never waits on us.
        # Long tasks: one at a time, so other workers can take what this one cannot start.
        return 2 * per_slot if per_slot > 1 else 1

    def _claim(self) -> None:
        if not self.maybe_due:
            return
        per_slot = self._per_slot()
        room = len(self.slots) * self._slot_capacity(per_slot) - len(self.by_id)
        if room < max(1, per_slot // 2):
            return
        limit = min(self.settings.claim_batch, room)
        claimed = q.claim(self.conn, worker_id=self.worker_id, queues=self.settings.queues,
                          limit=limit, lease_s=self.settings.lease_s)
        for task in claimed:
            if task.cached_from is not None:
                # Answered by the result cache: nothing to simulate.
                self.completions.append(q.Completion(id=task.id, attempt=task.attempt, result=task.cached_result,
                                                     cached_from=task.cached_from))
                continue
            self._seq += 1
            held = Held(task=task, seq=self._seq)
            self.by_seq[held.seq] = held
            self.by_id[task.id] = held
            self.ready.append(held)
        if len(claimed) < limit:
            self.maybe_due = False
            nxt = q.next_run_at(self.conn, self.settings.queues)
            if nxt is not None:
                # A due row we could not take is locked by another worker's claim in flight: look again soon.
                delay = max(0.05, (nxt - datetime.now(UTC)).total_seconds())
                self.next_due_at = time.monotonic() + delay

    def _dispatch(self) -> None:
        if not self.ready:
            return
        per_slot = self._per_slot()
        for slot in sorted(self.slots, key=lambda s: len(s.inflight)):
            if not self.ready:
                return
            if slot.kill_reason is not None or not slot.proc.is_alive():
                continue
            if slot.inflight and (per_slot == 1 or len(slot.inflight) > per_slot):
                continue
            batch: list[TaskToRun] = []
            while self.ready and len(batch) < per_slot:
                held = self.ready.popleft()
                held.slot = slot
                batch.append(TaskToRun(held.seq, held.task.kind, held.task.payload))
            slot.send(batch)

    # ----------------------------------------------------------------------------------------- outcomes

    def _read_slot(self, slot: SlotHandle) -> None:
        for message in slot.receive():
            if isinstance(message, Done):
                for outcome in message.outcomes:
                    self._on_outcome(slot, outcome)
            else:  # skipped: stopped before these started; hand them back untouched
                for seq in message.seqs:
                    self._take_inflight(slot, seq)
                    held = self._forget(seq)
                    if held is not None and not held.lost:
                        (self.to_cancel if held.cancel else self.to_release).append(held.token)

    def _take_inflight(self, slot: SlotHandle, seq: int) -> None:
        if slot.inflight and slot.inflight[0] == seq:
            slot.inflight.popleft()
        elif seq in slot.inflight:
            slot.inflight.remove(seq)

    def _forget(self, seq: int) -> Held | None:
        held = self.by_seq.pop(seq, None)
        if held is not None:
            self.by_id.pop(held.task.id, None)
        return held

    def _on_outcome(self, slot: SlotHandle, outcome: Outcome) -> None:
        self._take_inflight(slot, outcome.seq)
        self.crash_streak = 0
        held = self._forget(outcome.seq)
        if held is None or held.lost:
            return
        exec_s = outcome.exec_s
        self.avg_exec_s = exec_s if self.avg_exec_s is None else 0.9 * self.avg_exec_s + 0.1 * exec_s
        recorded = {"slot_started_at": datetime.fromtimestamp(outcome.slot_started_at, UTC).isoformat(),
                    "exec_s": exec_s}
        task = held.task
        if held.cancel:
            self.to_cancel.append(held.token)
        elif outcome.ok:
            self.completions.append(q.Completion(id=task.id, attempt=task.attempt, result=msgspec.Raw(outcome.body),
                                                 timings=recorded))
            if log.isEnabledFor(logging.DEBUG):
                log.debug("task completed", extra={**held.log_extra(), "duration_s": exec_s})
        else:
            self._fail(held, _decode_error(outcome.body), recorded)

    def _fail(self, held: Held, error: dict[str, Any], timings: dict[str, Any] | None) -> None:
        task = held.task
        retry = None
        if error.get("retryable") and task.attempt < task.max_attempts:
            retry = backoff_s(task.attempt, base_s=self.settings.retry_base_s, cap_s=self.settings.retry_cap_s)
        self.failures.append(q.Failure(id=task.id, attempt=task.attempt, error=error, retry_delay_s=retry,
                                       timings=timings))
        log.warning("task failed", extra={**held.log_extra(), "error": error.get("message"),
                                          "duration_s": (timings or {}).get("exec_s")})

    def _unflushed(self) -> bool:
        return bool(self.completions or self.failures or self.to_cancel or self.to_release)

    def _flush(self) -> None:
        """Write buffered outcomes, one statement per kind of outcome. A buffer is cleared only once written,
        so outcomes survive a lost connection and are written (fenced) after reconnecting."""
        conn, wid = self.conn, self.worker_id
        if self.completions:
            q.complete_many(conn, worker_id=wid, done=self.completions)
            self.completions = []
        if self.failures:
            q.fail_many(conn, worker_id=wid, failed=self.failures)
            self.failures = []
        if self.to_cancel:
            q.finish_cancelled_many(conn, worker_id=wid, held=self.to_cancel)
            self.to_cancel = []
        if self.to_release:
            q.release_many(conn, worker_id=wid, held=self.to_release,
                           note="worker stopped before running it")
            self.to_release = []

    # ------------------------------------------------------------------------------- leases and cancels

    def _renew_interval(self) -> float:
        return self.settings.lease_s / 3

    def _renew(self) -> None:
        db.run(self.conn, "worker_heartbeat", id=self.worker_id)
        held = list(self.by_id.values())
        status = q.renew_leases(self.conn, worker_id=self.worker_id,
                                held=[h.token for h in held], lease_s=self.settings.lease_s)
        self.next_renew = time.monotonic() + self._renew_interval()
        for h in held:
            if h.task.id not in status:
                log.warning("lease lost; another worker owns the task now", extra=h.log_extra())
                self._drop(h, lost=True)
            elif status[h.task.id]:
                self._cancel(h)

    def _on_notify(self, channel: str, payload: str) -> None:
        if channel == TASKS_CHANNEL:
            if payload in self.settings.queues:
                self.maybe_due = True
        elif channel == CANCEL_CHANNEL:
            try:
                held = self.by_id.get(uuid.UUID(payload))
            except ValueError:
                return
            if held is not None:
                self._cancel(held)

    def _cancel(self, held: Held) -> None:
        log.info("cancelling running task on request", extra=held.log_extra())
        if held.slot is None:  # not handed to a slot yet
            self.ready.remove(held)
            self._forget(held.seq)
            self.to_cancel.append(held.token)
            return
        held.cancel = True
        running = held.slot.running()
        if running is not None and running[0] == held.seq:
            held.slot.kill("cancel")

    def _drop(self, held: Held, *, lost: bool) -> None:
        """Stop caring about a task: out of the ready queue, its slot killed if it is running it now."""
        held.lost = lost
        if held.slot is None:
            self.ready.remove(held)
            self._forget(held.seq)
            return
        running = held.slot.running()
        if running is not None and running[0] == held.seq:
            held.slot.kill("lost")

    # ---------------------------------------------------------------------------- timeouts and slot death

    def _timeout_of(self, held: Held | None) -> float:
        if held is None or held.task.timeout_s is None:
            return self.settings.default_timeout_s
        return held.task.timeout_s

    def _check_timeouts(self, now: float) -> None:
        for slot in self.slots:
            running = slot.running()
            if running is None or slot.kill_reason is not None:
                continue
            seq, since = running
            if now - since > self._timeout_of(self.by_seq.get(seq)):
                slot.kill("timeout")

    def _on_slot_exit(self, slot: SlotHandle) -> None:
        self._read_slot(slot)  # results it sent before dying still count
        slot.proc.join()
        running = slot.running()
        running_seq = running[0] if running is not None else None
        reason = slot.kill_reason
        requeue: list[Held] = []
        ran_something = False
        for seq in list(slot.inflight):
            held = self._forget(seq) if seq == running_seq else self.by_seq.get(seq)
            if held is None:
                continue
            if seq != running_seq:
                # Never started (or finished without its result reaching us): run it again here.
                if held.lost:
                    self._forget(seq)
                else:
                    held.slot = None
                    requeue.append(held)
                continue
            ran_something = True
            if held.lost:
                continue
            if held.cancel or reason == "cancel":
                self.to_cancel.append(held.token)
            elif reason == "shutdown":
                self.to_release.append(held.token)
            elif reason == "timeout":
                limit = self._timeout_of(held)
                self._fail(held, {"type": "TaskTimeout", "message": f"task ran past its {limit:g} s timeout",
                                  "retryable": True}, None)
            else:
                self._fail(held, {"type": "SlotCrashed", "message":
                                  f"the slot process running the task died (exit code {slot.proc.exitcode})",
                                  "retryable": True}, None)
        slot.inflight.clear()
        self.ready.extendleft(reversed(requeue))
        if reason is None:
            log.error("slot died unexpectedly", extra={"slot": slot.index, "pid": slot.pid,
                                                       "error": f"exit code {slot.proc.exitcode}"})
            if not ran_something and not requeue:
                self.crash_streak += 1
        elif reason != "shutdown":
            log.warning("slot killed", extra={"slot": slot.index, "pid": slot.pid, "error": reason})
        slot.conn.close()
        index = self.slots.index(slot)
        if self.stopping:
            del self.slots[index]
        else:
            self.slots[index] = SlotHandle(slot.index, self.settings.imports)

    # ---------------------------------------------------------------------------------------- stopping

    def _begin_stop(self, now: float) -> None:
        self._signals = 0
        if self.stopping:  # a second signal: stop now
            self.stop_deadline = now
            return
        self.stopping = True
        self.stop_deadline = now + (0.0 if self.burst else self.settings.grace_s)
        log.info("worker stopping: finishing running tasks", extra={"worker_id": str(self.worker_id),
                                                                    "count": len(self.by_id)})
        while self.ready:
            held = self.ready.popleft()
            self._forget(held.seq)
            self.to_release.append(held.token)
        for slot in self.slots:
            slot.request_stop()

    def _abandon_running(self) -> None:
        """Grace period over: kill the slots; their tasks go back to 'pending' via _on_slot_exit."""
        for slot in list(self.slots):
            if slot.inflight:
                slot.kill("shutdown")
                slot.proc.join()
                self._on_slot_exit(slot)
        for held in list(self.by_id.values()):
            self._forget(held.seq)
            if not held.lost:
                self.to_release.append(held.token)
        if self.db_up:
            try:
                self._flush()
            except DatabaseUnavailableError as exc:
                self._drop_connections(exc)

    def _shutdown(self) -> None:
        for slot in self.slots:
            slot.close()
        self.slots = []
        if self.db_up:
            try:
                self._flush()
                db.run(self.conn, "worker_stop", id=self.worker_id)
            except DatabaseUnavailableError:
                pass  # leases will lapse and any worker will reclaim what we held
        signal.set_wakeup_fd(-1)
        self.close()
        log.info("worker stopped", extra={"worker_id": str(self.worker_id)})

    def close(self) -> None:
        """Release the database connections and the signal wakeup sockets (safe to call twice)."""
        for closeable in (self._conn, self.listen_conn, self._wake_r, self._wake_w):
            if closeable is not None:
                closeable.close()
