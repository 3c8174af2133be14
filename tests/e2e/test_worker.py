"""Real `qqueue worker` processes against real PostgreSQL. Every assertion is on database state."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime

import pytest

from qqueue.store import queue as q
from qqueue.store.invariants import check
from qqueue.tasks import TaskSpec
from tests.conftest import live_workers, status_counts, wait_until

pytestmark = pytest.mark.slow


def assert_invariants(conn) -> None:
    report = check(conn)
    assert report.violations == []


def all_finished(conn, total: int) -> bool:
    counts = status_counts(conn)
    return sum(counts.get(s, 0) for s in ("completed", "failed", "cancelled")) == total


def test_many_workers_complete_every_task_exactly_once(conn, start_worker):
    total = 5000
    for _ in range(4):
        start_worker("--concurrency", "1")
    # All four are listening before the burst arrives, so they really race for it.
    wait_until(lambda: live_workers(conn) == 4, timeout_s=60)
    ids = [t.id for t in q.enqueue_many(conn, [TaskSpec(kind="noop") for _ in range(total)])]
    wait_until(lambda: all_finished(conn, total), timeout_s=120)
    assert status_counts(conn) == {"completed": total}
    rows = conn.execute(
        """SELECT t.attempt, count(e.*) FILTER (WHERE e.status = 'completed'),
                  count(e.*) FILTER (WHERE e.status = 'running')
           FROM qqueue.tasks t JOIN qqueue.task_events e ON e.task_id = t.id GROUP BY t.id"""
    ).fetchall()
    assert len(rows) == len(ids)
    assert {tuple(r) for r in rows} == {(1, 1, 1)}
    # The load really was shared.
    assert conn.execute("SELECT count(DISTINCT worker_id) FROM qqueue.tasks").fetchone()[0] == 4
    assert_invariants(conn)


def test_tasks_of_a_sigkilled_worker_are_finished_by_another(conn, start_worker):
    ids = [t.id for t in q.enqueue_many(conn, [TaskSpec(kind="sleep", payload={"seconds": 1.5}) for _ in range(4)])]
    doomed = start_worker("--concurrency", "4", "--lease-s", "2")
    wait_until(lambda: status_counts(conn).get("running") == 4, timeout_s=60)
    doomed.kill_all()  # supervisor and slots, no chance to clean up
    start_worker("--concurrency", "4", "--lease-s", "2")
    wait_until(lambda: all_finished(conn, 4), timeout_s=60)
    rows = conn.execute("SELECT status::text, attempt FROM qqueue.tasks").fetchall()
    assert rows == [("completed", 2)] * 4
    completed_events = conn.execute(
        "SELECT count(*) FROM qqueue.task_events WHERE status = 'completed'").fetchone()[0]
    assert completed_events == len(ids)
    assert_invariants(conn)


def test_idle_worker_starts_a_new_task_on_its_notification_without_polling(conn, start_worker):
    start_worker("--concurrency", "1", "--poll-interval-s", "60")
    wait_until(lambda: live_workers(conn) == 1, timeout_s=60)
    time.sleep(0.5)  # let it finish its start-up claim and go idle
    task_id = q.enqueue(conn, TaskSpec(kind="noop")).id
    wait_until(lambda: q.get(conn, task_id)["status"] == "completed", timeout_s=30)
    row = q.get(conn, task_id)
    pickup = datetime.fromisoformat(row["timings"]["slot_started_at"]) - row["created_at"]
    # Its next poll is 60 s away: only the NOTIFY can explain a start this early. The bound is generous
    # because a busy 2-core machine can take a second or more just to schedule the slot.
    assert pickup.total_seconds() < 15.0


def test_delayed_task_starts_at_run_at_not_before(conn, start_worker):
    start_worker("--concurrency", "1", "--poll-interval-s", "60")
    wait_until(lambda: live_workers(conn) == 1, timeout_s=60)
    task_id = q.enqueue(conn, TaskSpec(kind="noop", delay_s=1.5)).id
    wait_until(lambda: q.get(conn, task_id)["status"] == "completed", timeout_s=15)
    row = q.get(conn, task_id)
    started = datetime.fromisoformat(row["timings"]["slot_started_at"])
    assert started >= row["run_at"]
    assert (started - row["run_at"]).total_seconds() < 1.0


def test_failing_task_is_retried_with_backoff_until_max_attempts(conn, start_worker):
    task_id = q.enqueue(conn, TaskSpec(kind="fail", max_attempts=3)).id
    start_worker("--concurrency", "1", "--poll-interval-s", "0.2")
    wait_until(lambda: q.get(conn, task_id)["status"] == "failed", timeout_s=30)
    history = q.get_events(conn, task_id)
    assert [e["status"] for e in history] == ["pending", "running", "pending", "running", "pending", "running",
                                              "failed"]
    assert q.get(conn, task_id)["attempt"] == 3
    # Each retry waited (default base 1 s, jittered to at least half).
    retries = [e["at"] for e in history if e["status"] == "running"]
    assert (retries[1] - retries[0]).total_seconds() >= 0.5


def test_cancel_stops_a_running_task(conn, start_worker):
    task_id = q.enqueue(conn, TaskSpec(kind="sleep", payload={"seconds": 60})).id
    start_worker("--concurrency", "1")
    wait_until(lambda: q.get(conn, task_id)["status"] == "running", timeout_s=60)
    assert q.cancel(conn, task_id) == "cancel_requested"
    wait_until(lambda: q.get(conn, task_id)["status"] == "cancelled", timeout_s=10)
    # The slot was replaced: the worker still runs new tasks.
    other = q.enqueue(conn, TaskSpec(kind="noop")).id
    wait_until(lambda: q.get(conn, other)["status"] == "completed", timeout_s=30)


def test_task_past_its_timeout_is_killed_and_failed(conn, start_worker):
    task_id = q.enqueue(conn, TaskSpec(kind="sleep", payload={"seconds": 60}, timeout_s=0.5, max_attempts=1)).id
    start_worker("--concurrency", "1")
    wait_until(lambda: q.get(conn, task_id)["status"] == "failed", timeout_s=60)
    error = q.get(conn, task_id)["error"]
    assert error["type"] == "TaskTimeout" and "0.5 s timeout" in error["message"]


def test_crashed_slot_is_replaced_and_its_task_retried(conn, start_worker):
    crash = q.enqueue(conn, TaskSpec(kind="crash", max_attempts=2)).id
    fine = [t.id for t in q.enqueue_many(conn, [TaskSpec(kind="echo", payload={"n": i}) for i in range(20)])]
    start_worker("--concurrency", "2", "--poll-interval-s", "0.2")
    wait_until(lambda: all_finished(conn, 21), timeout_s=60)
    row = q.get(conn, crash)
    assert (row["status"], row["attempt"], row["error"]["type"]) == ("failed", 2, "SlotCrashed")
    assert [q.get(conn, i)["result"] for i in fine] == [{"n": i} for i in range(20)]
    assert_invariants(conn)


def test_sigterm_lets_running_tasks_finish_and_returns_the_rest(conn, start_worker, tmp_path):
    started = tmp_path / "started"
    started.mkdir(mode=0o777)
    spec = TaskSpec(kind="marked_sleep", payload={"seconds": 1, "dir": str(started)})
    ids = [t.id for t in q.enqueue_many(conn, [spec for _ in range(6)])]
    worker = start_worker("--concurrency", "2", "--grace-s", "30")
    # 'running' in the table means claimed; wait until two slots have really begun, or SIGTERM could come
    # while both tasks are still in the pipe, and the worker would rightly hand them back unstarted.
    wait_until(lambda: len(list(started.iterdir())) >= 2, timeout_s=60)
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    counts = status_counts(conn)
    assert counts.get("running", 0) == 0
    assert counts.get("completed", 0) >= 2 and counts.get("completed", 0) + counts.get("pending", 0) == len(ids)
    # Returned tasks kept their attempt budget and the worker signed off.
    assert conn.execute("SELECT max(attempt) FROM qqueue.tasks WHERE status = 'pending'").fetchone()[0] in (0, None)
    assert live_workers(conn) == 0
    assert_invariants(conn)


def test_grace_period_over_hands_running_tasks_back(conn, start_worker):
    task_id = q.enqueue(conn, TaskSpec(kind="sleep", payload={"seconds": 60})).id
    worker = start_worker("--concurrency", "1", "--grace-s", "0.5")
    wait_until(lambda: q.get(conn, task_id)["status"] == "running", timeout_s=60)
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    row = q.get(conn, task_id)
    assert (row["status"], row["attempt"]) == ("pending", 0)


def test_worker_survives_losing_its_database_connections(conn, start_worker):
    start_worker("--concurrency", "1", "--poll-interval-s", "0.5")
    wait_until(lambda: live_workers(conn) == 1, timeout_s=60)
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE application_name LIKE 'qqueue-worker%%' AND datname = current_database() "
                 "AND pid <> pg_backend_pid()")
    task_id = q.enqueue(conn, TaskSpec(kind="noop")).id
    wait_until(lambda: q.get(conn, task_id)["status"] == "completed", timeout_s=30)


def worker_sessions(conn) -> list[str]:
    """The application names of the workers' sessions, without their host names."""
    rows = conn.execute("SELECT split_part(application_name, '@', 1) FROM pg_stat_activity "
                        "WHERE application_name LIKE 'qqueue-worker%%' AND datname = current_database() "
                        "ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def test_a_worker_opens_no_webhook_session_until_a_webhook_is_due_and_sends_across_lost_sessions(
        conn, start_worker):
    start_worker("--concurrency", "1")
    wait_until(lambda: live_workers(conn) == 1, timeout_s=60)
    q.enqueue_many(conn, [TaskSpec(kind="noop")] * 20)
    wait_until(lambda: all_finished(conn, 20), timeout_s=60)
    # The tasks ran and ended without callbacks: the deliverer waits without a session of its own.
    assert worker_sessions(conn) == ["qqueue-worker", "qqueue-worker-listen", "qqueue-worker-outcomes"]

    def abandoned(task_id) -> bool:
        # A loopback target is refused at send time (no allow-list here): the deliverer ran and recorded it.
        return conn.execute("SELECT abandoned_at IS NOT NULL FROM qqueue.webhook_deliveries WHERE task_id = %s",
                            (task_id,)).fetchone() == (True,)

    hooked = TaskSpec(kind="noop", callback_url="http://127.0.0.1:9/hook")
    first = q.enqueue(conn, hooked).id
    wait_until(lambda: abandoned(first), timeout_s=60)
    # Every session lost at once (a restart, an operator), the deliverer's too if it still holds one.
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE application_name LIKE 'qqueue-worker%%' AND datname = current_database() "
                 "AND pid <> pg_backend_pid()")
    second = q.enqueue(conn, hooked).id
    wait_until(lambda: abandoned(second), timeout_s=60)


