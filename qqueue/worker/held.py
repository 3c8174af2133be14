"""The tasks this worker holds a lease on: one owner for the map every service reads, and the ready queue of
those not yet handed to a slot.

A held task is known by two keys: its id (what NOTIFY and the database speak of) and its dispatch sequence
number (what slots speak of; a slot's shared memory can carry a number, not a UUID).
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from qqueue.tasks import ClaimedTask
from qqueue.worker.slots import SlotHandle

__all__ = ["Held", "HeldTasks"]


@dataclass(slots=True, eq=False)
class Held:
    """A task this worker holds a lease on."""

    task: ClaimedTask
    seq: int
    #: The slot it was handed to; None while it waits in the ready queue.
    slot: SlotHandle | None = None
    #: Cancel requested while it sat in a slot's queue: record 'cancelled', whatever it returns.
    cancel: bool = False
    #: Lease lost to another worker: drop whatever it returns.
    lost: bool = False

    @property
    def token(self) -> tuple[uuid.UUID, int]:
        """The fencing token of every write about this task."""
        return self.task.id, self.task.attempt

    def timeout_s(self, default_s: float) -> float:
        """How long it may run in a slot."""
        return default_s if self.task.timeout_s is None else self.task.timeout_s

    def log_extra(self) -> dict[str, Any]:
        """Context fields for log lines about this task."""
        return {"task_id": str(self.task.id), "correlation_id": self.task.correlation_id,
                "attempt": self.task.attempt, "kind": self.task.kind}


class HeldTasks:
    """Every held task, by id and by sequence number, and the ready queue (claimed, not yet in a slot).

    A task leaves the map when `forget` (or `withdraw`) is called: once its outcome is buffered, or once it is
    handed back. Forgetting does not take it out of the ready queue; only `take`, `withdraw` and `drain_ready` do.
    """

    def __init__(self) -> None:
        self._by_seq: dict[int, Held] = {}
        self._by_id: dict[uuid.UUID, Held] = {}
        self._ready: deque[Held] = deque()
        self._seq = 0

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def has_ready(self) -> bool:
        """Whether any task waits for a slot."""
        return bool(self._ready)

    def add(self, task: ClaimedTask) -> Held:
        """Hold a newly claimed task; it joins the end of the ready queue."""
        self._seq += 1
        held = Held(task=task, seq=self._seq)
        self._by_seq[held.seq] = held
        self._by_id[task.id] = held
        self._ready.append(held)
        return held

    def find(self, seq: int) -> Held | None:
        """The held task with this sequence number, if still held."""
        return self._by_seq.get(seq)

    def get(self, task_id: uuid.UUID) -> Held | None:
        """The held task with this id, if held."""
        return self._by_id.get(task_id)

    def all(self) -> list[Held]:
        """Every held task, oldest claim first (a copy: callers may forget tasks while they iterate)."""
        return list(self._by_id.values())

    def forget(self, seq: int) -> Held | None:
        """Stop holding the task with this sequence number; returns it, or None if it was not held."""
        held = self._by_seq.pop(seq, None)
        if held is not None:
            self._by_id.pop(held.task.id, None)
        return held

    def withdraw(self, held: Held) -> None:
        """Take a task that is not in a slot out of the ready queue, and stop holding it."""
        self._ready.remove(held)
        self.forget(held.seq)

    def take(self, count: int, slot: SlotHandle) -> list[Held]:
        """Up to `count` tasks from the front of the ready queue, now assigned to `slot`."""
        ready = self._ready
        taken: list[Held] = []
        while ready and len(taken) < count:
            held = ready.popleft()
            held.slot = slot
            taken.append(held)
        return taken

    def requeue(self, helds: Iterable[Held]) -> None:
        """Put tasks a slot never started back at the front of the ready queue, in their order."""
        helds = list(helds)
        for held in helds:
            held.slot = None
        self._ready.extendleft(reversed(helds))

    def drain_ready(self) -> list[Held]:
        """Empty the ready queue, forgetting every task in it; returns them in queue order."""
        drained: list[Held] = []
        while self._ready:
            held = self._ready.popleft()
            self.forget(held.seq)
            drained.append(held)
        return drained
