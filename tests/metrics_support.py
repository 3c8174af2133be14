"""A known workload for the metrics tests, what the database says of it, and /metrics text parsed with
prometheus_client's own parser."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from qqueue.store import queue
from qqueue.tasks import TaskSpec

#: Error types the workload's failures carry, in order.
FAILURES = ("CircuitError", "CircuitError", "TaskTimeout")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def run_workload(conn: psycopg.Connection[Any], queue_name: str = "metrics") -> None:
    """Two tasks completed, three failed (FAILURES), one cancelled while pending, one pending and due, one
    scheduled for an hour from now: all of kind noop in `queue_name`."""
    ids = [s.id for s in queue.enqueue_many(conn, [TaskSpec(kind="noop", queue=queue_name) for _ in range(7)])]
    queue.enqueue(conn, TaskSpec(kind="noop", queue=queue_name, delay_s=3600))
    worker = uuid.uuid4()
    claimed = {t.id: t for t in queue.claim(conn, worker_id=worker, queues=[queue_name], limit=5, lease_s=60)}
    done, failed = list(claimed.values())[:2], list(claimed.values())[2:]
    queue.complete_many(conn, worker_id=worker,
                        done=[queue.Completion(id=t.id, attempt=t.attempt, result={"ok": True}) for t in done])
    queue.fail_many(conn, worker_id=worker, failed=[
        queue.Failure(id=t.id, attempt=t.attempt, error={"type": kind, "message": "boom"}, retry_delay_s=None)
        for t, kind in zip(failed, FAILURES, strict=True)])
    unclaimed = [i for i in ids if i not in claimed]
    queue.cancel(conn, unclaimed[0])


def age_finished_tasks(conn: psycopg.Connection[Any]) -> None:
    """Move the finished tasks a day back, every time of a task together (waits and run times stay what they
    were), before any scrape: a finished task's finished_at never moves in service, and moved behind the roll-up
    mark it would be missed."""
    conn.execute("UPDATE qqueue.tasks SET created_at = created_at - interval '1 day', run_at = run_at - interval "
                 "'1 day', started_at = started_at - interval '1 day', finished_at = finished_at - interval '1 day' "
                 "WHERE finished_at IS NOT NULL")


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by (sample name, labels)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def fleet_only(samples: Samples) -> Samples:
    """The samples read from the database (not the process's own request histogram)."""
    return {k: v for k, v in samples.items() if not k[0].startswith("qqueue_http_")}


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when it is absent (a series with nothing to count)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def database_says(conn: psycopg.Connection[Any], queue_name: str) -> dict[str, Any]:
    """The workload's figures as the task rows state them."""
    by_status = dict(conn.execute("SELECT status::text, count(*) FROM qqueue.tasks WHERE queue = %s GROUP BY 1",
                                  (queue_name,)).fetchall())
    failures = dict(conn.execute("SELECT error ->> 'type', count(*) FROM qqueue.tasks WHERE queue = %s AND "
                                 "status = 'failed' GROUP BY 1", (queue_name,)).fetchall())
    wait, run, observed = conn.execute(
        "SELECT sum(extract(epoch FROM started_at - greatest(run_at, created_at))),"
        "       sum(extract(epoch FROM finished_at - started_at)), count(*) "
        "FROM qqueue.tasks WHERE queue = %s AND status IN ('completed', 'failed')", (queue_name,)).fetchone()
    due = conn.execute("SELECT count(*) FROM qqueue.tasks WHERE queue = %s AND status = 'pending' "
                       "AND run_at <= now()", (queue_name,)).fetchone()[0]
    return {"by_status": by_status, "failures": failures, "wait_s": float(wait), "run_s": float(run),
            "observed": observed, "due": due}
