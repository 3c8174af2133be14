"""Queue controls in the claim statement, against real PostgreSQL: pause, resume, max_running, their history."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg

from qqueue.store import controls, db, reads
from qqueue.store import queue as q
from qqueue.tasks import TaskSpec

W1, W2 = uuid.uuid4(), uuid.uuid4()


def claim(conn: psycopg.Connection[Any], queues: tuple[str, ...], worker: uuid.UUID = W1, limit: int = 10):
    return q.claim(conn, worker_id=worker, queues=queues, limit=limit, lease_s=30)


def change(conn: psycopg.Connection[Any], queue: str, **how: Any):
    return controls.apply(conn, controls.change(queue, actor="test", **how))


def test_a_paused_queue_is_not_claimed_and_resuming_wakes_workers(conn, db_url):
    q.enqueue_many(conn, [TaskSpec(kind="noop", queue="held")] * 3 + [TaskSpec(kind="noop", queue="free")])
    state = change(conn, "held", pause=True)
    assert (state.queue, state.paused, state.max_running) == ("held", True, None)
    assert [t.kind for t in claim(conn, ("held", "free"))] == ["noop"]
    assert claim(conn, ("held",)) == []
    # Paused tasks are not a reason to wake: the worker may sleep until something else is due.
    assert q.next_due(conn, ["held"]) == q.NextDue(None, None)
    with db.connection(db_url) as listener:
        listener.execute("LISTEN qqueue_tasks_v1")
        assert change(conn, "held", pause=False).paused is False
        assert [n.payload for n in listener.notifies(timeout=1.0, stop_after=1)] == ["held"]
    assert len(claim(conn, ("held",))) == 3


def test_max_running_caps_every_claim_until_tasks_of_the_queue_end(conn):
    q.enqueue_many(conn, [TaskSpec(kind="noop", queue="gpu")] * 5)
    change(conn, "gpu", max_running=2)
    first = claim(conn, ("gpu",), W1)
    assert len(first) == 2
    assert claim(conn, ("gpu",), W2) == []
    due = q.next_due(conn, ["gpu"])
    assert due.unlimited is None and due.limited is not None
    q.complete_many(conn, worker_id=W1, done=[q.Completion(id=first[0].id, attempt=first[0].attempt, result={})])
    assert len(claim(conn, ("gpu",), W2)) == 1
    change(conn, "gpu", max_running=None)
    assert len(claim(conn, ("gpu",), W2)) == 2


def test_racing_claims_never_exceed_the_limit(db_url, conn):
    q.enqueue_many(conn, [TaskSpec(kind="noop", queue="gpu")] * 40)
    change(conn, "gpu", max_running=3)
    barrier = threading.Barrier(8)
    claimed: list[int] = []

    def race(worker: uuid.UUID) -> None:
        with db.connection(db_url) as own:
            barrier.wait()
            claimed.append(len(claim(own, ("gpu",), worker)))

    threads = [threading.Thread(target=race, args=(uuid.uuid4(),)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(claimed) == 3
    assert conn.execute("SELECT count(*) FROM qqueue.tasks WHERE status = 'running'").fetchone()[0] == 3


def test_each_change_that_takes_effect_is_one_queue_event(conn):
    change(conn, "bulk", pause=True)
    change(conn, "bulk", pause=True)
    change(conn, "bulk", max_running=4)
    change(conn, "bulk", max_running=4)
    change(conn, "bulk", pause=False)
    change(conn, "bulk", max_running=None)
    rows = conn.execute("SELECT action, max_running, actor FROM qqueue.queue_events WHERE queue = 'bulk' "
                        "ORDER BY id").fetchall()
    assert rows == [("paused", None, "test"), ("limited", 4, "test"), ("resumed", 4, "test"),
                    ("unlimited", None, "test")]
    assert controls.controls(conn, "bulk").paused is False
    assert controls.controls(conn, "never-touched") is None


def test_queue_stats_shows_the_controls_even_of_a_queue_without_tasks(conn):
    change(conn, "empty", pause=True)
    q.enqueue(conn, TaskSpec(kind="noop", queue="gpu"))
    change(conn, "gpu", max_running=2)
    rows = {r[0]: r[1:] for r in conn.execute(
        "SELECT queue, pending, paused, max_running FROM qqueue.queue_stats").fetchall()}
    assert rows["empty"] == (0, True, None)
    assert rows["gpu"] == (1, False, 2)


def test_a_tenants_queue_figures_are_the_views_over_its_own_tasks_only(conn):
    q.enqueue_many(conn, [TaskSpec(kind="noop", queue=queue, tenant=tenant, delay_s=delay_s)
                          for queue in ("gpu", "bulk") for tenant in ("a", "b", None) for delay_s in (0, 0, 600)]
                   + [TaskSpec(kind="noop", queue="theirs", tenant="b")])
    claimed = claim(conn, ("gpu", "bulk"), limit=8)
    q.complete_many(conn, worker_id=W1, done=[q.Completion(id=t.id, attempt=t.attempt, result={})
                                              for t in claimed[:3]])
    q.fail_many(conn, worker_id=W1, failed=[q.Failure(id=t.id, attempt=t.attempt, retry_delay_s=None,
                                                      error={"type": "Boom", "message": "boom"})
                                            for t in claimed[3:5]])
    change(conn, "gpu", pause=True, max_running=2)
    change(conn, "empty", pause=True)
    # One transaction, so both reads share now(); rolled back, so no task is really deleted.
    with conn.transaction(force_rollback=True):
        mine = reads.fetch(conn, reads.queue_stats("a"))
        conn.execute("DELETE FROM qqueue.tasks WHERE tenant IS DISTINCT FROM 'a'")
        everyone = reads.fetch(conn, reads.queue_stats())
    # A queue with controls and none of the tenant's tasks is not the tenant's to see.
    assert [s.queue for s in mine] == ["bulk", "gpu"]
    assert mine == [s for s in everyone if s.queue != "empty"]
    assert (mine[1].paused, mine[1].max_running) == (True, 2)
