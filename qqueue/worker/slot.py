"""A slot: one process that only computes. It receives batches of tasks over a pipe (`qqueue.worker.protocol`),
runs each through the task-kind registry and sends outcomes back. It never touches the database, so a slot that
hangs, overruns its timeout or crashes can be killed without harming the supervisor's leases or connections.

Shared memory (`SlotState`) tells the supervisor, without a message per task, which task is running and since
when (for timeouts), and tells the slot to stop before its next task (for graceful shutdown).
"""

from __future__ import annotations

import logging
import os
import queue
import resource
import signal
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from qqueue import forkserver
from qqueue.errors import TaskFailure
from qqueue.execution import registry
from qqueue.worker import protocol
from qqueue.worker.protocol import Batch, Done, Outcome, Skipped, TaskToRun

log = logging.getLogger("qqueue.slot")

# Indexes into the shared double array of one slot.
RUNNING_SEQ = 0  #: dispatch sequence number of the running task
RUNNING_SINCE = 1  #: time.monotonic() when it started; 0.0 while between tasks
STOP = 2  #: set to 1.0 by the supervisor: start no further task
STATE_SIZE = 3

#: Results are sent when the batch ends or after this long, whichever is first, so long batches still
#: report progress while short tasks are not sent one message each.
FLUSH_AFTER_S = 0.005

_encode = msgspec.json.Encoder().encode
_decode_payload = msgspec.json.Decoder(dict[str, Any]).decode


def run_one(kind: str, payload: dict[str, Any]) -> tuple[bool, bytes]:
    """Run one task; (True, result JSON) or (False, error JSON). Never raises for a task's own failure."""
    try:
        ceiling = _limit_memory(payload)
        try:
            result = registry.get(kind)(payload)
        except MemoryError:
            raise TaskFailure(f"the task needed more memory than its ceiling of {ceiling // 2**20} MiB (what "
                              "intake charged it, plus headroom)", retryable=False, type="MemoryLimitExceeded") \
                from None
        body = _encode(result)
        if b"\\u0000" in body:
            # PostgreSQL's jsonb cannot hold U+0000; refusing it here keeps one bad result from failing the
            # whole batch of completions it would be written with.
            raise TaskFailure("the result contains a NUL character (\\u0000), which cannot be stored",
                              retryable=False, type="UnstorableResult")
        return True, body
    except TaskFailure as exc:
        error = {"type": exc.type, "message": exc.message, "retryable": exc.retryable}
    except (TypeError, msgspec.EncodeError) as exc:
        # A result that cannot be encoded is a bug in the kind: retrying would fail the same way.
        retryable = not isinstance(exc, msgspec.EncodeError)
        error = {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__, "retryable": retryable}
    except Exception as exc:  # a task's failure must never take the slot down
        error = {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__, "retryable": True}
    return False, _encode(error)


_limited = False


def _limit_memory(payload: dict[str, Any]) -> int:
    """Cap the slot's address space for a task that intake charged (its payload says `memory_bytes`) at the
    slot's size now plus that task's ceiling, so a task that outgrows its estimate fails alone instead of taking
    the machine; lift the cap for any other task. Returns the allowance in bytes (0: none)."""
    global _limited
    if "memory_bytes" not in payload:
        if _limited:
            resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            _limited = False
        return 0
    from qqueue.execution.quantum import memory_ceiling_bytes

    allowance = memory_ceiling_bytes(int(payload["memory_bytes"] or 0))
    with open("/proc/self/statm") as statm:
        size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (size + allowance, resource.RLIM_INFINITY))
    _limited = True
    return allowance


def slot_main(conn: Connection, state: Sequence[float], imports: Sequence[str]) -> None:
    """Entry point of a slot process: serve batches until told to stop or the pipe closes."""
    forkserver.detach()
    # Shutdown is the supervisor's decision: it forwards it through STOP and the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    registry.load(imports)
    inbox: queue.SimpleQueue[list[TaskToRun] | None] = queue.SimpleQueue()
    # Always drain the pipe, even mid-batch: otherwise a large batch sent by the supervisor and a large result
    # sent by this slot could each wait for the other to read, and both would block forever.
    threading.Thread(target=_receive, args=(conn, inbox), name="slot-inbox", daemon=True).start()
    while (tasks := inbox.get()) is not None:
        _run_batch(conn, state, tasks)


def _receive(conn: Connection, inbox: queue.SimpleQueue[list[TaskToRun] | None]) -> None:
    while True:
        try:
            message = protocol.receive_in_slot(conn)
        except (EOFError, OSError):
            message = None
        tasks = message.tasks if isinstance(message, Batch) else None
        inbox.put(tasks)
        if tasks is None:
            return


def _run_batch(conn: Connection, state: Any, tasks: list[TaskToRun]) -> None:
    out: list[Outcome] = []
    last_flush = time.monotonic()
    for index, task in enumerate(tasks):
        if state[STOP]:
            protocol.send_to_supervisor(conn, Done(out))
            protocol.send_to_supervisor(conn, Skipped([t.seq for t in tasks[index:]]))
            return
        started_wall = time.time()
        state[RUNNING_SEQ] = float(task.seq)
        started = time.monotonic()
        state[RUNNING_SINCE] = started
        ok, body = run_one(task.kind, _decode_payload(task.payload))
        finished = time.monotonic()
        state[RUNNING_SINCE] = 0.0
        out.append(Outcome(task.seq, ok, body, started_wall, finished - started))
        if finished - last_flush >= FLUSH_AFTER_S:
            protocol.send_to_supervisor(conn, Done(out))
            out, last_flush = [], finished
    protocol.send_to_supervisor(conn, Done(out))
