"""Retrying failed and cancelled tasks: POST /tasks/{id}/retry, POST /tasks/retry and `qqueue retry`, through a
real API process and worker on real PostgreSQL (API keys off; tenants and roles are in test_tenants.py).

The module shares test_api's server, worker (on the 'default' queue) and database; tasks that must stay put
live in idle queues of their own.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import psycopg
import pytest

from tests.conftest import REPO, wait_until
from tests.e2e.api_support import ApiServer
from tests.e2e.test_api import api, assert_error, get, idle_queue, module_db, sql, submit, worker  # noqa: F401

pytestmark = pytest.mark.slow


def history(task: dict[str, Any]) -> list[tuple[str, int]]:
    return [(h["status"], h["attempt"]) for h in task["status_history"]]


def events(sql: psycopg.Connection[Any]) -> int:  # noqa: F811
    return sql.execute("SELECT count(*) FROM qqueue.task_events").fetchone()[0]


def violations(sql: psycopg.Connection[Any], *task_ids: str) -> list[Any]:  # noqa: F811
    return sql.execute("SELECT task_id, violation FROM qqueue.invariant_violations WHERE task_id = ANY(%s::uuid[])",
                       (list(task_ids),)).fetchall()


def cancelled_tasks(api: ApiServer, queue: str, n: int, **body: Any) -> list[str]:  # noqa: F811
    ids = [submit(api, {"kind": "noop", "queue": queue, **body})["task_id"] for _ in range(n)]
    for task_id in ids:
        assert api.client.post(f"/tasks/{task_id}/cancel").json()["status"] == "cancelled"
    return ids


def test_a_failed_task_retried_runs_again_and_its_history_keeps_both_attempts(api, worker, sql):  # noqa: F811
    task_id = submit(api, {"kind": "fail", "payload": {"message": "flaky backend"}, "max_attempts": 1})["task_id"]
    assert get(api, task_id, wait=30)["status"] == "failed"
    # What failed it is gone (a backend back up): the same task now succeeds.
    sql.execute("UPDATE qqueue.tasks SET kind = 'noop' WHERE id = %s", (task_id,))
    answer = api.client.post(f"/tasks/{task_id}/retry", json={"reason": "backend fixed"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "pending" and answer.json()["previous_status"] == "failed"

    task = wait_until(lambda: (t := get(api, task_id, wait=10))["status"] == "completed" and t, timeout_s=60)
    assert task["error"] is None
    assert (task["attempt"], task["max_attempts"]) == (2, 2)
    assert history(task) == [("pending", 0), ("running", 1), ("failed", 1), ("pending", 1), ("running", 2),
                             ("completed", 2)]
    assert task["status_history"][3]["notes"] == "retried by the API (keys off): backend fixed"
    assert violations(sql, task_id) == []


def test_only_a_failed_or_cancelled_task_can_be_retried(api, worker, sql):  # noqa: F811
    pending = submit(api, {"kind": "noop", "queue": idle_queue()})["task_id"]
    completed = submit(api, {"kind": "noop"})["task_id"]
    assert get(api, completed, wait=30)["status"] == "completed"
    running = submit(api, {"kind": "sleep", "payload": {"seconds": 30}})["task_id"]
    wait_until(lambda: get(api, running)["status"] == "running", timeout_s=30)
    before = events(sql)
    for task_id, status in ((pending, "pending"), (completed, "completed"), (running, "running")):
        assert_error(api.client.post(f"/tasks/{task_id}/retry"), 409,
                     contains=f"is {status}; only a failed or cancelled task can be retried")
    assert_error(api.client.post("/tasks/0190a000-0000-7000-8000-000000000000/retry"), 404, contains="not found")
    assert_error(api.client.post(f"/tasks/{pending}/retry", json={"reason": "", "extra": 1}), 400)
    assert events(sql) == before
    assert api.client.post(f"/tasks/{running}/cancel").status_code == 202


def test_bulk_retry_counts_first_then_retries_only_what_the_filters_match(api, sql):  # noqa: F811
    queue, elsewhere = idle_queue(), idle_queue()
    matching = cancelled_tasks(api, queue, 3, tags=["nightly"])
    other_tag = cancelled_tasks(api, queue, 1, tags=["weekly"])
    other_queue = cancelled_tasks(api, elsewhere, 1, tags=["nightly"])
    body = {"status": ["cancelled"], "queue": queue, "tags": ["nightly"]}
    before = events(sql)

    dry = api.client.post("/tasks/retry", json={**body, "dry_run": True}).json()
    assert (dry["dry_run"], dry["retried"], dry["more"], dry["task_ids"]) == (True, 3, False, matching)
    capped = api.client.post("/tasks/retry", json={**body, "dry_run": True, "limit": 2}).json()
    assert (capped["retried"], capped["more"], capped["task_ids"]) == (2, True, matching[:2])
    assert "more than the limit match" in capped["message"]
    assert events(sql) == before  # a dry run changes nothing
    # Failed is the default status: none of these.
    assert api.client.post("/tasks/retry", json={"queue": queue}).json()["retried"] == 0
    assert_error(api.client.post("/tasks/retry", json={**body, "status": ["pending"]}), 400, contains="status")

    done = api.client.post("/tasks/retry", json={**body, "reason": "rerun"}).json()
    assert (done["dry_run"], done["retried"], done["task_ids"]) == (False, 3, matching)
    statuses = dict(sql.execute("SELECT id::text, status::text FROM qqueue.tasks WHERE id = ANY(%s::uuid[])",
                                (matching + other_tag + other_queue,)).fetchall())
    assert [statuses[t] for t in matching] == ["pending"] * 3
    assert [statuses[t] for t in other_tag + other_queue] == ["cancelled", "cancelled"]
    assert events(sql) == before + 3
    assert violations(sql, *matching) == []
    assert api.client.post("/tasks/retry", json=body).json()["retried"] == 0


def test_retrying_a_task_of_a_job_reopens_the_job(api, sql):  # noqa: F811
    made = api.client.post("/jobs", json={"kind": "estimate", "queue": idle_queue(),
                                          "pubs": [{"qc": "OPENQASM 3.0; qubit q; h q;", "observables": "Z"}]})
    job_id = made.json()["job_id"]
    api.client.post(f"/jobs/{job_id}/cancel")
    job = api.client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["finished_at"] is not None
    [task] = job["tasks"]
    assert api.client.post(f"/tasks/{task['task_id']}/retry").status_code == 200
    job = api.client.get(f"/jobs/{job_id}").json()
    assert (job["status"], job["finished_at"], job["cancel_requested_at"]) == ("pending", None, None)
    assert sql.execute("SELECT count(*) FROM qqueue.invariant_violations WHERE job_id = %s OR task_id = %s",
                       (job_id, task["task_id"])).fetchone()[0] == 0


def test_qqueue_retry_on_the_database_by_id_and_by_filters(api, sql, module_db):  # noqa: F811
    queue = idle_queue()
    first, second = cancelled_tasks(api, queue, 2)

    def qqueue(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "qqueue", *args, "--database-url", module_db], cwd=REPO,
                              capture_output=True, text=True, timeout=60)

    by_id = qqueue("retry", first, "--reason", "by hand")
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout.strip() == f"{first}: queued again (it was cancelled)"
    assert get(api, first)["status_history"][-1]["notes"].endswith(": by hand")
    again = qqueue("retry", first)
    assert again.returncode == 1 and "is pending" in again.stderr and "Traceback" not in again.stderr

    dry = qqueue("retry", "--status", "cancelled", "--queue", queue, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == ["1 tasks would be queued again.", second]
    assert get(api, second)["status"] == "cancelled"
    real = qqueue("retry", "--status", "cancelled", "--queue", queue)
    assert real.returncode == 0 and real.stdout.splitlines()[0] == "1 tasks queued again."
    assert get(api, second)["status"] == "pending"
    refused = qqueue("retry", "--status", "completed", "--queue", queue)
    assert refused.returncode == 1 and "only failed or cancelled" in refused.stderr


def test_the_python_clients_retry_one_task_and_many(api):  # noqa: F811
    import asyncio

    from qqueue.client import AsyncClient, Client

    queue = idle_queue()
    first, second = cancelled_tasks(api, queue, 2)
    with Client(api.url) as client:
        assert client.retry(first, reason="client").previous_status == "cancelled"
        dry = client.retry_many(status="cancelled", queue=queue, dry_run=True)
        assert (dry.dry_run, dry.retried, [str(t) for t in dry.task_ids]) == (True, 1, [second])

    async def retry_the_rest() -> int:
        async with AsyncClient(api.url) as client:
            return (await client.retry_many(status=["cancelled"], queue=queue)).retried

    assert asyncio.run(retry_the_rest()) == 1
    assert get(api, second)["status"] == "pending"
