"""What the web dashboard reads besides the API's own answers: throughput, wait and run-time histograms, failures
grouped by cause, a task's stored circuit. Structs like the wire types, so an endpoint may serve them as they are."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from msgspec import Struct


class ThroughputMinute(Struct, kw_only=True, frozen=True):
    """Tasks that ended in one minute, by outcome."""

    minute: datetime
    completed: int
    failed: int
    cancelled: int


class DurationHistogram(Struct, kw_only=True, frozen=True):
    """Tasks per bucket of a duration: bucket i holds durations below `edges_s[i]` (and at or above the edge
    before it); the last bucket, one more than the edges, what lies beyond the last edge."""

    edges_s: list[float]
    tasks: list[int]


class Durations(Struct, kw_only=True, frozen=True):
    """Queue wait (created to started) and run time (started to finished) of the tasks that ended in the last
    hour."""

    wait: DurationHistogram
    run: DurationHistogram


class FailureGroup(Struct, kw_only=True, frozen=True):
    """Failed tasks sharing an error code and message."""

    code: str
    message: str
    tasks: int
    newest_at: datetime | None
    #: The newest few tasks of the group, newest first.
    newest_ids: list[uuid.UUID]


class TaskSource(Struct, kw_only=True, frozen=True):
    """What a task was asked to run: the circuit (None for kinds without one) and the kind's other options."""

    circuit_format: str | None
    circuit_source: str | None
    options: dict[str, Any]
