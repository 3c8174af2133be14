"""The queue module against real PostgreSQL: every named query, two connections racing, fencing."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from qqueue.errors import InvalidTransitionError, SchemaNotReadyError, TaskNotFoundError
from qqueue.store import db, migrate
from qqueue.store import queue as q
from qqueue.tasks import TaskSpec

W1, W2 = uuid.uuid4(), uuid.uuid4()


def claim(conn: psycopg.Connection[Any], worker: uuid.UUID = W1, limit: int = 10, lease_s: float = 30,
          queues: tuple[str, ...] = ("default",)):
    return q.claim(conn, worker_id=worker, queues=queues, limit=limit, lease_s=lease_s)


def events(conn: psycopg.Connection[Any], task_id: uuid.UUID) -> list[str]:
    return [e["status"] for e in q.get_events(conn, task_id)]


def test_enqueue_many_writes_rows_history_and_one_notification_per_queue(conn, db_url):
    with db.connection(db_url) as listener:
        listener.execute("LISTEN qqueue_tasks_v1")
        specs = [TaskSpec(kind="noop", queue="a") for _ in range(50)] + [TaskSpec(kind="noop", queue="b")]
        out = q.enqueue_many(conn, specs)
        notes = sorted(n.payload for n in listener.notifies(timeout=1.0, stop_after=2))
        assert list(listener.notifies(timeout=0.2)) == []
    assert notes == ["a", "b"]
    assert [t.id for t in out] == [s.id or t.id for s, t in zip(specs, out, strict=True)]
    assert conn.execute("SELECT count(*) FROM qqueue.task_events WHERE status = 'pending'").fetchone()[0] == 51


def test_tasks_inserted_with_plain_sql_get_history_and_wake_workers(conn, db_url):
    with db.connection(db_url) as listener:
        listener.execute("LISTEN qqueue_tasks_v1")
        conn.execute("INSERT INTO qqueue.tasks (kind, payload) VALUES ('noop', '{}'), ('noop', '{}')")
        assert [n.payload for n in listener.notifies(timeout=1.0, stop_after=1)] == ["default"]
    (task,) = claim(conn, limit=1)
    assert events(conn, task.id) == ["pending", "running"]


def test_claim_orders_by_priority_then_run_at_then_fifo(conn):
    now = datetime.now(UTC)
    low = q.enqueue(conn, TaskSpec(kind="noop", priority=-5)).id
    late = q.enqueue(conn, TaskSpec(kind="noop", run_at=now - timedelta(seconds=1))).id
    early = q.enqueue(conn, TaskSpec(kind="noop", run_at=now - timedelta(seconds=10))).id
    high = q.enqueue(conn, TaskSpec(kind="noop", priority=10)).id
    fifo = [t.id for t in q.enqueue_many(conn, [TaskSpec(kind="noop", run_at=now - timedelta(seconds=5))] * 3)]
    claimed = [t.id for t in claim(conn, limit=100)]
    assert claimed == [high, early, *fifo, late, low]


def test_future_tasks_are_not_claimed_before_run_at(conn):
    q.enqueue(conn, TaskSpec(kind="noop", delay_s=3600))
    assert claim(conn) == []
    nxt = q.next_run_at(conn, ["default"])
    assert nxt is not None and nxt > datetime.now(UTC) + timedelta(minutes=59)


def test_claim_only_reads_the_given_queues(conn):
    q.enqueue(conn, TaskSpec(kind="noop", queue="other"))
    assert claim(conn) == []
    assert len(claim(conn, queues=("other", "default"))) == 1


def test_claimed_task_is_invisible_to_other_workers(db_url, conn):
    q.enqueue_many(conn, [TaskSpec(kind="noop") for _ in range(200)])
    results: dict[uuid.UUID, list[uuid.UUID]] = {}
    barrier = threading.Barrier(4)

    def grab(worker: uuid.UUID) -> None:
        with db.connection(db_url) as c:
            barrier.wait()
            got: list[uuid.UUID] = []
            while batch := claim(c, worker=worker, limit=7):
                got += [t.id for t in batch]
            results[worker] = got

    threads = [threading.Thread(target=grab, args=(uuid.uuid4(),)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for ids in results.values() for i in ids]
    assert len(everything) == 200 and len(set(everything)) == 200


def test_claim_sets_lease_attempt_and_history(conn):
    task_id = q.enqueue(conn, TaskSpec(kind="noop")).id
    (task,) = claim(conn, lease_s=30)
    row = q.get(conn, task_id)
    assert task.attempt == row["attempt"] == 1
    assert row["status"] == "running" and row["worker_id"] == W1
    assert row["lease_expires_at"] > datetime.now(UTC) + timedelta(seconds=20)
    assert events(conn, task_id) == ["pending", "running"]


def test_complete_records_result_and_one_completed_event(conn):
    task_id = q.enqueue(conn, TaskSpec(kind="noop")).id
    (task,) = claim(conn)
    done = q.complete_many(conn, worker_id=W1, done=[q.Completion(id=task.id, attempt=1, result={"x": [1, 2]})])
    assert done == {task_id}
    row = q.get(conn, task_id)
    assert (row["status"], row["result"], row["lease_expires_at"]) == ("completed", {"x": [1, 2]}, None)
    assert events(conn, task_id) == ["pending", "running", "completed"]


def test_stale_workers_late_completion_of_a_reclaimed_task_changes_nothing(conn):
    task_id = q.enqueue(conn, TaskSpec(kind="noop")).id
    claim(conn, worker=W1, lease_s=1)
    conn.execute("UPDATE qqueue.tasks SET lease_expires_at = now() - interval '1 second' WHERE id = %s", (task_id,))
    assert [r["id"] for r in q.reclaim_expired(conn)] == [task_id]
    (again,) = claim(conn, worker=W2)
    assert again.attempt == 2
    # W1 wakes up and reports its old attempt: fenced out, whatever it claims.
    assert q.complete_many(conn, worker_id=W1, done=[q.Completion(id=task_id, attempt=1, result="stale")]) == set()
    assert q.complete_many(conn, worker_id=W1, done=[q.Completion(id=task_id, attempt=2, result="stale")]) == set()
    assert q.fail_many(conn, worker_id=W1, failed=[q.Failure(id=task_id, attempt=1, error={
        "type": "X", "message": "stale"}, retry_delay_s=None)]) == {}
    assert q.renew_leases(conn, worker_id=W1, held=[(task_id, 1)], lease_s=30) == {}
    row = q.get(conn, task_id)
    assert (row["status"], row["worker_id"], row["attempt"], row["result"]) == ("running", W2, 2, None)
    assert q.complete_many(conn, worker_id=W2, done=[q.Completion(id=task_id, attempt=2, result="fresh")]) == {task_id}
    assert q.get(conn, task_id)["result"] == "fresh"
    assert events(conn, task_id) == ["pending", "running", "pending", "running", "completed"]


def test_retryable_failure_backs_off_until_max_attempts_then_fails(conn):
    task_id = q.enqueue(conn, TaskSpec(kind="noop", max_attempts=2)).id
    error = {"type": "Boom", "message": "boom", "retryable": True}
    claim(conn)
    assert q.fail_many(conn, worker_id=W1, failed=[q.Failure(id=task_id, attempt=1, error=error,
                                                              retry_delay_s=60)]) == {task_id: "pending"}
    row = q.get(conn, task_id)
    assert row["run_at"] > datetime.now(UTC) + timedelta(seconds=50) and row["error"]["message"] == "boom"
    assert claim(conn) == []  # not before its backoff
    conn.execute("UPDATE qqueue.tasks SET run_at = now() WHERE id = %s", (task_id,))
    (task,) = claim(conn)
    assert task.attempt == 2
    # A retry delay on the last attempt still fails for good.
    assert q.fail_many(conn, worker_id=W1, failed=[q.Failure(id=task_id, attempt=2, error=error,
                                                              retry_delay_s=60)]) == {task_id: "failed"}
    row = q.get(conn, task_id)
    assert row["status"] == "failed" and row["finished_at"] is not None
    assert events(conn, task_id) == ["pending", "running", "pending", "running", "failed"]
    assert conn.execute("SELECT error_message FROM qqueue.failed_tasks").fetchone()[0] == "boom"


def test_non_retryable_failure_fails_at_once(conn):
    task_id = q.enqueue(conn, TaskSpec(kind="noop", max_attempts=5)).id
    claim(conn)
    q.fail_many(conn, worker_id=W1, failed=[q.Failure(id=task_id, attempt=1, error={
        "type": "Bad", "message": "bad input", "retryable": False}, retry_delay_s=None)])
    assert q.get(conn, task_id)["status"] == "failed"


def test_cancel_pending_is_immediate_and_running_is_requested(conn, db_url):
    pending = q.enqueue(conn, TaskSpec(kind="noop")).id
    assert q.cancel(conn, pending) == "cancelled"
    assert events(conn, pending) == ["pending", "cancelled"]
    running = q.enqueue(conn, TaskSpec(kind="noop")).id
    claim(conn)
    with db.connection(db_url) as listener:
        listener.execute("LISTEN qqueue_cancel_v1")
        assert q.cancel(conn, running) == "cancel_requested"
        assert [n.payload for n in listener.notifies(timeout=1, stop_after=1)] == [str(running)]
    assert q.renew_leases(conn, worker_id=W1, held=[(running, 1)], lease_s=30) == {running: True}
    assert q.finish_cancelled_many(conn, worker_id=W1, held=[(running, 1)]) == {running}
    assert q.get(conn, running)["status"] == "cancelled"
    with pytest.raises(InvalidTransitionError):
        q.cancel(conn, running)
    with pytest.raises(TaskNotFoundError):
        q.cancel(conn, uuid.uuid4())


def test_expired_leases_return_to_pending_or_fail_when_attempts_are_spent(conn):
    retry, spent = (t.id for t in q.enqueue_many(conn, [TaskSpec(kind="noop"), TaskSpec(kind="noop", max_attempts=1)]))
    claim(conn, lease_s=30)
    assert q.reclaim_expired(conn) == []  # leases still valid
    conn.execute("UPDATE qqueue.tasks SET lease_expires_at = now() - interval '1 second'")
    reclaimed = {r["id"]: r["status"] for r in q.reclaim_expired(conn)}
    assert reclaimed == {retry: "pending", spent: "failed"}
    assert q.get(conn, spent)["error"]["type"] == "LeaseExpired"


def test_release_returns_tasks_and_their_attempt(conn):
    task_id = q.enqueue(conn, TaskSpec(kind="noop")).id
    claim(conn)
    assert q.release_many(conn, worker_id=W1, held=[(task_id, 1)], note="bye") == {task_id}
    row = q.get(conn, task_id)
    assert (row["status"], row["attempt"]) == ("pending", 0)


def test_idempotency_key_returns_the_existing_task(conn):
    first = q.enqueue(conn, TaskSpec(kind="noop", idempotency_key="k1"))
    second = q.enqueue(conn, TaskSpec(kind="noop", idempotency_key="k1"))
    assert first.created and not second.created and first.id == second.id
    assert conn.execute("SELECT count(*) FROM qqueue.tasks").fetchone()[0] == 1


def test_purge_deletes_only_old_finished_tasks_and_their_history(conn):
    old, recent, pending = (t.id for t in q.enqueue_many(conn, [TaskSpec(kind="noop")] * 3))
    for task_id in (old, recent):
        q.cancel(conn, task_id)
    conn.execute("UPDATE qqueue.tasks SET finished_at = now() - interval '2 days' WHERE id = %s", (old,))
    assert q.purge_finished(conn, older_than_s=86400, batch=1) == 1
    remaining = {r[0] for r in conn.execute("SELECT id FROM qqueue.tasks")}
    assert remaining == {recent, pending}
    assert conn.execute("SELECT count(*) FROM qqueue.task_events WHERE task_id = %s", (old,)).fetchone()[0] == 0


def test_history_is_append_only(conn):
    q.enqueue(conn, TaskSpec(kind="noop"))
    with pytest.raises(psycopg.errors.RaiseException):
        conn.execute("UPDATE qqueue.task_events SET note = 'rewritten'")


def test_constraints_reject_impossible_rows(conn):
    q.enqueue(conn, TaskSpec(kind="noop"))
    for bad in ("UPDATE qqueue.tasks SET status = 'running'",  # running without a lease
                "UPDATE qqueue.tasks SET priority = 1000",
                "UPDATE qqueue.tasks SET attempt = 99"):
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(bad)


def test_submitted_fields_are_checked_on_insert_and_on_update_under_their_constraint_names(conn):
    rows = {"tasks_kind_check": "INSERT INTO qqueue.tasks (kind, payload) VALUES ('no op', '{}')",
            "tasks_queue_check": "INSERT INTO qqueue.tasks (kind, queue, payload) VALUES ('noop', '', '{}')",
            "tasks_tags_check": "UPDATE qqueue.tasks SET tags = array_fill('t'::text, ARRAY[33])",
            "tasks_job_fields_check": "UPDATE qqueue.tasks SET job_pub = 0"}
    q.enqueue(conn, TaskSpec(kind="noop"))
    for constraint, statement in rows.items():
        with pytest.raises(psycopg.errors.CheckViolation) as refused:
            with conn.transaction():
                conn.execute(statement)
        assert refused.value.diag.constraint_name == constraint


def test_operator_views_answer_what_is_stuck_failed_and_who_works(conn):
    worker = uuid.uuid4()
    db.run(conn, "worker_register", id=worker, hostname="h", pid=1, queues=["default"], concurrency=2, version="t")
    a, b = (t.id for t in q.enqueue_many(conn, [TaskSpec(kind="noop"), TaskSpec(kind="noop")]))
    claim(conn, worker=worker, limit=1)
    conn.execute("UPDATE qqueue.tasks SET lease_expires_at = now() - interval '5 seconds' WHERE id = %s", (a,))
    assert conn.execute("SELECT id, reason FROM qqueue.stuck_tasks").fetchall() == [
        (a, "lease expired; any worker will reclaim it")]
    assert conn.execute("SELECT running_tasks FROM qqueue.live_workers").fetchall() == [(1,)]
    stats = conn.execute("SELECT pending, due, running FROM qqueue.queue_stats WHERE queue = 'default'").fetchone()
    assert stats == (1, 1, 1)
    assert b


def test_migrations_are_idempotent(conn):
    assert migrate.migrate(conn) == []
    migrate.check_current(conn)


def test_migrations_run_concurrently_apply_once(server_url):
    name = f"qqueue_m_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
    try:
        with db.connection(url) as c:
            with pytest.raises(SchemaNotReadyError, match="qqueue migrate"):
                migrate.check_current(c)
        applied: list[int] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(3)

        def run() -> None:
            try:
                with db.connection(url) as c:
                    barrier.wait()
                    applied.extend(m.version for m in migrate.migrate(c))
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(applied) == [m.version for m in migrate.available()]
        with db.connection(url) as c:
            migrate.check_current(c)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def test_every_terminal_transition_notifies_waiters_once_per_statement(conn, db_url):
    ids = [t.id for t in q.enqueue_many(conn, [TaskSpec(kind="noop", max_attempts=1) for _ in range(4)])]
    with db.connection(db_url) as listener:
        listener.execute("LISTEN qqueue_finished_v1")
        q.cancel(conn, ids[0])
        claimed = claim(conn)
        q.complete_many(conn, worker_id=W1, done=[q.Completion(id=claimed[0].id, attempt=1, result=None),
                                                  q.Completion(id=claimed[1].id, attempt=1, result=None)])
        q.fail_many(conn, worker_id=W1, failed=[q.Failure(id=claimed[2].id, attempt=1, error={
            "type": "X", "message": "x"}, retry_delay_s=None)])
        payloads = [n.payload for n in listener.notifies(timeout=1, stop_after=3)]
    assert payloads[0] == str(ids[0])
    assert set(payloads[1].split(",")) == {str(claimed[0].id), str(claimed[1].id)}
    assert payloads[2] == str(claimed[2].id)


def test_invariant_checker_finds_broken_promises(conn):
    from qqueue.store.invariants import check

    good, twice, bad_counts = (t.id for t in q.enqueue_many(conn, [TaskSpec(kind="noop")] * 3))
    claim(conn)
    q.complete_many(conn, worker_id=W1, done=[
        q.Completion(id=good, attempt=1, result={"counts": {"0": 3, "1": 1}, "shots": 4}),
        q.Completion(id=twice, attempt=1, result=None),
        q.Completion(id=bad_counts, attempt=1, result={"counts": {"0": 3}, "shots": 4}),
    ])
    assert check(conn).ok is False
    conn.execute("INSERT INTO qqueue.task_events (task_id, status, attempt) VALUES (%s, 'completed', 1)", (twice,))
    found = {(v["task_id"], v["violation"]) for v in check(conn).violations}
    assert (str(bad_counts), "result counts do not sum to its shots") in found
    assert (str(twice), "2 terminal history rows; a task ends exactly once") in found
    assert not any(task == str(good) for task, _ in found)


def test_claim_answers_from_a_completed_task_with_the_same_cache_key(conn):
    first = q.enqueue(conn, TaskSpec(kind="noop", cache_key="k" * 64)).id
    (task,) = claim(conn)
    assert task.cached_from is None  # nothing to answer from yet
    q.complete_many(conn, worker_id=W1, done=[q.Completion(id=first, attempt=1, result={"counts": {"0": 1}})])
    second = q.enqueue(conn, TaskSpec(kind="noop", cache_key="k" * 64)).id
    other = q.enqueue(conn, TaskSpec(kind="noop", cache_key="z" * 64)).id
    hits = {t.id: (t.cached_from, t.cached_result) for t in claim(conn)}
    assert hits == {second: (first, {"counts": {"0": 1}}), other: (None, None)}
    q.complete_many(conn, worker_id=W1, done=[q.Completion(id=second, attempt=1, result=hits[second][1],
                                                           cached_from=first)])
    row = q.get(conn, second)
    assert (row["cached_from"], row["result"]) == (first, {"counts": {"0": 1}})
    assert q.get_events(conn, second)[-1]["note"] == f"answered from the cached result of {first}"
