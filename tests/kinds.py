"""Task kinds only the tests need, loaded by test workers with `--import tests.kinds`."""

from __future__ import annotations

import os
import signal
from typing import Any

from qqueue.execution.registry import kind


@kind("crash")
def crash(payload: dict[str, Any]) -> None:
    """Kill the slot process running it, as a segfaulting simulator would."""
    os.kill(os.getpid(), signal.SIGKILL)


@kind("echo")
def echo(payload: dict[str, Any]) -> dict[str, Any]:
    """Return the payload; proves results travel intact."""
    return payload
