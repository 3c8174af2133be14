"""The reads behind GET /metrics: the roll-up step that keeps a scrape's cost flat, and one snapshot of every
figure the metrics show, as typed values (`MetricsSnapshot`).

Counters and histograms are totals kept in the database (sql/migrations/0014_metric_totals.sql), so every API
process answers the same figures and they survive restarts and purges. The API runs `roll_up` before reading
the snapshot; the same reads serve any other caller (a CLI, a test) through `reads.fetch`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from qqueue.store.reads import Read

__all__ = [
    "FinishedCount",
    "GoneCount",
    "HistogramCell",
    "MetricsSnapshot",
    "RollUp",
    "UnfinishedCount",
    "roll_up",
    "roll_up_lag_s",
    "snapshot",
]

#: Tasks one roll-up step folds at most (about a second of database time on a small, busy machine).
ROLL_UP_ROWS = 50_000


def roll_up_lag_s(statement_timeout_s: float) -> float:
    """How far behind now() the roll-up mark stays. A task's finished_at is its statement's start, so a row may
    commit up to a statement timeout after it: twice that (at least a minute) and no finishing row is missed."""
    return max(60.0, 2 * statement_timeout_s)


class RollUp(msgspec.Struct, kw_only=True, frozen=True):
    """One roll-up step: how many finished tasks it folded into the totals, and the mark it left (None while
    nothing was ever rolled up)."""

    folded: int
    mark: datetime | None


def roll_up(lag_s: float, max_rows: int = ROLL_UP_ROWS) -> Read[RollUp]:
    """Fold tasks finished before now() - `lag_s` into the totals, at most about `max_rows`; a no-op while
    another process is doing it."""
    return Read("metrics_roll_up", {"lag_s": lag_s, "max_rows": max_rows}, lambda row: RollUp(**row))


class FinishedCount(msgspec.Struct, kw_only=True, frozen=True):
    """Tasks of a queue and kind that ended so (ever: rolled up, deleted or still stored); one per series."""

    queue: str
    kind: str
    status: Literal["completed", "failed", "cancelled"]
    #: The failure's `type` for failed tasks; "" for the others.
    error_type: str
    tasks: int


class GoneCount(msgspec.Struct, kw_only=True, frozen=True):
    """Finished tasks of a queue that are no longer stored (purged, deleted, or made unfinished again)."""

    queue: str
    status: Literal["completed", "failed", "cancelled"]
    tasks: int


class HistogramCell(msgspec.Struct, kw_only=True, frozen=True):
    """One bucket of a histogram series (not cumulative): observations at most `le` seconds and above the bound
    below; one per series and bound."""

    metric: Literal["queue_wait", "run_time"]
    queue: str
    kind: str
    #: The bucket's upper bound in seconds; None for +Inf.
    le: float | None
    observations: int
    seconds: float


class UnfinishedCount(msgspec.Struct, kw_only=True, frozen=True):
    """Pending or running tasks of a queue; for pending ones, how many are due and the oldest due age."""

    queue: str
    status: Literal["pending", "running"]
    tasks: int
    due: int
    oldest_due_age_s: float | None


class MetricsSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """Every figure of a scrape, read in one statement (one snapshot of the database)."""

    finished: list[FinishedCount]
    gone: list[GoneCount]
    histograms: list[HistogramCell]
    unfinished: list[UnfinishedCount]
    live_workers: int
    #: The histograms' bucket bounds in seconds, ascending (+Inf implied).
    buckets: list[float]


def snapshot(since: datetime | None) -> Read[MetricsSnapshot]:
    """Every figure of a scrape. `since` is a roll-up mark the caller saw (`RollUp.mark`), or None: it only helps
    the planner, the snapshot's own mark decides which rows are added to the totals."""

    def shape(row: dict[str, Any]) -> MetricsSnapshot:
        return MetricsSnapshot(
            finished=msgspec.json.decode(row["finished_json"], type=list[FinishedCount]),
            gone=msgspec.json.decode(row["gone_json"], type=list[GoneCount]),
            histograms=msgspec.json.decode(row["histograms_json"], type=list[HistogramCell]),
            unfinished=msgspec.json.decode(row["unfinished_json"], type=list[UnfinishedCount]),
            live_workers=row["live_workers"], buckets=list(row["buckets"]))

    return Read("metrics_scrape", {"since": since}, shape)
