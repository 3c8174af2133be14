"""One parser process of intake's pool: its handle in the pool's process (`ParserProcess`), and what runs inside
it (`_parser_main`): an address-space ceiling set once at start, then intake (`qqueue.intake.pipeline`) on each
request the pipe brings, one answer each, until the pipe closes or the process retires.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import traceback
from multiprocessing.connection import Connection
from typing import Any

from qqueue import forkserver
from qqueue.errors import IntakeError
from qqueue.intake.model import IntakeRequest

log = logging.getLogger("qqueue.intake")

#: A parser process retires (and is replaced) once it has held this share of its memory ceiling: memory a
#: large parse leaves fragmented would otherwise shrink what every later parse may use.
RETIRE_AT_SHARE = 0.5
#: A parser process's exit status when it ran out of memory outside a parse's own error handling.
MEMORY_EXIT = 70
#: How close to its ceiling a parser's address space counts as at it (`ParserProcess.at_ceiling`).
CEILING_MARGIN_BYTES = 4 * 1024**2
#: What the parser processes' forkserver imports (and warms) once.
PRELOAD = ("qqueue.intake.warm",)


class ParserProcess:
    """One parser process and its pipe."""

    def __init__(self, memory_bytes: int) -> None:
        ctx = forkserver.context(PRELOAD)
        parent, child = ctx.Pipe(duplex=True)
        self.conn: Connection = parent
        self.proc = ctx.Process(target=_parser_main, args=(child, memory_bytes), name="qqueue-intake", daemon=True)
        forkserver.start(self.proc)
        child.close()
        self.killed = False
        #: Its address-space limit once read from /proc (the process sets it once, at start).
        self._ceiling: int | None = None

    def alive(self) -> bool:
        return not self.killed and self.proc.is_alive()

    def at_ceiling(self) -> bool:
        """Whether its address space is within `CEILING_MARGIN_BYTES` of its limit (read from /proc; False where
        that cannot be read)."""
        try:
            if self._ceiling is None:
                with open(f"/proc/{self.proc.pid}/limits") as limits:
                    soft = next(li for li in limits if li.startswith("Max address space")).split()[3]
                if not soft.isdigit():
                    return False  # not set yet (or not at all): read again next time
                self._ceiling = int(soft)
            with open(f"/proc/{self.proc.pid}/statm") as statm:
                size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, StopIteration, ValueError):
            return False
        return size >= self._ceiling - CEILING_MARGIN_BYTES

    def kill(self) -> None:
        self.killed = True
        if self.proc.is_alive():
            self.proc.kill()

    def close(self) -> None:
        self.kill()
        self.proc.join(5)
        self.conn.close()


def _parser_main(conn: Connection, memory_bytes: int) -> None:
    """A parser process: run intake on each request it is sent and answer each one, until the pipe closes."""
    try:
        _serve(conn, memory_bytes)
    except MemoryError:
        # Out of memory outside a parse (answering, or in the parser's own error handling): the pool reports the
        # ceiling and replaces this process. Exiting at once keeps a cascade of tracebacks out of the logs.
        os._exit(MEMORY_EXIT)


def _serve(conn: Connection, memory_bytes: int) -> None:
    from qqueue.intake import pipeline

    forkserver.detach()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _limit_address_space(memory_bytes)
    retire = False
    while not retire:
        try:
            batch: list[IntakeRequest] = conn.recv()
        except (EOFError, OSError):
            return
        for request in batch:
            ok, value = _run(pipeline.run, request, memory_bytes)
            used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            retire = used > memory_bytes * RETIRE_AT_SHARE or not ok and value.get("code") == "too_complex"
            try:
                conn.send((ok, value, retire))
            except (OSError, ValueError):
                return
            if retire:
                return  # its answers so far are sent; the pool replaces it


def _run(fn: Any, request: IntakeRequest, memory_bytes: int) -> tuple[bool, Any]:
    try:
        return True, fn(request)
    except IntakeError as exc:
        return False, exc.to_dict()
    except MemoryError:
        return False, IntakeError(f"checking the circuit needed more memory than intake allows "
                                  f"({memory_bytes // 2**20} MiB); simplify it", code="too_complex",
                                  details={"limit": "memory", "limit_bytes": memory_bytes}).to_dict()
    except RecursionError:
        return False, {"code": "nesting_too_deep", "message": "the program is nested too deeply to parse"}
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a parser failing in a way intake does not know (a native
        # parser's panic is a BaseException): refused, and logged for us
        log.error("intake failed unexpectedly: %s\n%s", exc, traceback.format_exc())
        return False, {"code": "unprocessable", "message": f"the circuit could not be checked "
                                                           f"({type(exc).__name__}: {exc})"[:2000]}


def _limit_address_space(extra_bytes: int) -> None:
    """Cap this process's address space at its size now plus `extra_bytes`."""
    try:
        with open("/proc/self/statm") as statm:
            size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return  # not Linux: the deadline still applies
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
