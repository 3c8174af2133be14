"""Retention bounds the queue tables: purged rows go, and their space is reclaimed even without autovacuum."""

from __future__ import annotations

import time

from qqueue.config import load_settings
from qqueue.store import db
from qqueue.worker.supervisor import Supervisor
from tests.conftest import wait_until


def vacuum_count(conn) -> int:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute("SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'qqueue.tasks'::regclass"
                        ).fetchone()[0]


def test_a_purging_worker_vacuums_the_tables_itself_when_autovacuum_is_off(conn, db_url):
    conn.execute("ALTER TABLE qqueue.tasks SET (autovacuum_enabled = false)")
    conn.execute("INSERT INTO qqueue.tasks (kind, status, attempt, finished_at, created_at) "
                 "SELECT 'noop', 'completed', 1, now() - interval '2 hours', now() - interval '2 hours' "
                 "FROM generate_series(1, 50)")
    before = vacuum_count(conn)
    supervisor = Supervisor(load_settings(env={}, retention_s=3600), db_url)
    supervisor._connect()
    try:
        supervisor.autovacuum_on = db.run(supervisor.conn, "maintenance_autovacuum_on")["enabled"]
        assert supervisor.autovacuum_on is False
        supervisor._purge(time.monotonic())
    finally:
        supervisor.close()
    assert conn.execute("SELECT count(*) FROM qqueue.tasks").fetchone()[0] == 0
    wait_until(lambda: vacuum_count(conn) > before, timeout_s=10)
