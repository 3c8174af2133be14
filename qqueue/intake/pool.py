"""Intake's parser processes: where every circuit is parsed and checked, under a memory ceiling and a deadline.

The pre-scan bounds what a program may expand to, but parsers are large and not every cost of theirs is
modelled; so parsing never happens in the process that serves requests, nor in a library caller's. It runs in a
small pool of disposable processes forked from the forkserver (`qqueue.forkserver`), each under an address-space
limit (RLIMIT_AS: its size at start plus `memory_bytes`) and a wall-clock deadline per submission. A parse that
passes either is stopped with its process, which is replaced, and the submission is refused (`too_complex`,
naming the limit) within the deadline. The caller only waits on a pipe: an event loop calling
`prepare_many_async` stays free for every other request meanwhile.

A batch is streamed through one process, a reply per item, so a hostile item costs only itself; the whole batch
shares a time budget, after which its remaining items are refused unchecked.
"""

from __future__ import annotations

import atexit
import logging
import queue
import signal
import threading
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from qqueue.errors import IntakeBusyError, IntakeError
from qqueue.intake import parser_process
from qqueue.intake.model import IntakeRequest, PreparedTask, check_size
from qqueue.intake.parser_process import ParserProcess

log = logging.getLogger("qqueue.intake")

Outcome = PreparedTask | IntakeError
#: A parser whose address space stays within `parser_process.CEILING_MARGIN_BYTES` of its ceiling this long is
#: stopped as out of memory: at the ceiling, a parse that catches its MemoryErrors (some parsers' error recovery
#: does) crawls on for as long as the deadline allows instead of failing.
CEILING_GRACE_S = 1.0
#: How often a waiting pool looks at its parser's address space.
CEILING_CHECK_S = 0.1


