"""Maintenance of the whole queue, which any worker does for all: reclaiming expired leases, purging finished
rows past the retention, and vacuuming after a purge where autovacuum is off.

Reclaiming is what makes a worker killed with SIGKILL (or a lost machine) cost seconds, not hours: its leases
lapse and the next worker to look puts the tasks back to 'pending', or ends them when attempts ran out.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import psycopg

from qqueue.config import Settings
from qqueue.store import db
from qqueue.store import queue as q

__all__ = ["PURGE_BATCH", "PURGE_INTERVAL_S", "Maintenance"]

log = logging.getLogger("qqueue.worker")

#: Rows one purge statement deletes at most.
PURGE_BATCH = 5000
PURGE_INTERVAL_S = 60.0


class Maintenance:
    """Reclaims expired leases and, with a retention, purges finished tasks; each on its own timer."""

    def __init__(self, settings: Settings, worker_id: uuid.UUID) -> None:
        self._settings = settings
        self._worker_id = worker_id
        now = time.monotonic()
        #: Monotonic time of the next reclaim.
        self.next_reclaim = now
        self._next_purge = now
        self._purged_since_vacuum = 0
        #: Whether the server's autovacuum runs; without it a purging worker vacuums itself.
        self.autovacuum_on = True

    def check_autovacuum(self, conn: psycopg.Connection[Any]) -> None:
        """Learn whether autovacuum runs (once, at start), and warn when it does not."""
        self.autovacuum_on = db.run(conn, "maintenance_autovacuum_on")["enabled"]
        if not self.autovacuum_on:
            log.warning("autovacuum is off: dead rows of the queue tables are only reclaimed by workers that "
                        "purge (--retention), which then vacuum after each purge",
                        extra={"worker_id": str(self._worker_id)})

    def run(self, conn: psycopg.Connection[Any], now: float) -> bool:
        """Do whatever is due; returns whether tasks were reclaimed (so some may be due to claim now)."""
        reclaimed = False
        if now >= self.next_reclaim:
            reclaimed = self._reclaim(conn, now)
        if self._settings.retention_s is not None and now >= self._next_purge:
            self.purge(conn, now)
        return reclaimed

    def _reclaim(self, conn: psycopg.Connection[Any], now: float) -> bool:
        reclaimed = q.reclaim_expired(conn)
        if reclaimed:
            log.warning("reclaimed tasks with expired leases", extra={"count": len(reclaimed)})
        self.next_reclaim = now + max(1.0, self._settings.lease_s / 2)
        return bool(reclaimed)

    def purge(self, conn: psycopg.Connection[Any], now: float) -> None:
        """Delete one bounded batch of finished tasks past the retention, and vacuum once a backlog is gone."""
        # One bounded batch per pass keeps the loop responsive; a backlog is worked off over several passes.
        retention_s = self._settings.retention_s
        assert retention_s is not None  # only called with a retention
        purged = q.purge_batch(conn, older_than_s=retention_s, limit=PURGE_BATCH)
        self._next_purge = now + (1.0 if purged == PURGE_BATCH else PURGE_INTERVAL_S)
        self._purged_since_vacuum += purged
        if purged:
            log.info("purged finished tasks past retention", extra={"count": purged})
        if purged < PURGE_BATCH and self._purged_since_vacuum and not self.autovacuum_on:
            # Without autovacuum nothing would reuse the purged rows' space and the table would grow forever.
            db.run(conn, "maintenance_vacuum")
            self._purged_since_vacuum = 0
