"""The one forkserver of a process, for every child qqueue starts to compute in: worker slots and intake's parser
processes.

Children come from a forkserver that has already imported Qiskit, Aer and the execution code, so a replacement
starts in milliseconds, and never from the calling process itself: a forked copy of a process that holds libpq
connections, an event loop or threads is unsafe, and closing a connection in the copy breaks the parent's.
A forkserver's preload list is fixed when it starts: the first caller's list is the process's (a worker preloads
what slots run, an API what its parser processes run), and a child that needs more imports it itself.

No child outlives the process it works for, even one killed with SIGKILL: the forkserver exits when that
process's end of its "alive" pipe closes, and each child asks Linux to kill it when its parent, the forkserver,
goes (`detach`).
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import multiprocessing.process
import os
import signal
import sys
import threading
from collections.abc import Sequence

_context: multiprocessing.context.ForkServerContext | None = None
_start_lock = threading.Lock()


def context(preload: Sequence[str]) -> multiprocessing.context.ForkServerContext:
    """The forkserver context; `preload` (modules its children run) counts if this is the first call."""
    global _context
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(preload))
        _context = ctx
    return _context


def start(process: multiprocessing.process.BaseProcess) -> None:
    """`process.start()`, without the child running the caller's main script again.

    multiprocessing re-imports the parent's `__main__` file in every forkserver child so that functions defined
    there can be unpickled; a script that calls `qqueue.intake.prepare` at top level, unguarded by
    `if __name__ == "__main__"`, would then start processes from inside its own children. Children here run only
    qqueue's functions, so the main module is announced as one multiprocessing knows to skip."""
    main = sys.modules.get("__main__")
    with _start_lock:
        saved = getattr(main, "__spec__", None)
        if main is not None:
            main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
        try:
            process.start()
        finally:
            if main is not None:
                main.__spec__ = saved


def detach(sig: int = signal.SIGKILL) -> None:
    """A child's first call: die with the forkserver, and do not keep the forkserver alive.

    The forkserver hands every child a copy of the write end of its "alive" pipe and exits only once all copies
    are closed; a child holding one would keep the forkserver alive after the process it works for was
    SIGKILLed, and so (its parent-death signal waiting on the forkserver) itself, until its current work ended:
    possibly hours."""
    server = multiprocessing.forkserver._forkserver  # the module's private server
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
        # A child never starts processes from this forkserver; should code it runs ask for one, it gets its own.
        server._forkserver_alive_fd = None  # type: ignore[attr-defined]
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG
    except OSError:
        pass
