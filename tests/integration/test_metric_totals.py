"""The metrics' totals on real PostgreSQL: figures equal what the task rows say, and counters and histograms
stay put when finished tasks are deleted, whichever way, rolled up or not."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from qqueue.api.metrics import fleet_exposition
from qqueue.store import db, metric_reads, queue, reads
from qqueue.store.retries import RetryFilter
from tests.metrics_support import FAILURES, Samples, age_finished_tasks, database_says, parse, run_workload, value

Q = "metrics"


def scrape(conn: psycopg.Connection[Any]) -> Samples:
    """What GET /metrics would show of the fleet: a roll-up step, then one snapshot."""
    mark = reads.fetch(conn, metric_reads.roll_up(metric_reads.roll_up_lag_s(30.0))).mark
    return parse(fleet_exposition(reads.fetch(conn, metric_reads.snapshot(mark))).decode())


def monotonic_part(samples: Samples) -> Samples:
    """Counters and histograms: what must never go down."""
    return {k: v for k, v in samples.items() if k[0].endswith(("_total", "_bucket", "_count", "_sum"))}


def test_metrics_after_a_known_workload_equal_what_the_database_says(conn: psycopg.Connection[Any]) -> None:
    run_workload(conn, Q)
    said = database_says(conn, Q)
    samples = scrape(conn)

    assert value(samples, "qqueue_tasks_completed_total", queue=Q, kind="noop") == 2
    assert value(samples, "qqueue_tasks_cancelled_total", queue=Q, kind="noop") == 1
    for error_type in set(FAILURES):
        assert value(samples, "qqueue_tasks_failed_total", queue=Q, kind="noop", error_type=error_type) == \
            said["failures"][error_type] == FAILURES.count(error_type)
    for status, count in said["by_status"].items():
        assert value(samples, "qqueue_tasks", queue=Q, status=status) == count
    assert value(samples, "qqueue_tasks_due", queue=Q) == said["due"] == 1
    assert value(samples, "qqueue_tasks_running", queue=Q) == said["by_status"].get("running", 0)
    assert value(samples, "qqueue_oldest_due_age_seconds", queue=Q) >= 0
    for name, total in (("qqueue_task_queue_wait_seconds", said["wait_s"]),
                        ("qqueue_task_run_seconds", said["run_s"])):
        assert value(samples, f"{name}_count", queue=Q, kind="noop") == said["observed"] == 5
        assert value(samples, f"{name}_bucket", queue=Q, kind="noop", le="+Inf") == 5
        assert value(samples, f"{name}_sum", queue=Q, kind="noop") == pytest.approx(total, abs=1e-6)
        buckets = sorted((float(dict(labels)["le"]), v) for (n, labels), v in samples.items()
                         if n == f"{name}_bucket")
        assert [v for _, v in buckets] == sorted(v for _, v in buckets), "buckets are cumulative"


@pytest.mark.parametrize("rolled_up_first", [True, False], ids=["rolled-up", "not-rolled-up"])
@pytest.mark.parametrize("how", ["purge", "delete", "job", "truncate"])
def test_counters_and_histograms_stay_when_finished_tasks_are_deleted(
    conn: psycopg.Connection[Any], how: str, rolled_up_first: bool
) -> None:
    run_workload(conn, Q)
    if how == "job":  # the finished tasks become the parts of one job, which goes with them
        job = conn.execute("INSERT INTO qqueue.jobs (kind, queue, pubs, shapes, sizes, tasks_total) "
                           "VALUES ('sample', %s, 1, '[[6]]', '{6}', 6) RETURNING id", (Q,)).fetchone()[0]
        conn.execute("UPDATE qqueue.tasks t SET job_id = %s, job_pub = 0, job_part = p.n - 1 FROM (SELECT id, "
                     "row_number() OVER (ORDER BY id) AS n FROM qqueue.tasks WHERE finished_at IS NOT NULL) p "
                     "WHERE t.id = p.id", (job,))
    age_finished_tasks(conn)
    if rolled_up_first:
        before = scrape(conn)  # moves the mark past the aged tasks: they are in the totals now
        assert conn.execute("SELECT upto > now() - interval '1 hour' FROM qqueue.metric_rollup_mark").fetchone()[0]
    else:
        before = parse(fleet_exposition(reads.fetch(conn, metric_reads.snapshot(None))).decode())
    if how == "purge":
        assert queue.purge_batch(conn, older_than_s=3600, limit=1000) == 6
    elif how == "delete":
        conn.execute("DELETE FROM qqueue.tasks WHERE status IN ('completed', 'failed', 'cancelled')")
    elif how == "job":
        conn.execute("DELETE FROM qqueue.jobs")
    else:
        conn.execute("TRUNCATE qqueue.tasks")
    after = scrape(conn)

    assert monotonic_part(after) == monotonic_part(before)
    assert value(before, "qqueue_tasks_completed_total", queue=Q, kind="noop") == 2
    for status in ("completed", "failed", "cancelled"):
        assert value(after, "qqueue_tasks", queue=Q, status=status) == 0
    assert conn.execute("SELECT count(*) FROM qqueue.task_events").fetchone()[0] == (0 if how == "truncate" else 2)


def test_tasks_inserted_already_finished_behind_the_mark_are_counted_and_purged_to_zero(
    conn: psycopg.Connection[Any],
) -> None:
    scrape(conn)  # the mark moves to a minute ago; the fill below is an hour old
    db.run(conn, "bench_fill_finished", queue="history", count=3)
    filled = scrape(conn)
    assert value(filled, "qqueue_tasks_completed_total", queue="history", kind="noop") == 3
    assert value(filled, "qqueue_tasks", queue="history", status="completed") == 3
    assert queue.purge_batch(conn, older_than_s=600, limit=1000) == 3
    purged = scrape(conn)
    assert value(purged, "qqueue_tasks_completed_total", queue="history", kind="noop") == 3
    assert value(purged, "qqueue_tasks", queue="history", status="completed") == 0


@pytest.mark.parametrize("rolled_up_first", [True, False], ids=["rolled-up", "not-rolled-up"])
def test_a_retried_failure_stays_counted_and_leaves_the_failed_gauge(
    conn: psycopg.Connection[Any], rolled_up_first: bool
) -> None:
    run_workload(conn, Q)
    age_finished_tasks(conn)
    before = scrape(conn) if rolled_up_first else parse(
        fleet_exposition(reads.fetch(conn, metric_reads.snapshot(None))).decode())
    failed = value(before, "qqueue_tasks", queue=Q, status="failed")
    retried = queue.retry_many(conn, RetryFilter(statuses=["failed"]), note="test")
    assert len(retried.retried) == failed > 0
    after = scrape(conn)
    # Sums added in another order differ in their last bits.
    assert monotonic_part(after) == pytest.approx(monotonic_part(before))
    assert value(after, "qqueue_tasks", queue=Q, status="failed") == 0
    assert value(after, "qqueue_tasks", queue=Q, status="pending") == value(before, "qqueue_tasks", queue=Q,
                                                                             status="pending") + failed
