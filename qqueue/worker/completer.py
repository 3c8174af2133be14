"""Completing: turn what slots report into outcomes, buffer them, and write them in batches.

Four buffers (completions, failures, cancels, hand-backs), each flushed as one fenced statement per pass of the
loop that finds them due: at once when nothing else of this worker's is running, else once `OUTCOME_BATCH`
outcomes wait or the oldest has waited `OUTCOME_LINGER_S`. Written one by one, short tasks cost a commit each
(a WAL flush, the statement's fixed overhead); a few milliseconds of lingering under load shares it among many.
Every write matches (task id, attempt, worker, status = 'running'), so an outcome whose lease was lost to
another worker changes nothing even if it reaches the database; one the supervisor already knows is lost is
dropped here and never sent. A buffer is cleared only once written, so outcomes survive a lost connection and
are written after reconnecting.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import psycopg

from qqueue.config import Settings
from qqueue.errors import DatabaseUnavailableError
from qqueue.retry import backoff_s
from qqueue.store import queue as q
from qqueue.tasks import ClaimedTask
from qqueue.worker.held import Held, HeldTasks
from qqueue.worker.protocol import Outcome
from qqueue.worker.slots import SlotHandle
from qqueue.worker.writer import OutcomeWriter

if TYPE_CHECKING:
    from qqueue.worker.dispatch import Pace

__all__ = ["OUTCOME_BATCH", "OUTCOME_LINGER_S", "Completer", "Outcomes"]

#: While other tasks of this worker still run, an outcome waits at most this long for others to share its write.
OUTCOME_LINGER_S = 0.010
#: ... and no longer than it takes this many to gather.
OUTCOME_BATCH = 64

log = logging.getLogger("qqueue.worker")

_decode_error = msgspec.json.Decoder(dict[str, Any]).decode


class Completer:
    """Buffers outcomes of held tasks and writes them, fenced, in one statement per kind."""

    def __init__(self, settings: Settings, worker_id: uuid.UUID, held: HeldTasks, pace: Pace) -> None:
        self._settings = settings
        self._worker_id = worker_id
        self._held = held
        self._pace = pace
        self._out = Outcomes()
        #: Writes batches behind the loop once `start_writer` has given it a session to open.
        self._writer: OutcomeWriter | None = None
        #: When the oldest outcome waiting to be written was recorded (monotonic), once one is.
        self._oldest: float | None = None

    @property
    def unflushed(self) -> bool:
        """Whether any outcome waits to be written."""
        return bool(self._out) or (self._writer is not None and self._writer.busy)

    def flush_at(self, now: float) -> float | None:
        """When the buffered outcomes are due to be written (`now` if they are already); None if none wait, or
        while the writer has a batch in hand (it wakes the loop when done)."""
        if not self._out:
            self._oldest = None
            return None
        if self._writer is not None and self._writer.busy:
            return None
        if self._oldest is None:
            self._oldest = now
        if not self._held or len(self._out) >= OUTCOME_BATCH:
            return now
        return max(now, self._oldest + OUTCOME_LINGER_S)

    def cached(self, task: ClaimedTask) -> None:
        """Record a claimed task the result cache already answered."""
        self._out.completions.append(q.Completion(id=task.id, attempt=task.attempt, result=task.cached_result,
                                              cached_from=task.cached_from))

    def cancelled(self, held: Held) -> None:
        """Record a task stopped on a cancel request."""
        self._out.cancels.append(held.token)

    def on_done(self, slot: SlotHandle, outcomes: list[Outcome]) -> None:
        """Take the outcomes a slot reported."""
        held_tasks = self._held
        for outcome in outcomes:
            slot.answered(outcome.seq)
            held = held_tasks.forget(outcome.seq)
            if held is None or held.lost:
                continue
            exec_s = outcome.exec_s
            self._pace.observe(exec_s)
            recorded = {"slot_started_at": datetime.fromtimestamp(outcome.slot_started_at, UTC).isoformat(),
                        "exec_s": exec_s}
            task = held.task
            if held.cancel:
                self._out.cancels.append(held.token)
            elif outcome.ok:
                self._out.completions.append(q.Completion(id=task.id, attempt=task.attempt,
                                                      result=msgspec.Raw(outcome.body), timings=recorded))
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("task completed", extra={**held.log_extra(), "duration_s": exec_s})
            else:
                self._fail(held, _decode_error(outcome.body), recorded)

    def on_skipped(self, slot: SlotHandle, seqs: list[int]) -> None:
        """Hand back the tasks a stopping slot never started, untouched."""
        for seq in seqs:
            slot.answered(seq)
            held = self._held.forget(seq)
            if held is not None and not held.lost:
                (self._out.cancels if held.cancel else self._out.releases).append(held.token)

    def settle_dead_slot(self, slot: SlotHandle) -> bool:
        """Give an outcome to the task a dead slot was running and requeue the ones it never started.

        Call it once the slot has exited and its last messages were read. Returns whether the slot held any task
        still ours.
        """
        running = slot.running()
        running_seq = running[0] if running is not None else None
        reason = slot.kill_reason
        requeue: list[Held] = []
        ran_something = False
        for seq in list(slot.inflight):
            held = self._held.forget(seq) if seq == running_seq else self._held.find(seq)
            if held is None:
                continue
            if seq != running_seq:
                # Never started (or finished without its result reaching us): run it again here.
                if held.lost:
                    self._held.forget(seq)
                else:
                    requeue.append(held)
                continue
            ran_something = True
            if held.lost:
                continue
            if held.cancel or reason == "cancel":
                self._out.cancels.append(held.token)
            elif reason == "shutdown":
                self._out.releases.append(held.token)
            elif reason == "timeout":
                limit = held.timeout_s(self._settings.default_timeout_s)
                self._fail(held, {"type": "TaskTimeout", "message": f"task ran past its {limit:g} s timeout",
                                  "retryable": True}, None)
            else:
                self._fail(held, {"type": "SlotCrashed", "message":
                                  f"the slot process running the task died (exit code {slot.proc.exitcode})",
                                  "retryable": True}, None)
        slot.inflight.clear()
        self._held.requeue(requeue)
        return ran_something or bool(requeue)

    def hand_back_ready(self) -> None:
        """Hand back every task still waiting for a slot (the worker is stopping)."""
        for held in self._held.drain_ready():
            self._out.releases.append(held.token)

    def hand_back_all(self) -> None:
        """Hand back every task still held (the grace period is over)."""
        for held in self._held.all():
            self._held.forget(held.seq)
            if not held.lost:
                self._out.releases.append(held.token)

    def _fail(self, held: Held, error: dict[str, Any], timings: dict[str, Any] | None) -> None:
        task = held.task
        retry = None
        if error.get("retryable") and task.attempt < task.max_attempts:
            retry = backoff_s(task.attempt, base_s=self._settings.retry_base_s, cap_s=self._settings.retry_cap_s)
        self._out.failures.append(q.Failure(id=task.id, attempt=task.attempt, error=error, retry_delay_s=retry,
                                        timings=timings))
        log.warning("task failed", extra={**held.log_extra(), "error": error.get("message"),
                                          "duration_s": (timings or {}).get("exec_s")})

    def start_writer(self, connect: Callable[[], psycopg.Connection[Any]], wake: Callable[[], None]) -> None:
        """Write batches from now on behind the loop, on a session `connect` opens; `wake` rouses the loop."""
        self._writer = OutcomeWriter(connect, lambda conn, batch: batch.write(conn, self._worker_id), wake)

    def write_behind(self, now: float) -> None:
        """Take back a batch the writer failed to write (raising its error), or hand it the due outcomes."""
        writer = self._writer
        if writer is None:
            raise RuntimeError("write_behind before start_writer")
        if (exc := self._take_back()) is not None:
            raise exc
        flush_at = self.flush_at(now)
        if flush_at is not None and flush_at <= now:
            self._out, batch = Outcomes(), self._out
            self._oldest = None
            writer.submit(batch)

    def flush(self, conn: psycopg.Connection[Any]) -> None:
        """Write every buffered outcome now on `conn`, after the writer's batch in hand (stopping, shutting down)."""
        if self._writer is not None:
            self._writer.wait()
            exc = self._take_back()
            if exc is not None and not isinstance(exc, DatabaseUnavailableError):
                raise exc  # a bug, not a lost database: writing again here would hide it
        self._out.write(conn, self._worker_id)
        self._oldest = None

    def _take_back(self) -> Exception | None:
        """Put a batch the writer failed to write back in front of what was recorded since; why it failed."""
        if self._writer is None or (failed := self._writer.collect()) is None:
            return None
        batch, exc = failed
        batch.extend(self._out)
        self._out = batch
        return exc

    def close(self) -> None:
        """Stop the writer (after its batch in hand) and close its session."""
        if self._writer is not None:
            self._writer.close()


@dataclass(slots=True)
class Outcomes:
    """Outcomes waiting to be written, one list per statement."""

    completions: list[q.Completion] = field(default_factory=list)
    failures: list[q.Failure] = field(default_factory=list)
    cancels: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    releases: list[tuple[uuid.UUID, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.completions) + len(self.failures) + len(self.cancels) + len(self.releases)

    def extend(self, later: Outcomes) -> None:
        """Append outcomes recorded after these."""
        self.completions += later.completions
        self.failures += later.failures
        self.cancels += later.cancels
        self.releases += later.releases

    def write(self, conn: psycopg.Connection[Any], worker_id: uuid.UUID) -> None:
        """One fenced statement per kind of outcome; each list is emptied once written, so a failure part way
        leaves exactly what was not."""
        if self.completions:
            q.complete_many(conn, worker_id=worker_id, done=self.completions)
            self.completions = []
        if self.failures:
            q.fail_many(conn, worker_id=worker_id, failed=self.failures)
            self.failures = []
        if self.cancels:
            q.finish_cancelled_many(conn, worker_id=worker_id, held=self.cancels)
            self.cancels = []
        if self.releases:
            q.release_many(conn, worker_id=worker_id, held=self.releases, note="worker stopped before running it")
            self.releases = []
