"""The one forkserver of a process, for every child qqueue starts to compute in: worker slots and intake's parser
processes.

Children come from a forkserver that has already imported Qiskit, Aer and the execution code, so a replacement
starts in milliseconds, and never from the calling process itself: a forked copy of a process that holds libpq
connections, an event loop or threads is unsafe, and closing a connection in the copy breaks the parent's.
A forkserver's preload list is fixed when it starts, so every user shares this one list.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import multiprocessing
import multiprocessing.context
import multiprocessing.process
import signal
import sys
import threading

from qqueue.execution.registry import BUILTIN_MODULES

PRELOAD = ("qqueue.worker.slot", "qqueue.intake.warm", *BUILTIN_MODULES)

_context: multiprocessing.context.ForkServerContext | None = None
_start_lock = threading.Lock()


def context() -> multiprocessing.context.ForkServerContext:
    """The forkserver context, preloaded with what slots and parser processes run."""
    global _context
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))
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


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send `sig` to this process when its parent goes away.

    A child's parent is the forkserver, which exits as soon as the process that started it does (its end of a
    pipe closes), so no child outlives the process it works for, even one killed with SIGKILL."""
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG
    except OSError:
        pass
