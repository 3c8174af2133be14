"""The loop's two database sessions (queries, LISTEN) and the back-off between attempts to reopen them; and the
sessions of the outcome writer (always open) and of the webhook deliverer (open only while deliveries are due),
which each opens and owns.

`Link.current` is a `Connections` with both sessions open, or None while the database is unreachable: the loop
checks it once per pass and hands the open connection to each service, so no service ever holds a connection
that may be missing.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from qqueue.config import Settings
from qqueue.store import db

__all__ = ["Connections", "Link"]

log = logging.getLogger("qqueue.worker")

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 10.0


@dataclass(frozen=True, slots=True)
class Connections:
    """Both sessions, open."""

    #: Every query of the worker runs here (autocommit: each named query is its own transaction).
    query: psycopg.Connection[Any]
    #: LISTENs on the task and cancel channels (and the webhook channel, for the deliverer); nothing else runs on it.
    listen: psycopg.Connection[Any]

    def close(self) -> None:
        """Close both."""
        for conn in (self.query, self.listen):
            try:
                conn.close()
            except Exception:  # closing a broken connection may fail in any way; it is gone either way
                pass


class Link:
    """Opens the sessions, drops them when the database is lost, and says when to try again."""

    def __init__(self, url: str, settings: Settings, worker_id: uuid.UUID, *, listen_webhooks: bool = False) -> None:
        self._url = url
        self._settings = settings
        self._worker_id = worker_id
        self._listens = ("worker_listen", "webhook_listen") if listen_webhooks else ("worker_listen",)
        #: The open sessions; None while the database is unreachable.
        self.current: Connections | None = None
        #: Monotonic time of the next attempt to reconnect.
        self.reconnect_at = 0.0
        self._retry_s = FIRST_RETRY_S

    def connect(self) -> Connections:
        """Open both sessions and LISTEN. Raises `DatabaseUnavailableError`, holding nothing open, on failure."""
        query = self._open("qqueue-worker")
        try:
            listen = self._open("qqueue-worker-listen")
        except BaseException:
            query.close()
            raise
        opened = Connections(query=query, listen=listen)
        try:
            # A server lost between connecting and listening raises DatabaseUnavailableError, which the loop
            # reconnects from, like any other lost database.
            for statement in self._listens:
                db.run(listen, statement)
        except BaseException:
            opened.close()
            raise
        self.current = opened
        self._retry_s = FIRST_RETRY_S
        return opened

    def open_outcomes(self) -> psycopg.Connection[Any]:
        """A session for the outcome writer, which owns and closes it. Raises `DatabaseUnavailableError`."""
        return self._open("qqueue-worker-outcomes")

    def open_webhooks(self) -> psycopg.Connection[Any]:
        """A session for the webhook deliverer, which owns it and closes it when idle. Raises
        `DatabaseUnavailableError`."""
        return self._open("qqueue-worker-webhooks")

    def _open(self, application_name: str) -> psycopg.Connection[Any]:
        return db.connect(self._url, application_name=application_name,
                          statement_timeout_s=self._settings.statement_timeout_s,
                          idle_in_transaction_timeout_s=self._settings.idle_in_transaction_timeout_s,
                          generic_plans=True)

    def lost(self, exc: Exception) -> None:
        """The database went away: close what is left and schedule the next attempt, backing off to 10 s."""
        if self.current is not None:
            log.warning("database connection lost; reconnecting", extra={"worker_id": str(self._worker_id),
                                                                         "error": str(exc)})
            self.current.close()
            self.current = None
        self.reconnect_at = time.monotonic() + self._retry_s
        self._retry_s = min(self._retry_s * 2, MAX_RETRY_S)

    def close(self) -> None:
        """Close the sessions, if open."""
        if self.current is not None:
            self.current.close()
            self.current = None
