"""The statement triggers of qqueue.tasks, against real PostgreSQL: one per event, and what goes with a task when
it is deleted or truncated. History, wake-ups and metrics are tested where they are read (test_queue.py,
test_invariants.py, test_metric_totals.py); here the webhook deliveries, which no reader there covers."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from qqueue.store import queue as q
from qqueue.tasks import TaskSpec

W = uuid.uuid4()


def test_each_event_on_tasks_fires_one_statement_trigger_at_each_timing(conn):
    # A statement trigger is a PL/pgSQL call per statement, the submission's INSERT included (migration 0017).
    rows = conn.execute("""
        SELECT CASE WHEN t.tgtype & 2 <> 0 THEN 'before' ELSE 'after' END, e.event, array_agg(t.tgname::text)
        FROM pg_trigger t
        CROSS JOIN (VALUES ('insert', 4), ('delete', 8), ('update', 16), ('truncate', 32)) AS e(event, bit)
        WHERE t.tgrelid = 'qqueue.tasks'::regclass AND NOT t.tgisinternal
          AND t.tgtype & 1 = 0 AND t.tgtype & e.bit <> 0
        GROUP BY 1, 2""").fetchall()
    assert {(timing, event): names for timing, event, names in rows} == {
        ("after", "insert"): ["tasks_after_insert"],
        ("after", "delete"): ["tasks_after_delete"],
        ("before", "truncate"): ["tasks_before_truncate"],
        ("after", "truncate"): ["tasks_after_truncate"],
    }


def finished_with_callbacks(conn: psycopg.Connection[Any], count: int) -> list[uuid.UUID]:
    q.enqueue_many(conn, [TaskSpec(kind="noop", queue="hooks", callback_url="https://example.test/hook")] * count)
    claimed = q.claim(conn, worker_id=W, queues=("hooks",), limit=count, lease_s=30)
    q.complete_many(conn, worker_id=W, done=[q.Completion(id=t.id, attempt=t.attempt, result={}) for t in claimed])
    return [t.id for t in claimed]


def deliveries(conn: psycopg.Connection[Any]) -> set[uuid.UUID]:
    return {r[0] for r in conn.execute("SELECT task_id FROM qqueue.webhook_deliveries").fetchall()}


def test_a_tasks_webhook_deliveries_go_with_it_and_no_other_does(conn):
    gone, kept = finished_with_callbacks(conn, 2)
    assert deliveries(conn) == {gone, kept}
    conn.execute("DELETE FROM qqueue.tasks WHERE id = %s", (gone,))
    assert deliveries(conn) == {kept}
    # A delete that meets no delivery of its tasks leaves the others alone.
    q.enqueue(conn, TaskSpec(kind="noop", queue="plain"))
    conn.execute("DELETE FROM qqueue.tasks WHERE queue = 'plain'")
    assert deliveries(conn) == {kept}


def test_truncating_tasks_empties_their_history_and_deliveries_and_leaves_the_metrics(conn):
    finished_with_callbacks(conn, 3)
    conn.execute("TRUNCATE qqueue.tasks")
    assert deliveries(conn) == set()
    assert conn.execute("SELECT count(*) FROM qqueue.task_events").fetchone()[0] == 0
    # The finished tasks were counted as gone before they went (BEFORE TRUNCATE: afterwards they can't be read).
    assert conn.execute("SELECT tasks FROM qqueue.metric_gone_totals WHERE queue = 'hooks' "
                        "AND status = 'completed'").fetchone()[0] == 3
