"""The outcome writer: outcomes written behind the loop on a session of its own, handed back when it fails."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from qqueue.config import load_settings
from qqueue.errors import DatabaseUnavailableError
from qqueue.store import db
from qqueue.store import queue as q
from qqueue.tasks import TaskSpec
from qqueue.worker.completer import Completer
from qqueue.worker.dispatch import Pace
from qqueue.worker.held import HeldTasks

WORKER = uuid.uuid4()


def test_outcomes_are_written_behind_the_loop_and_a_failed_batch_comes_back_whole(conn, db_url):
    first, second = (t.id for t in q.enqueue_many(conn, [TaskSpec(kind="noop"), TaskSpec(kind="noop")]))
    claimed = q.claim(conn, worker_id=WORKER, queues=["default"], limit=2, lease_s=60)
    completer = Completer(load_settings(env={}), WORKER, HeldTasks(), Pace())
    woken = threading.Event()
    sessions: list[object] = []

    def connect():
        sessions.append(object())
        if len(sessions) == 1:
            raise DatabaseUnavailableError("the database went away")
        return db.connect(db_url)

    completer.start_writer(connect, woken.set)
    try:
        completer.cached(claimed[0])
        completer.write_behind(time.monotonic())  # nothing else held: due at once, handed to the writer
        assert woken.wait(30)
        completer.cached(claimed[1])  # recorded while the batch was out
        with pytest.raises(DatabaseUnavailableError):
            completer.write_behind(time.monotonic())
        assert completer.unflushed
        assert {r["status"] for r in (q.get(conn, first), q.get(conn, second))} == {"running"}

        woken.clear()
        completer.write_behind(time.monotonic())  # both, in one batch, on a fresh session
        assert woken.wait(30)
        completer.write_behind(time.monotonic())  # collects the success
        assert not completer.unflushed
        assert [q.get(conn, t)["status"] for t in (first, second)] == ["completed", "completed"]
        assert len(sessions) == 2
    finally:
        completer.close()
