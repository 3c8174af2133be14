"""Kinds that ship for tests, benchmarks and smoke checks: `noop`, `sleep`, `fail`."""

from __future__ import annotations

import time
from typing import Any

from qqueue.errors import TaskFailure
from qqueue.execution.registry import kind


@kind("noop")
def noop(payload: dict[str, Any]) -> None:
    """Do nothing; measures the queue's own overhead."""
    return None


@kind("sleep")
def sleep(payload: dict[str, Any]) -> dict[str, float]:
    """Sleep `payload["seconds"]` (default 1) and report it; stands in for a long circuit."""
    seconds = float(payload.get("seconds", 1.0))
    time.sleep(seconds)
    return {"slept_s": seconds}


@kind("fail")
def fail(payload: dict[str, Any]) -> None:
    """Always fail, retryably unless `payload["retryable"]` is false; exercises the retry path."""
    raise TaskFailure(str(payload.get("message", "asked to fail")), retryable=bool(payload.get("retryable", True)))
