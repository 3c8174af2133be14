"""A worker's (re)connection against real PostgreSQL: losing the server half-way through connecting is a lost
database, which the worker's loop retries with backoff, never an unexpected error that ends the worker."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from qqueue.config import load_settings
from qqueue.errors import DatabaseUnavailableError
from qqueue.store import db
from qqueue.worker.supervisor import Supervisor
from tests.conftest import wait_until


def test_a_listen_session_lost_before_listen_is_a_lost_database(db_url, monkeypatch):
    real_connect = db.connect
    admin = db.connect(db_url)

    def connect_then_lose_listen_session(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
        conn = real_connect(url, **kwargs)
        if kwargs.get("application_name") == "qqueue-worker-listen":
            # As a restart or an operator would: the session ends after connecting, before LISTEN is sent.
            pid = conn.info.backend_pid
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            wait_until(lambda: not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone())
        return conn

    monkeypatch.setattr(db, "connect", connect_then_lose_listen_session)
    supervisor = Supervisor(load_settings(env={}), db_url)
    try:
        with pytest.raises(DatabaseUnavailableError):
            supervisor._connect()
        assert not supervisor.db_up
    finally:
        supervisor.close()
        admin.close()
