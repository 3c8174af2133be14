"""The supervisor's handle on its slot processes: start, feed, watch and kill them.

Slots are started from the process's forkserver (`qqueue.forkserver`), which has already imported the execution
code, so a replacement slot starts in milliseconds and never inherits the supervisor's database sockets (a forked
copy of a libpq connection that is closed in the child would break the parent's). No slot outlives a killed
supervisor (`qqueue.forkserver.detach`).
"""

from __future__ import annotations

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

    def running(self) -> tuple[int, float] | None:
        """(sequence number, monotonic start) of the task running now, or None between tasks."""
        since = self.state[slot_mod.RUNNING_SINCE]
        if since == 0.0:
            return None
        return int(self.state[slot_mod.RUNNING_SEQ]), since

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