def test_worker_refuses_to_start_on_an_unmigrated_database(server_url, start_worker, conn):
    conn.execute("DROP SCHEMA qqueue CASCADE")
    worker = start_worker("--concurrency", "1")
    assert worker.wait(60) == 1
    out = worker.output()
    assert "qqueue migrate" in out and "Traceback" not in out


@pytest.mark.skipif(os.cpu_count() is None, reason="needs a CPU count")
def test_worker_drains_a_queue_filled_from_sql(conn, start_worker):
    conn.execute("INSERT INTO qqueue.tasks (kind, payload) SELECT 'echo', jsonb_build_object('i', g) "
                 "FROM generate_series(1, 100) g")
    start_worker("--concurrency", "2", "--burst")
    wait_until(lambda: all_finished(conn, 100), timeout_s=60)
    assert conn.execute("SELECT count(*) FROM qqueue.tasks WHERE result = payload").fetchone()[0] == 100
    assert datetime.now(UTC)


def test_a_task_that_outgrows_its_memory_ceiling_fails_alone_and_the_slot_serves_on(conn, start_worker):
    # Charged nothing, the task may use the slot's fixed headroom (2 GiB) and asks for 6 GiB: refused by the
    # address-space ceiling, failed at once (retrying cannot help), and the same slot runs the next task.
    hog = q.enqueue(conn, TaskSpec(kind="allocate", payload={"bytes": 6 * 1024**3, "memory_bytes": 0})).id
    small = q.enqueue(conn, TaskSpec(kind="allocate", payload={"bytes": 64 * 1024**2, "memory_bytes": 0})).id
    worker = start_worker("--concurrency", "1")
    wait_until(lambda: all_finished(conn, 2), timeout_s=60)
    rows = dict(conn.execute("SELECT id, status::text FROM qqueue.tasks").fetchall())
    assert rows == {hog: "failed", small: "completed"}
    error, attempt = conn.execute("SELECT error, attempt FROM qqueue.tasks WHERE id = %s", (hog,)).fetchone()
    assert (error["type"], error["retryable"], attempt) == ("MemoryLimitExceeded", False, 1)
    assert "ceiling of 2048 MiB" in error["message"]
    # One slot did both: the ceiling cost the task, not the process.
    assert "slot died" not in worker.output() and "slot killed" not in worker.output()
