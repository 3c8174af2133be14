"""The supervisor's handles on its slot processes: start, feed, watch, kill and replace them.

Slots are started from the process's forkserver (`qqueue.forkserver`), which has already imported the execution
code, so a replacement slot starts in milliseconds and never inherits the supervisor's database sockets (a forked
copy of a libpq connection that is closed in the child would break the parent's). No slot outlives a killed
supervisor (`qqueue.forkserver.detach`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import RawArray
from typing import Any

from qqueue import forkserver
from qqueue.execution.registry import BUILTIN_MODULES
from qqueue.worker import protocol
from qqueue.worker import slot as slot_mod
from qqueue.worker.protocol import Batch, FromSlot, Stop, TaskToRun

log = logging.getLogger("qqueue.worker")

#: What the slots' forkserver imports once: the slot and the built-in kinds (Qiskit and Aer with them).
PRELOAD = ("qqueue.worker.slot", *BUILTIN_MODULES)


class SlotHandle:
    """One slot process as the supervisor sees it: its pipe, shared state and the tasks sent to it."""

    def __init__(self, index: int, imports: Sequence[str]) -> None:
        ctx = forkserver.context(PRELOAD)
        self.index = index
        self.state: Any = RawArray("d", slot_mod.STATE_SIZE)
        parent, child = ctx.Pipe(duplex=True)
        self.conn: Connection = parent
        self.proc = ctx.Process(
            target=slot_mod.slot_main, args=(child, self.state, list(imports)), name=f"qqueue-slot-{index}",
            daemon=True,
        )
        forkserver.start(self.proc)
        child.close()
        self.started = time.monotonic()
        #: Dispatch sequence numbers sent and not yet answered, in the order the slot will run them.
        self.inflight: deque[int] = deque()
        #: Why the supervisor killed it, if it did ("timeout", "cancel", "lost", "shutdown").
        self.kill_reason: str | None = None

    @property
    def pid(self) -> int | None:
        """The slot's process id."""
        return self.proc.pid

    def send(self, tasks: list[TaskToRun]) -> None:
        """Queue a batch on the slot; it runs them in order.

        A slot can die between the supervisor's last look and this send (a crashing task, the OOM killer).
        The batch then stays recorded as in flight: when the supervisor handles the death, it runs every
        task the slot never started elsewhere. Raising here instead would take the whole worker down.
        """
        self.inflight.extend(task.seq for task in tasks)
        try:
            protocol.send_to_slot(self.conn, Batch(tasks))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def receive(self) -> Iterator[FromSlot]:
        """The messages the slot has sent that are waiting in the pipe, without blocking."""
        try:
            while self.conn.poll():
                yield protocol.receive_from_slot(self.conn)
        except (EOFError, OSError):
            pass  # it died; its sentinel tells the supervisor

    def answered(self, seq: int) -> None:
        """The slot has answered for this task (run or skipped it): it is no longer in flight."""
        if self.inflight and self.inflight[0] == seq:
            self.inflight.popleft()
        elif seq in self.inflight:
            self.inflight.remove(seq)

    @property
    def usable(self) -> bool:
        """Whether it can take a batch now (not being killed, not dead)."""
        return self.kill_reason is None and self.proc.is_alive()

    def running(self) -> tuple[int, float] | None:
        """(sequence number, monotonic start) of the task running now, or None between tasks."""
        since = self.state[slot_mod.RUNNING_SINCE]
        if since == 0.0:
            return None
        return int(self.state[slot_mod.RUNNING_SEQ]), since

    def is_running(self, seq: int) -> bool:
        """Whether the task with this sequence number is the one running now."""
        running = self.running()
        return running is not None and running[0] == seq

    def request_stop(self) -> None:
        """Start no further task; unstarted ones come back as 'skipped'."""
        self.state[slot_mod.STOP] = 1.0

    def kill(self, reason: str) -> None:
        """SIGKILL the slot; the supervisor notices through its sentinel."""
        if self.kill_reason is None:
            self.kill_reason = reason
        if self.proc.is_alive():
            self.proc.kill()

    def close(self, timeout_s: float = 2.0) -> None:
        """Ask the slot to exit, then make sure it did."""
        try:
            protocol.send_to_slot(self.conn, Stop())
        except (OSError, ValueError):
            pass
        self.proc.join(timeout_s)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


class Slots:
    """The supervisor's slots, owned here so that starting, replacing and retiring them happen in one place.

    It also watches for a crash loop: slots that keep dying before they run anything mean a broken setup (an
    import that fails, a kind that kills its process at once), not bad luck.
    """

    def __init__(self, imports: Sequence[str]) -> None:
        self._imports = list(imports)
        self._handles: list[SlotHandle] = []
        #: Slots that died in a row, unasked, without having been given a task.
        self.crash_streak = 0

    def start(self, count: int) -> None:
        """Start `count` slots."""
        self._handles = [SlotHandle(i, self._imports) for i in range(count)]

    def __len__(self) -> int:
        return len(self._handles)

    def __iter__(self) -> Iterator[SlotHandle]:
        # A copy: handling one slot's death replaces or removes it while the caller iterates.
        return iter(list(self._handles))

    def by_load(self) -> list[SlotHandle]:
        """The slots, fewest tasks in flight first."""
        return sorted(self._handles, key=lambda s: len(s.inflight))

    def busy(self) -> list[SlotHandle]:
        """The slots with tasks in flight."""
        return [s for s in self._handles if s.inflight]

    def waitables(self) -> list[Any]:
        """What to select on: each slot's pipe (messages) and sentinel (exit)."""
        out: list[Any] = []
        for slot in self._handles:
            out += [slot.conn, slot.proc.sentinel]
        return out

    def ran(self) -> None:
        """A slot ran a task: whatever killed slots before, the setup works."""
        self.crash_streak = 0

    def retire(self, slot: SlotHandle, *, had_tasks: bool, replace: bool) -> None:
        """Account for a slot that exited (and was joined): log why, close its pipe, start a replacement if asked."""
        reason = slot.kill_reason
        if reason is None:
            log.error("slot died unexpectedly", extra={"slot": slot.index, "pid": slot.pid,
                                                       "error": f"exit code {slot.proc.exitcode}"})
            if not had_tasks:
                self.crash_streak += 1
        elif reason != "shutdown":
            log.warning("slot killed", extra={"slot": slot.index, "pid": slot.pid, "error": reason})
        slot.conn.close()
        index = self._handles.index(slot)
        if replace:
            self._handles[index] = SlotHandle(slot.index, self._imports)
        else:
            del self._handles[index]

    def request_stop(self) -> None:
        """Tell every slot to start no further task."""
        for slot in self._handles:
            slot.request_stop()

    def close(self) -> None:
        """Stop every slot and wait for it."""
        for slot in self._handles:
            slot.close()
        self._handles = []
