"""Queue controls: pausing and resuming a queue, and capping how many of its tasks run at once.

The controls are rows of qqueue.queues, changed here through one named query that records each change in
qqueue.queue_events. They take effect in the claim statement itself (sql/queries/tasks.sql, `task_claim`), so
every worker obeys them from its next claim on, whatever machine it runs on.
"""

from __future__ import annotations

from typing import Any

import psycopg

from qqueue.api.schemas import QueueControls
from qqueue.store import db
from qqueue.store.reads import Read, fetch, fetch_async

__all__ = ["UNCHANGED", "Change", "apply", "apply_async", "change", "controls"]


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


#: `change(max_running=UNCHANGED)` leaves a queue's limit as it is (None removes it).
UNCHANGED: Any = _Unchanged()

Change = Read[QueueControls]


def change(queue: str, *, pause: bool | None = None, max_running: int | None = UNCHANGED,
           actor: str | None = None) -> Change:
    """The statement that pauses (`pause=True`), resumes (`pause=False`) or limits a queue; `actor` is who asked,
    for the queue's history. Run it with `apply` or `apply_async`."""
    set_limit = max_running is not UNCHANGED
    params = {"queue": queue, "pause": pause, "set_limit": set_limit,
              "max_running": max_running if set_limit else None, "actor": actor}
    return Read("queue_controls_set", params, lambda row: QueueControls(**row))


def apply(conn: psycopg.Connection[Any], statement: Change) -> QueueControls:
    """Run a `change` on a blocking connection (one statement, one transaction)."""
    return fetch(conn, statement)


async def apply_async(conn: psycopg.AsyncConnection[Any], statement: Change) -> QueueControls:
    """Run a `change` on an async connection, for the HTTP API."""
    return await fetch_async(conn, statement)


def controls(conn: psycopg.Connection[Any], queue: str) -> QueueControls | None:
    """A queue's controls, or None when none were ever set (it runs, unlimited)."""
    row = db.run(conn, "queue_controls_get", queue=queue)
    return QueueControls(**row) if row else None
