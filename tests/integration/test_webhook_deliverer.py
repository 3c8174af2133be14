"""The webhook deliverer's session against real PostgreSQL: none while nothing is due, one while deliveries are,
closed again once idle. The sends themselves are tested end to end (tests/e2e/test_webhooks.py)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg

from qqueue.config import load_settings
from qqueue.store import db
from qqueue.store import queue as q
from qqueue.tasks import TaskSpec
from qqueue.webhooks.deliverer import Deliverer
from tests.conftest import wait_until

W = uuid.uuid4()


def finished_with_a_refused_callback(conn: psycopg.Connection[Any]) -> uuid.UUID:
    """A task that ended with a callback to a loopback address, which a send refuses (no allow-list here)."""
    q.enqueue(conn, TaskSpec(kind="noop", queue="hooks", callback_url="http://127.0.0.1:9/hook"))
    [task] = q.claim(conn, worker_id=W, queues=("hooks",), limit=1, lease_s=30)
    q.complete_many(conn, worker_id=W, done=[q.Completion(id=task.id, attempt=task.attempt, result={})])
    return task.id


def abandoned(conn: psycopg.Connection[Any], task_id: uuid.UUID) -> bool:
    return conn.execute("SELECT abandoned_at IS NOT NULL FROM qqueue.webhook_deliveries WHERE task_id = %s",
                        (task_id,)).fetchone() == (True,)


def test_the_deliverer_connects_only_while_a_delivery_is_due(conn, db_url):
    opened: list[psycopg.Connection[Any]] = []

    def connect() -> psycopg.Connection[Any]:
        opened.append(db.connect(db_url, application_name="qqueue-worker-webhooks"))
        return opened[-1]

    deliverer = Deliverer(load_settings(env={}), connect, idle_close_s=0.0)
    deliverer.start()
    try:
        # The supervisor's probe finds nothing due: the thread is never woken, so it never connects.
        deliverer.check_due(conn, time.monotonic())
        assert opened == []

        first = finished_with_a_refused_callback(conn)
        deliverer.check_due(conn, deliverer.next_check)
        wait_until(lambda: abandoned(conn, first))
        # Idle at once (idle_close_s=0): the session is closed, and a probe that finds nothing opens none.
        wait_until(lambda: not deliverer.connected and opened[0].closed)
        deliverer.check_due(conn, deliverer.next_check)
        assert len(opened) == 1

        # A notification, forwarded by the supervisor, opens a session again.
        second = finished_with_a_refused_callback(conn)
        deliverer.wake()
        wait_until(lambda: abandoned(conn, second))
        wait_until(lambda: not deliverer.connected and all(c.closed for c in opened))
        assert len(opened) == 2
    finally:
        deliverer.stop()
