"""Leases: renewing every lease this worker holds, acting on cancel requests and lost leases, and per-task
timeouts.

All leases are renewed in one fenced statement every third of a lease, with the worker's heartbeat. The answer
says which leases are still ours and which of them have a cancel request; a lease that is not ours any more was
reclaimed by another worker, so its task here is abandoned (killed if running) and whatever it returns dropped.
A cancel request arrives on NOTIFY at once, and through the renewal as the backstop.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import psycopg

from qqueue.config import Settings
from qqueue.store import db
from qqueue.store import queue as q
from qqueue.worker.completer import Completer
from qqueue.worker.held import Held, HeldTasks
from qqueue.worker.slots import Slots

__all__ = ["Leases"]

log = logging.getLogger("qqueue.worker")

#: How soon to look again at a slot that was sent tasks but has not started one, so that its timeout clock,
#: which starts with the task, never goes unwatched.
START_CHECK_S = 0.05


class Leases:
    """Keeps the held tasks' leases, and stops tasks that were cancelled, lost, or ran past their timeout."""

    def __init__(self, settings: Settings, worker_id: uuid.UUID, held: HeldTasks, slots: Slots,
                 completer: Completer) -> None:
        self._settings = settings
        self._worker_id = worker_id
        self._held = held
        self._slots = slots
        self._completer = completer
        self._interval_s = settings.lease_s / 3
        #: Monotonic time of the next renewal.
        self.next_renew = time.monotonic() + self._interval_s

    def renew(self, conn: psycopg.Connection[Any]) -> None:
        """Heartbeat, and renew every lease held; cancel the tasks asked to stop, abandon the leases lost."""
        db.run(conn, "worker_heartbeat", id=self._worker_id)
        held = self._held.all()
        status = q.renew_leases(conn, worker_id=self._worker_id, held=[h.token for h in held],
                                lease_s=self._settings.lease_s)
        self.next_renew = time.monotonic() + self._interval_s
        for h in held:
            if h.task.id not in status:
                log.warning("lease lost; another worker owns the task now", extra=h.log_extra())
                self._lose(h)
            elif status[h.task.id]:
                self.cancel(h)

    def on_cancel_request(self, payload: str) -> None:
        """A NOTIFY asked to cancel the task whose id is `payload`: cancel it if it is ours."""
        try:
            held = self._held.get(uuid.UUID(payload))
        except ValueError:
            return
        if held is not None:
            self.cancel(held)

    def cancel(self, held: Held) -> None:
        """Stop a held task on a cancel request: at once if not started or running now, else when its turn comes."""
        log.info("cancelling running task on request", extra=held.log_extra())
        if held.slot is None:  # not handed to a slot yet
            self._held.withdraw(held)
            self._completer.cancelled(held)
            return
        held.cancel = True
        if held.slot.is_running(held.seq):
            held.slot.kill("cancel")

    def _lose(self, held: Held) -> None:
        # Out of the ready queue, or its slot killed if it is running it now; `lost` makes the completer drop
        # whatever a slot still returns for it.
        held.lost = True
        if held.slot is None:
            self._held.withdraw(held)
            return
        if held.slot.is_running(held.seq):
            held.slot.kill("lost")

    def _timeout_of(self, seq: int) -> float:
        held = self._held.find(seq)
        default_s = self._settings.default_timeout_s
        return default_s if held is None else held.timeout_s(default_s)

    def check_timeouts(self, now: float) -> None:
        """Kill each slot whose running task has run past its timeout."""
        for slot in self._slots:
            running = slot.running()
            if running is None or slot.kill_reason is not None:
                continue
            seq, since = running
            if now - since > self._timeout_of(seq):
                slot.kill("timeout")

    def next_deadline(self, now: float) -> float:
        """The monotonic time by which this service next has something to do: a renewal or a timeout."""
        deadline = self.next_renew
        for slot in self._slots:
            running = slot.running()
            if running is not None:
                deadline = min(deadline, running[1] + self._timeout_of(running[0]))
            elif slot.inflight:
                deadline = min(deadline, now + START_CHECK_S)
        return deadline
