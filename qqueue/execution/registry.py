"""The registry of task kinds: a name -> a function from payload to a JSON-ready result.

A kind function runs inside a worker slot process. It must be importable (slots import the modules that
register kinds at start) and must not touch the database. It returns anything msgspec can encode as JSON,
or raises `qqueue.errors.TaskFailure` to choose how the failure is retried.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from qqueue.errors import UnknownKindError

KindFn = Callable[[dict[str, Any]], Any]

_KINDS: dict[str, KindFn] = {}

#: Modules that register the kinds qqueue ships; imported by every slot.
BUILTIN_MODULES: tuple[str, ...] = ("qqueue.execution.builtin", "qqueue.execution.quantum",
                                     "qqueue.execution.primitives")


def kind(name: str) -> Callable[[KindFn], KindFn]:
    """Register the decorated function as the task kind `name`.

    Examples
    --------
    >>> @kind("echo")
    ... def echo(payload): return payload
    """

    def register(fn: KindFn) -> KindFn:
        _KINDS[name] = fn
        return fn

    return register


def get(name: str) -> KindFn:
    """Return the function registered for `name`, or raise `UnknownKindError`."""
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownKindError(name) from None


def names() -> list[str]:
    """All registered kind names, sorted."""
    return sorted(_KINDS)


def load(extra_modules: Iterable[str] = ()) -> None:
    """Import the built-in kind modules and any user modules that register more kinds."""
    for module in (*BUILTIN_MODULES, *extra_modules):
        importlib.import_module(module)
