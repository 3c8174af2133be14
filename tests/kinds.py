"""Task kinds only the tests need, loaded by test workers with `--import tests.kinds`."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from qqueue.execution.registry import kind


@kind("crash")
def crash(payload: dict[str, Any]) -> None:
    """Kill the slot process running it, as a segfaulting simulator would."""
    os.kill(os.getpid(), signal.SIGKILL)


@kind("marked_sleep")
def marked_sleep(payload: dict[str, Any]) -> dict[str, float]:
    """Leave a file in `payload["dir"]` the moment it starts, then sleep: a test can tell a task that is
    really running in a slot from one that is only claimed."""
    (Path(payload["dir"]) / f"{os.getpid()}-{time.monotonic_ns()}").touch()
    time.sleep(float(payload["seconds"]))
    return {"slept_s": float(payload["seconds"])}


@kind("echo")
def echo(payload: dict[str, Any]) -> dict[str, Any]:
    """Return the payload; proves results travel intact."""
    return payload


@kind("allocate")
def allocate(payload: dict[str, Any]) -> dict[str, int]:
    """Allocate and touch `payload["bytes"]` bytes: a task that outgrows what intake charged it
    (`payload["memory_bytes"]`)."""
    block = bytearray(int(payload["bytes"]))
    block[:: 4096] = b"\x01" * len(block[:: 4096])
    return {"allocated": len(block)}