class ParserPool:
    """Up to `processes` parser processes, started on first use (or by `start`) and replaced when they die."""

    def __init__(self, *, processes: int = 2, memory_bytes: int = 2 * 1024**3, deadline_s: float = 10.0,
                 wait_s: float = 30.0, batch_budget_s: float = 60.0) -> None:
        if processes < 1 or memory_bytes < 64 * 1024**2 or deadline_s <= 0:
            raise ValueError("a parser pool needs at least one process, 64 MiB and a positive deadline")
        self.processes = processes
        self.memory_bytes = memory_bytes
        self.deadline_s = deadline_s
        #: How long a submission waits for a free parser before the caller is told to come back (503).
        self.wait_s = wait_s
        self.batch_budget_s = batch_budget_s
        self._idle: queue.SimpleQueue[ParserProcess] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._count = 0
        self._closed = False
        #: Parses stopped at a limit, by limit, since start (for logs and tests).
        self.stopped = {"time": 0, "memory": 0}

    def start(self) -> None:
        """Start every process now, so the first submissions do not wait for them; each is handed out as soon
        as it runs. A failure is logged: submissions then start processes themselves, and say why they cannot."""
        with self._lock:
            missing = self.processes - self._count
            self._count += missing
        started = 0
        try:
            for _ in range(missing):
                self._idle.put(ParserProcess(self.memory_bytes))
                started += 1
        except Exception as exc:
            log.error("cannot start intake's parser processes: %s", exc)
        finally:
            with self._lock:
                self._count -= missing - started

    def prepare(self, request: IntakeRequest) -> PreparedTask:
        """Intake for one submission; raises `IntakeError` (or `IntakeBusyError` when no parser frees up)."""
        [outcome] = self.prepare_many([request])
        if isinstance(outcome, IntakeError):
            raise outcome
        return outcome

    def prepare_many(self, requests: Sequence[IntakeRequest]) -> list[Outcome]:
        """Intake for each submission, in order: a `PreparedTask`, or the `IntakeError` refusing it."""
        checked: list[IntakeError | None] = []
        todo: list[IntakeRequest] = []
        for request in requests:
            try:
                check_size(request.qc, request.limits)  # an oversized source is not even sent over the pipe
            except IntakeError as exc:
                checked.append(exc)
            else:
                checked.append(None)
                todo.append(request)
        parsed = iter(self._parse_all(todo))
        return [refusal if refusal is not None else next(parsed) for refusal in checked]

    def _parse_all(self, requests: Sequence[IntakeRequest]) -> list[Outcome]:
        """Every request through the parser processes, in order, within the batch's time budget."""
        outcomes: list[Outcome | None] = [None] * len(requests)
        budget_end = time.monotonic() + max(self.batch_budget_s, self.deadline_s)
        index = 0
        stalls = 0
        while index < len(requests):
            if time.monotonic() > budget_end:
                refusal = IntakeError(f"not checked: the batch used up its intake time budget of "
                                      f"{self.batch_budget_s:g} s; submit fewer or smaller circuits per request",
                                      code="too_complex", details={"limit": "batch_time",
                                                                   "limit_s": self.batch_budget_s})
                outcomes[index:] = [refusal] * (len(requests) - index)
                break
            parser = self._acquire()
            done = self._stream(parser, requests, index, outcomes, budget_end)
            stalls = 0 if done > index else stalls + 1
            if stalls >= 3:  # new processes die before answering: nothing to do but say so
                log.error("intake parser processes die before answering")
                raise IntakeBusyError(retry_after_s=5.0)
            index = done
        assert all(o is not None for o in outcomes)
        return outcomes  # type: ignore[return-value]

    async def prepare_many_async(self, requests: Sequence[IntakeRequest]) -> list[Outcome]:
        """`prepare_many` on a worker thread: the event loop only awaits the parser processes' answers."""
        import anyio.to_thread

        return await anyio.to_thread.run_sync(partial(self.prepare_many, list(requests)))

    def close(self) -> None:
        """Stop every idle process; busy ones stop when they are handed back."""
        self._closed = True
        while True:
            try:
                parser = self._idle.get_nowait()
            except queue.Empty:
                return
            parser.close()

    # -- internals ---------------------------------------------------------------------------------------------

    def _acquire(self) -> ParserProcess:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            create = self._count < self.processes
            if create:
                self._count += 1
        if create:
            try:
                return ParserProcess(self.memory_bytes)
            except BaseException:
                with self._lock:
                    self._count -= 1
                raise
        try:
            return self._idle.get(timeout=self.wait_s)
        except queue.Empty:
            raise IntakeBusyError(retry_after_s=1.0) from None

    def _release(self, parser: ParserProcess, *, keep: bool) -> None:
        if keep and not self._closed and parser.alive():
            self._idle.put(parser)
            return
        parser.close()
        with self._lock:
            self._count -= 1

    def _stream(self, parser: ParserProcess, requests: Sequence[IntakeRequest], start: int,
                outcomes: list[Outcome | None], budget_end: float) -> int:
        """Send requests[start:] to `parser`, collect replies until one is stopped; the next index to do."""
        try:
            parser.conn.send(list(requests[start:]))
        except (OSError, ValueError):  # it died while idle: another will do
            self._release(parser, keep=False)
            return start
        index, retire = start, False
        try:
            while index < len(requests):
                wait = min(self.deadline_s, max(0.0, budget_end - time.monotonic()))
                answered = self._await_answer(parser, wait)
                if answered is None:
                    outcomes[index] = self._memory_refusal(parser.proc.pid)
                    parser.kill()
                    return index + 1
                if not answered:
                    if time.monotonic() >= budget_end and wait < self.deadline_s:
                        parser.kill()
                        return index  # the budget, not this item, ran out: refused by the caller's loop
                    parser.kill()
                    self.stopped["time"] += 1
                    outcomes[index] = IntakeError(
                        f"checking the circuit took longer than {self.deadline_s:g} s, the limit, and was stopped; "
                        "simplify it (fewer gate definitions, loops or operations)", code="too_complex",
                        details={"limit": "time", "limit_s": self.deadline_s})
                    log.warning("intake parse stopped at its deadline", extra={"limit_s": self.deadline_s})
                    return index + 1
                try:
                    ok, value, retire = parser.conn.recv()
                except (EOFError, OSError):
                    outcomes[index] = self._died(parser)
                    return index + 1
                outcomes[index] = value if ok else _error(value)
                index += 1
                if retire:
                    return index  # it exits after this answer: the rest goes to a fresh process
        finally:
            self._release(parser, keep=not retire and parser.alive())
        return index


    @staticmethod
    def _await_answer(parser: ParserProcess, wait_s: float) -> bool | None:
        """Wait up to `wait_s` for the parser's answer: True once it is there, False at the end of the wait, None
        when the parser has stayed at its memory ceiling for `CEILING_GRACE_S`."""
        end = time.monotonic() + wait_s
        pressed_since: float | None = None
        while True:
            now = time.monotonic()
            if parser.conn.poll(max(0.0, min(end - now, CEILING_CHECK_S))):
                return True
            now = time.monotonic()
            if now >= end:
                return False
            if parser.at_ceiling():
                pressed_since = now if pressed_since is None else pressed_since
                if now - pressed_since >= CEILING_GRACE_S:
                    return None
            else:
                pressed_since = None

    def _memory_refusal(self, pid: int | None, exitcode: int | None = None) -> IntakeError:
        self.stopped["memory"] += 1
        log.warning("intake parse stopped at its memory ceiling",
                    extra={"limit_bytes": self.memory_bytes, "exitcode": exitcode, "pid": pid})
        return IntakeError("checking the circuit needed more memory than intake allows "
                           f"({self.memory_bytes // 2**20} MiB) and was stopped; simplify it", code="too_complex",
                           details={"limit": "memory", "limit_bytes": self.memory_bytes})

    def _died(self, parser: ParserProcess) -> IntakeError:
        """Why a parser process died mid-parse: out of memory (a MemoryError, or a native parser aborting on a
        failed allocation), out of stack, or a crash of its own."""
        parser.proc.join(5)
        code = parser.proc.exitcode
        parser.kill()
        if code in (parser_process.MEMORY_EXIT, -signal.SIGABRT):
            return self._memory_refusal(parser.proc.pid, code)
        log.error("intake parser process died while checking a circuit", extra={"exitcode": code})
        if code == -signal.SIGSEGV:
            return IntakeError("the parser ran out of stack on this circuit (nesting too deep?); simplify it",
                               code="too_complex", details={"limit": "stack"})
        return IntakeError(f"the parser process failed on this circuit (exit code {code}); it was replaced",
                           code="unprocessable", details={"exitcode": code})


def _error(fields: dict[str, Any]) -> IntakeError:
    return IntakeError(fields["message"], code=fields["code"], line=fields.get("line"), column=fields.get("column"),
                       details=fields.get("details"))


_default: ParserPool | None = None
_default_lock = threading.Lock()


def default_pool() -> ParserPool:
    """The process-wide pool `qqueue.intake.prepare` uses: one process, started on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ParserPool(processes=1)
            atexit.register(_default.close)
        return _default
