"""A job's webhook notice, written by the trigger of migration 0018 when the job's last task ends, on real
PostgreSQL: once per end, whatever finishes the tasks (one statement, or two racing transactions)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from qqueue import jobs
from qqueue.store import db, job_reads, reads
from qqueue.store import queue as q
from qqueue.tasks import TaskSpec, new_task_id
from tests.conftest import wait_until

WORKER = uuid.uuid4()
URL = "https://hooks.example.com/job"


def queue_job(conn: psycopg.Connection[Any], parts: int, *, callback_url: str | None = URL) -> uuid.UUID:
    """A job of `parts` no-op tasks (one PUB each) in its own queue, as POST /jobs writes one."""
    job_id, queue = new_task_id(), f"job-{uuid.uuid4().hex[:8]}"
    tasks = [TaskSpec(kind="noop", queue=queue, max_attempts=1, job_id=job_id, job_pub=i, job_part=0,
                      job_callback=True if callback_url else None) for i in range(parts)]
    plan = jobs.JobPlan(id=job_id, shapes=[[]] * parts, sizes=[1] * parts, tasks=tasks, result_bytes=0)
    with conn.transaction():
        db.run(conn, "job_insert", **jobs.row(plan, kind="sample", queue=queue, tenant=None, callback_url=callback_url))
        q.enqueue_many(conn, plan.tasks)
    return job_id


def claim_all(conn: psycopg.Connection[Any], job_id: uuid.UUID) -> list[Any]:
    queue = conn.execute("SELECT queue FROM qqueue.jobs WHERE id = %s", (job_id,)).fetchone()["queue"]
    return q.claim(conn, worker_id=WORKER, queues=[queue], limit=100, lease_s=60)


def complete(conn: psycopg.Connection[Any], claimed: list[Any]) -> None:
    q.complete_many(conn, worker_id=WORKER, done=[q.Completion(id=t.id, attempt=t.attempt, result={}) for t in claimed])


def notices(conn: psycopg.Connection[Any], job_id: uuid.UUID) -> list[dict[str, Any]]:
    return conn.execute("SELECT job_id, task_id, task_status::text AS status, task_attempt, finished_at, error, url "
                        "FROM qqueue.webhook_deliveries WHERE job_id = %s ORDER BY id", (job_id,)).fetchall()


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection whose rows are dicts."""
    with db.connection(db_url) as c:
        c.row_factory = dict_row  # type: ignore[assignment]
        yield c


def test_a_job_is_announced_once_when_its_last_task_ends_and_not_before(conn):
    job_id = queue_job(conn, 3)
    first, *rest = claim_all(conn, job_id)
    complete(conn, [first])
    assert notices(conn, job_id) == []
    complete(conn, rest)  # one statement ends both: the trigger runs for each, one notice is written
    [notice] = notices(conn, job_id)
    ended = reads.fetch(conn, job_reads.job_state(job_id))
    assert (notice["status"], notice["task_id"], notice["task_attempt"], notice["error"], notice["url"]) == (
        "completed", None, None, None, URL)
    assert notice["finished_at"] == ended.finished_at
    # No task of the job has a notice of its own.
    assert conn.execute("SELECT count(*) AS n FROM qqueue.webhook_deliveries").fetchone()["n"] == 1


def test_a_failed_job_says_its_first_failed_parts_error(conn):
    job_id = queue_job(conn, 3)
    tasks = claim_all(conn, job_id)
    complete(conn, tasks[:1])
    q.fail_many(conn, worker_id=WORKER, failed=[
        q.Failure(id=t.id, attempt=t.attempt, error={"type": "Boom", "message": f"part {i}"}, retry_delay_s=None)
        for i, t in enumerate(tasks[1:], 1)])
    [notice] = notices(conn, job_id)
    assert notice["status"] == "failed" and notice["error"]["message"] == "part 1"


def test_two_transactions_ending_a_jobs_last_two_tasks_at_once_write_exactly_one_notice(conn, db_url):
    job_id = queue_job(conn, 2)
    one, two = claim_all(conn, job_id)
    with db.connection(db_url) as first, db.connection(db_url) as second:
        [first_pid] = first.execute("SELECT pg_backend_pid()").fetchone() or [None]
        with first.transaction():
            complete(first, [one])  # sees the other task running: no notice
            finisher = threading.Thread(target=complete, args=(second, [two]))
            finisher.start()
            # The second waits for the first to commit (without the lock, it would see this one's task running
            # too, and neither would announce the job).
            wait_until(lambda: conn.execute(
                "SELECT count(*) AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = current_database() "
                "AND l.pid <> %s", (first_pid,)).fetchone()["n"] == 1)
            assert notices(conn, job_id) == []
        finisher.join(30)
        assert not finisher.is_alive()
    [notice] = notices(conn, job_id)
    assert notice["status"] == "completed"


def test_a_job_reopened_by_a_retry_is_announced_again_when_it_ends_again(conn):
    job_id = queue_job(conn, 2)
    done, failing = claim_all(conn, job_id)
    complete(conn, [done])
    q.fail_many(conn, worker_id=WORKER, failed=[q.Failure(id=failing.id, attempt=failing.attempt,
                                                          error={"type": "Boom", "message": "no"}, retry_delay_s=None)])
    q.retry_many(conn, q.RetryFilter(ids=[failing.id]), note="again")
    assert [n["status"] for n in notices(conn, job_id)] == ["failed"]
    complete(conn, claim_all(conn, job_id))
    first, second = notices(conn, job_id)
    assert (first["status"], second["status"]) == ("failed", "completed")
    assert second["finished_at"] > first["finished_at"]


def test_a_job_without_a_callback_is_never_announced_and_a_deleted_job_takes_its_notices(conn):
    quiet = queue_job(conn, 2, callback_url=None)
    assert conn.execute("SELECT count(*) AS n FROM qqueue.tasks WHERE job_id = %s AND job_callback IS NOT NULL",
                        (quiet,)).fetchone()["n"] == 0
    complete(conn, claim_all(conn, quiet))
    assert notices(conn, quiet) == []
    loud = queue_job(conn, 1)
    complete(conn, claim_all(conn, loud))
    assert len(notices(conn, loud)) == 1
    conn.execute("DELETE FROM qqueue.jobs WHERE id = %s", (loud,))
    assert notices(conn, loud) == []


def test_a_jobs_callback_url_is_checked_by_the_database_too(conn):
    with pytest.raises(psycopg.errors.CheckViolation, match="jobs_callback_url_check"):
        queue_job(conn, 1, callback_url="ftp://example.com/")
