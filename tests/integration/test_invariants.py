"""The invariant checker (qqueue.invariant_violations, `qqueue check`) against real PostgreSQL: every legitimate
life of a task passes, and each broken promise added in sql/migrations/0005_invariants_v2.sql is found, including
the ones the first version of the view could not see. Broken states are forged with plain SQL, as a buggy
worker or a hand edit would leave them."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import psycopg

from qqueue.store import queue as q
from qqueue.store.invariants import check
from qqueue.tasks import TaskSpec

W1, W2 = uuid.uuid4(), uuid.uuid4()
UNFENCED = "an outcome was written by a worker or attempt other than the latest claim"


def violations(conn: psycopg.Connection[Any]) -> set[tuple[str, str]]:
    """(task id, rule) for every broken promise."""
    return {(v["task_id"], v["violation"]) for v in check(conn).violations}


def claim(conn: psycopg.Connection[Any], worker: uuid.UUID, limit: int = 10) -> list[Any]:
    return q.claim(conn, worker_id=worker, queues=["default"], limit=limit, lease_s=30)


def expire_leases(conn: psycopg.Connection[Any]) -> None:
    conn.execute("UPDATE qqueue.tasks SET lease_expires_at = now() - interval '1 second' WHERE status = 'running'")


def forge_event(conn: psycopg.Connection[Any], task_id: uuid.UUID, status: str, attempt: int,
                worker: uuid.UUID | None) -> None:
    """A history row as a buggy writer would add it (the table only refuses updates)."""
    conn.execute("INSERT INTO qqueue.task_events (task_id, status, attempt, worker_id) VALUES (%s, %s, %s, %s)",
                 (task_id, status, attempt, worker))


def forge_completion(conn: psycopg.Connection[Any], task_id: uuid.UUID, attempt: int, worker: uuid.UUID,
                     result: Any) -> None:
    """An unfenced completion: the row is overwritten whoever holds the task now, and the history says so."""
    with conn.transaction():
        conn.execute("UPDATE qqueue.tasks SET status = 'completed', result = %s::jsonb, error = NULL, "
                     "lease_expires_at = NULL, finished_at = now() WHERE id = %s",
                     (msgspec.json.encode(result).decode(), task_id))
        forge_event(conn, task_id, "completed", attempt, worker)


def simulate_task(conn: psycopg.Connection[Any], shots: int) -> uuid.UUID:
    return q.enqueue(conn, TaskSpec(kind="simulate", payload={"circuit": "bell", "shots": shots})).id


def test_every_legitimate_task_life_passes(conn):
    done, retried, released, reclaimed, cancelled, stopped, failed, cached = (
        t.id for t in q.enqueue_many(conn, [TaskSpec(kind="noop", max_attempts=3)] * 7
                                     + [TaskSpec(kind="noop", cache_key="c" * 64)]))
    sim = simulate_task(conn, shots=100)
    assert q.cancel(conn, cancelled) == "cancelled"
    claim(conn, W1, limit=8)
    q.complete_many(conn, worker_id=W1, done=[
        q.Completion(id=done, attempt=1, result={"ok": True}),
        q.Completion(id=cached, attempt=1, result={"counts": {"0": 1}}),
        q.Completion(id=sim, attempt=1, result={"counts": {"00": 52, "11": 48}, "shots": 100}),
    ])
    error = {"type": "Boom", "message": "boom", "retryable": True}
    q.fail_many(conn, worker_id=W1, failed=[q.Failure(id=retried, attempt=1, error=error, retry_delay_s=0),
                                            q.Failure(id=failed, attempt=1, error=error, retry_delay_s=None)])
    q.release_many(conn, worker_id=W1, held=[(released, 1)], note="worker stopped before running it")
    assert q.cancel(conn, stopped) == "cancel_requested"
    q.finish_cancelled_many(conn, worker_id=W1, held=[(stopped, 1)])
    expire_leases(conn)
    assert {r["id"] for r in q.reclaim_expired(conn)} == {reclaimed}
    # The retried, released and reclaimed tasks run again on another worker; a twin comes from the cache.
    twin = q.enqueue(conn, TaskSpec(kind="noop", cache_key="c" * 64)).id
    again = claim(conn, W2)
    assert {t.id for t in again} == {retried, released, reclaimed, twin}
    q.complete_many(conn, worker_id=W2, done=[
        q.Completion(id=t.id, attempt=t.attempt, result=t.cached_result, cached_from=t.cached_from) for t in again])
    report = check(conn)
    assert report.violations == [] and report.unfinished == 0


def test_a_late_worker_completing_with_the_current_attempt_number_is_found(conn):
    # Attempt 2 belongs to W2; W1 writes it as if a fence checked the attempt number alone. The first version of
    # the view saw nothing wrong here: one completed row, by the attempt the task is at.
    task_id = q.enqueue(conn, TaskSpec(kind="noop")).id
    claim(conn, W1)
    expire_leases(conn)
    q.reclaim_expired(conn)
    (held,) = claim(conn, W2)
    assert held.attempt == 2
    forge_completion(conn, task_id, attempt=2, worker=W1, result={"stale": True})
    assert violations(conn) == {(str(task_id), UNFENCED)}


def test_an_older_attempts_retry_written_after_a_newer_claim_is_found(conn):
    # 'pending' rows were exempt from the attempt-order rule of the first version; a stale retry slipped past it.
    task_id = q.enqueue(conn, TaskSpec(kind="noop")).id
    claim(conn, W1)
    expire_leases(conn)
    q.reclaim_expired(conn)
    claim(conn, W2)
    with conn.transaction():
        conn.execute("UPDATE qqueue.tasks SET status = 'pending', lease_expires_at = NULL WHERE id = %s", (task_id,))
        forge_event(conn, task_id, "pending", 1, W1)
    assert (str(task_id), UNFENCED) in violations(conn)


def test_an_older_attempt_completing_after_a_newer_claim_is_found(conn):
    task_id = q.enqueue(conn, TaskSpec(kind="noop")).id
    claim(conn, W1)
    expire_leases(conn)
    q.reclaim_expired(conn)
    claim(conn, W2)
    forge_completion(conn, task_id, attempt=1, worker=W1, result={"stale": True})
    found = violations(conn)
    assert (str(task_id), UNFENCED) in found
    assert (str(task_id), "an older attempt wrote after a newer one") in found


def test_a_task_that_changes_after_it_finished_is_found(conn):
    # Completed, then back to pending: one terminal row and a last row that matches the status, so the first
    # version of the view passed it.
    task_id = q.enqueue(conn, TaskSpec(kind="noop")).id
    claim(conn, W1)
    q.complete_many(conn, worker_id=W1, done=[q.Completion(id=task_id, attempt=1, result=None)])
    with conn.transaction():
        conn.execute("UPDATE qqueue.tasks SET status = 'pending', finished_at = NULL, result = NULL WHERE id = %s",
                     (task_id,))
        forge_event(conn, task_id, "pending", 1, None)
    assert violations(conn) == {(str(task_id), "history continues after the task finished")}


def test_completed_circuits_must_count_the_shots_they_asked_for(conn):
    short, malformed, not_numbers, fine = (simulate_task(conn, shots=100) for _ in range(4))
    claim(conn, W1)
    q.complete_many(conn, worker_id=W1, done=[
        # Consistent with itself, but not the 100 shots the task asked for.
        q.Completion(id=short, attempt=1, result={"counts": {"00": 50, "11": 49}, "shots": 99}),
        q.Completion(id=malformed, attempt=1, result={"counts": "00:100", "shots": 100}),
        q.Completion(id=not_numbers, attempt=1, result={"counts": {"00": "fifty", "11": 50.5}, "shots": 100}),
        q.Completion(id=fine, attempt=1, result={"counts": {"00": 49, "11": 51}, "shots": 100}),
    ])
    found = violations(conn)
    assert found == {
        (str(short), "completed with counts summing to 99, not the 100 shots it asked for"),
        (str(malformed), "completed with counts summing to nothing, not the 100 shots it asked for"),
        (str(malformed), "result counts do not sum to its shots"),
        (str(not_numbers), "completed with counts summing to nothing, not the 100 shots it asked for"),
        (str(not_numbers), "result counts do not sum to its shots"),
    }


def _job(conn: psycopg.Connection[Any], sizes: list[int], parts: list[tuple[int, int, int, int]]) -> uuid.UUID:
    """A job row and its tasks as plain SQL would write them: parts are (pub, part, start, stop)."""
    job_id = uuid.uuid4()
    conn.execute("INSERT INTO qqueue.jobs (id, kind, pubs, shapes, sizes, tasks_total) "
                 "VALUES (%s, 'estimate', %s, %s::jsonb, %s, %s)",
                 (job_id, len(sizes), msgspec.json.encode([[n] for n in sizes]).decode(), sizes, len(parts)))
    q.enqueue_many(conn, [TaskSpec(kind="estimate", payload={"sets": [start, stop]}, job_id=job_id, job_pub=pub,
                                   job_part=part) for pub, part, start, stop in parts])
    return job_id


def job_violations(conn: psycopg.Connection[Any]) -> set[tuple[str, str]]:
    return {(v["job_id"], v["violation"]) for v in check(conn).violations if v["job_id"]}


def test_the_job_rules_find_what_a_broken_job_writer_would_leave(conn):
    good = _job(conn, [4, 2], [(0, 0, 0, 2), (0, 1, 2, 4), (1, 0, 0, 2)])
    gap = _job(conn, [4], [(0, 0, 0, 2), (0, 1, 3, 4)])
    missing_pub = _job(conn, [2, 2], [(0, 0, 0, 1), (0, 1, 1, 2)])
    assert job_violations(conn) == {
        (str(gap), "PUB 0: its parts cover 3 parameter sets from 0, not its 4"),
        (str(missing_pub), "job has tasks for 1 PUBs, not its 2"),
    }
    # A job seen finished must not have a task that is still unfinished, or that finished later.
    conn.execute("UPDATE qqueue.jobs SET finished_at = now() WHERE id = %s", (good,))
    assert (str(good), "job was seen finished, but 3 of its tasks are unfinished") in job_violations(conn)
    conn.execute("UPDATE qqueue.jobs SET tasks_total = 5 WHERE id = %s", (good,))
    assert (str(good), "job has 3 tasks, not the 5 it was created with") in job_violations(conn)


def test_a_completed_part_must_hold_the_sets_it_was_given(conn):
    job_id = _job(conn, [3], [(0, 0, 0, 3)])
    [task] = claim(conn, W1)
    q.complete_many(conn, worker_id=W1, done=[q.Completion(
        id=task.id, attempt=task.attempt, result={"shape": [2], "data": {"evs": [0.1, 0.2], "stds": [0, 0]}})])
    assert (str(task.id), "the result holds 2 parameter sets, but the task was given 3") in violations(conn)
    assert job_id


def test_history_goes_with_its_task_and_history_without_one_is_found(conn):
    # No foreign key checks each history row (sql/migrations/0010): statement triggers delete a task's history
    # with it, whether the task is deleted itself, with its job, or truncated, and the view finds what is left.
    kept, deleted = (t.id for t in q.enqueue_many(conn, [TaskSpec(kind="noop")] * 2))
    job = conn.execute("INSERT INTO qqueue.jobs (queue, kind, pubs, shapes, sizes, tasks_total) "
                       "VALUES ('default', 'sample', 1, '[]', '{1}', 1) RETURNING id").fetchone()[0]
    part = conn.execute("INSERT INTO qqueue.tasks (kind, job_id, job_pub, job_part) VALUES ('noop', %s, 0, 0) "
                        "RETURNING id", (job,)).fetchone()[0]

    def history(task_id: uuid.UUID) -> int:
        return conn.execute("SELECT count(*) FROM qqueue.task_events WHERE task_id = %s", (task_id,)).fetchone()[0]

    assert history(deleted) == history(part) == history(kept) == 1
    conn.execute("DELETE FROM qqueue.tasks WHERE id = %s", (deleted,))
    conn.execute("DELETE FROM qqueue.jobs WHERE id = %s", (job,))
    assert (history(deleted), history(part), history(kept)) == (0, 0, 1)
    assert violations(conn) == set()

    ghost = uuid.uuid4()
    forge_event(conn, ghost, "pending", 0, None)
    assert violations(conn) == {(str(ghost), "status history of a task that does not exist")}

    conn.execute("TRUNCATE qqueue.tasks")
    assert conn.execute("SELECT count(*) FROM qqueue.task_events").fetchone()[0] == 0


def test_a_retried_task_passes_and_a_history_broken_after_its_retry_is_still_found(conn):
    fine, broken = (t.id for t in q.enqueue_many(conn, [TaskSpec(kind="noop", max_attempts=1)] * 2))
    claim(conn, W1)
    q.fail_many(conn, worker_id=W1, failed=[q.Failure(id=t, attempt=1, error={"type": "X", "message": "x"},
                                                      retry_delay_s=None) for t in (fine, broken)])
    retried = q.retry_many(conn, q.RetryFilter(ids=[fine, broken]), note="retried by a test")
    assert retried.retried == [fine, broken]
    assert [(t.attempt, t.max_attempts) for t in q.claim(conn, worker_id=W2, queues=["default"], limit=10,
                                                          lease_s=30)] == [(2, 2), (2, 2)]
    q.complete_many(conn, worker_id=W2, done=[q.Completion(id=t, attempt=2, result=None) for t in (fine, broken)])
    assert violations(conn) == set()
    # Completed, then back to pending: a completed task is never retried, even one retried before.
    with conn.transaction():
        conn.execute("UPDATE qqueue.tasks SET status = 'pending', finished_at = NULL WHERE id = %s", (broken,))
        forge_event(conn, broken, "pending", 2, None)
    assert violations(conn) == {(str(broken), "history continues after the task finished")}
