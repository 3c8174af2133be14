"""Claiming and dispatch: how many tasks to claim, claiming them, and handing them to slots in batches.

Sizing follows the work (`Pace`): one task per slot until tasks are known to be short, then batches that take
about `TARGET_BATCH_S` with a second one queued behind each, and a claim tops the slots up to that once there is
room for a batch per slot. It also decides when a claim is worth trying: after a NOTIFY, a reclaim, a reconnect,
a poll interval, or the moment the earliest future `run_at` comes due. Queue controls live in the claim
statement itself (a paused queue is not read, a limited one only up to its room); here they only shape the wait.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from qqueue.config import Settings
from qqueue.store import queue as q
from qqueue.worker.completer import Completer
from qqueue.worker.held import HeldTasks
from qqueue.worker.protocol import TaskToRun
from qqueue.worker.slots import Slots

__all__ = ["LIMITED_RECHECK_S", "TARGET_BATCH_S", "Dispatcher", "Pace"]

#: Aim for slot batches that take about this long, so short tasks share a pipe message
#: while long tasks are never held back behind each other.
TARGET_BATCH_S = 0.010

#: How often a worker with a due task in a limited queue (max_running) tries again to claim it.
LIMITED_RECHECK_S = 0.25


class Pace:
    """How long this worker's tasks take to run: a moving average of their execution times."""

    def __init__(self) -> None:
        #: None until a task has run here.
        self.avg_exec_s: float | None = None

    def observe(self, exec_s: float) -> None:
        """Fold in one task's execution time."""
        avg = self.avg_exec_s
        self.avg_exec_s = exec_s if avg is None else 0.9 * avg + 0.1 * exec_s

    def per_slot(self, slot_batch: int) -> int:
        """How many tasks to put in one slot batch (at most `slot_batch`)."""
        if self.avg_exec_s is None:
            # Nothing run yet, so nothing known of how long tasks take: one each, so that tasks which turn out
            # long (a job's parts) are left for other workers rather than queued behind this one's slots.
            return 1
        return max(1, min(slot_batch, int(TARGET_BATCH_S / max(self.avg_exec_s, 1e-6))))


def slot_capacity(per_slot: int) -> int:
    """How many tasks one slot may have in flight."""
    # Short tasks: keep a second batch queued in the pipe so the slot never waits on us.
    # Long tasks: one at a time, so other workers can take what this one cannot start.
    return 2 * per_slot if per_slot > 1 else 1


class Dispatcher:
    """Claims tasks into the held map and feeds the ready ones to the slots."""

    def __init__(self, settings: Settings, worker_id: uuid.UUID, held: HeldTasks, slots: Slots,
                 completer: Completer, pace: Pace) -> None:
        self._settings = settings
        self._worker_id = worker_id
        self._held = held
        self._slots = slots
        self._completer = completer
        self._pace = pace
        #: Something may be due: the next pass claims.
        self.maybe_due = True
        self._next_poll = time.monotonic() + settings.poll_interval_s
        #: When the earliest pending task we could not take becomes due (monotonic), if known.
        self._next_due_at: float | None = None

    def wake(self) -> None:
        """Something may have become due (a NOTIFY, a reclaim, a reconnect): claim on the next pass."""
        self.maybe_due = True

    def tick(self, now: float) -> None:
        """Wake at the poll interval, the backstop for lost notifications, and when a future task comes due."""
        if now >= self._next_poll or (self._next_due_at is not None and now >= self._next_due_at):
            self.maybe_due = True
            self._next_poll = now + self._settings.poll_interval_s
            self._next_due_at = None

    def next_deadline(self) -> float:
        """The monotonic time `tick` next has something to do."""
        if self._next_due_at is None:
            return self._next_poll
        return min(self._next_poll, self._next_due_at)

    def claim(self, conn: psycopg.Connection[Any]) -> None:
        """Claim as many due tasks as the slots have room for, if any may be due."""
        if not self.maybe_due:
            return
        settings = self._settings
        per_slot = self._pace.per_slot(settings.slot_batch)
        room = len(self._slots) * slot_capacity(per_slot) - len(self._held)
        # Short tasks: every slot holds a second batch, so a claim can wait until there is room for a batch per
        # slot and take that much in one statement. Long tasks: a slot free is a slot to fill now.
        if room < (len(self._slots) * per_slot if per_slot > 1 else 1):
            return
        limit = min(settings.claim_batch, room)
        claimed = q.claim(conn, worker_id=self._worker_id, queues=settings.queues, limit=limit,
                          lease_s=settings.lease_s)
        for task in claimed:
            if task.cached_from is not None:
                # Answered by the result cache: nothing to simulate.
                self._completer.cached(task)
            else:
                self._held.add(task)
        # Before the look-ahead below, which costs a round trip: what was claimed starts running meanwhile.
        self.dispatch()
        if len(claimed) < limit:
            self.maybe_due = False
            due = q.next_due(conn, settings.queues)
            now = datetime.now(UTC)
            delays: list[float] = []
            if due.unlimited is not None:
                # A due row we could not take is locked by another worker's claim in flight: look again soon.
                delays.append(max(0.05, (due.unlimited - now).total_seconds()))
            if due.limited is not None:
                # A limited queue gains room when one of its tasks ends, on any worker: nothing announces it,
                # so a worker with such a queue due looks again at a modest pace.
                delays.append(max(LIMITED_RECHECK_S, (due.limited - now).total_seconds()))
            if delays:
                self._next_due_at = time.monotonic() + min(delays)

    def dispatch(self) -> None:
        """Hand ready tasks to the least loaded slots that have room, one batch each."""
        held = self._held
        if not held.has_ready:
            return
        per_slot = self._pace.per_slot(self._settings.slot_batch)
        for slot in self._slots.by_load():
            if not held.has_ready:
                return
            if not slot.usable:
                continue
            if slot.inflight and (per_slot == 1 or len(slot.inflight) > per_slot):
                continue
            slot.send([TaskToRun(h.seq, h.task.kind, h.task.payload) for h in held.take(per_slot, slot)])
