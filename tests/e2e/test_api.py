"""The HTTP API as clients see it: a real uvicorn process, a real worker, real PostgreSQL.

One API server, one worker and one database serve the whole module (starting them is most of the cost);
tests stay independent by putting their tasks in queues of their own. Tasks in a queue no worker consumes
("idle-…") stay pending for as long as a test needs. The database-outage test has its own server and
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from qqueue.store import db, migrate
from tests.conftest import WorkerProcess, serving_worker, wait_until
from tests.e2e.api_support import BELL, ApiServer, private_postgres

pytestmark = pytest.mark.slow

FINISHED = {"completed", "failed", "cancelled"}


# --- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_db(server_url: str, template_db: str) -> Iterator[str]:
    """A fresh migrated database shared by this module's tests."""
    name = f"qqueue_api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'.encode())
    yield make_conninfo(server_url, dbname=name)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                      "AND pid <> pg_backend_pid()", (name,))
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"'.encode())


@pytest.fixture(scope="module")
def sql(module_db: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection for checking what the API wrote."""
    with db.connection(module_db) as conn:
        yield conn


@pytest.fixture(scope="module")
def api(module_db: str) -> Iterator[ApiServer]:
    server = ApiServer(module_db)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(module_db: str, sql: psycopg.Connection[Any]) -> Iterator[WorkerProcess]:
    """One worker on the 'default' queue (so the idle-… queues of other tests are never consumed)."""
    with serving_worker(module_db, sql, "--concurrency", "2") as proc:
        yield proc


def idle_queue() -> str:
    """A queue of the test's own that no worker consumes."""
    return f"idle-{uuid.uuid4().hex[:10]}"


def submit(api: ApiServer, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = api.client.post("/tasks", json=body, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


def get(api: ApiServer, task_id: str, **params: Any) -> dict[str, Any]:
    response = api.client.get(f"/tasks/{task_id}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def finished(api: ApiServer, task_id: str) -> dict[str, Any] | None:
    task = get(api, task_id)
    return task if task["status"] in FINISHED else None


def assert_error(response: httpx.Response, status: int, *, contains: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "error"
    assert contains.lower() in body["message"].lower(), body
    assert "Traceback" not in response.text
    return body


# --- the seed flow ---------------------------------------------------------------------------------------------


def test_bell_circuit_submitted_with_the_minimal_body_completes_with_counts(api, worker):
    response = api.client.post("/tasks", json={"qc": BELL, "shots": 100})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending" and body["message"] == "Task submitted successfully."
    assert response.headers["location"] == f"/tasks/{body['task_id']}"
    task = wait_until(lambda: finished(api, body["task_id"]), timeout_s=60)
    assert task["status"] == "completed", task
    counts = task["result"]["counts"]
    assert sum(counts.values()) == 100
    assert set(counts) <= {"00", "11"}
    assert task["profile"] is not None


def test_circuit_that_does_not_parse_is_rejected_with_its_position(api):
    response = api.client.post("/tasks", json={"qc": "OPENQASM 2.0;\nqreg q[2];\nfoo q[0];\n", "shots": 10})
    body = assert_error(response, 422)
    assert (body["error"]["code"], body["error"]["line"]) == ("undefined_gate", 3)
    assert "'foo' is not defined" in body["error"]["message"]


def test_seeded_repeat_is_answered_from_the_cache_and_says_so(api, worker):
    def run() -> dict:
        response = api.client.post("/tasks", json={"qc": BELL, "shots": 64, "options": {"seed": 9}})
        assert response.status_code == 201, response.text
        return wait_until(lambda: finished(api, response.json()["task_id"]), timeout_s=60)

    first, second = run(), run()
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["cached_from"] == first["task_id"] and second["cache_key"] == first["cache_key"]
    assert second["result"] == first["result"]


def test_submitted_task_runs_and_reports_its_history_timings_and_attempts(api, worker):
    response = api.client.post("/tasks", json={"kind": "noop", "tags": ["smoke"], "metadata": {"run": 1}})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"task_id", "status", "message", "submitted_at", "correlation_id"}
    assert body["message"] == "Task submitted successfully." and body["status"] == "pending"
    assert response.headers["location"] == f"/tasks/{body['task_id']}"
    assert response.headers["x-correlation-id"] == body["correlation_id"]
    task = wait_until(lambda: finished(api, body["task_id"]), timeout_s=30)
    assert task["status"] == "completed"
    assert [h["status"] for h in task["status_history"]] == ["pending", "running", "completed"]
    assert task["status_history"][1]["worker_id"] == task["worker_id"] is not None
    assert (task["attempt"], task["max_attempts"]) == (1, 3)
    assert task["queue_position"] is None
    assert task["tags"] == ["smoke"] and task["metadata"] == {"run": 1}
    timings = task["timings"]
    assert timings["queued_s"] >= 0 and timings["running_s"] >= 0
    assert "exec_s" in timings["reported"]
    assert datetime.fromisoformat(task["created_at"]) == datetime.fromisoformat(body["submitted_at"])


def test_long_poll_answers_within_a_second_of_the_task_ending(api, worker):
    task_id = submit(api, {"kind": "sleep", "payload": {"seconds": 1.0}})["task_id"]
    response = api.client.get(f"/tasks/{task_id}", params={"wait": 30})
    answered_at = datetime.now(UTC)
    task = response.json()
    assert task["status"] == "completed", task
    # The backstop re-check runs every 5 s; only the notification can answer this fast.
    assert answered_at - datetime.fromisoformat(task["finished_at"]) < timedelta(seconds=1)


def test_long_poll_on_a_task_that_does_not_end_answers_when_the_wait_runs_out(api):
    task_id = submit(api, {"kind": "noop", "queue": idle_queue()})["task_id"]
    started = time.monotonic()
    task = get(api, task_id, wait=0.3)
    assert task["status"] == "pending"
    assert time.monotonic() - started >= 0.3
    assert_error(api.client.get(f"/tasks/{task_id}", params={"wait": 61}), 400, contains="wait")
    # wait=0 is no wait at all: the task as it is now.
    assert api.client.get(f"/tasks/{task_id}", params={"wait": 0}).json()["status"] == "pending"
    assert_error(api.client.get(f"/tasks/{task_id}", params={"wait": -1}), 400, contains="wait")


def test_stopping_the_api_answers_pending_long_polls_at_once(module_db, api):
    task_id = submit(api, {"kind": "noop", "queue": idle_queue()})["task_id"]
    server = ApiServer(module_db)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            poll = pool.submit(httpx.get, f"{server.url}/tasks/{task_id}", params={"wait": 60}, timeout=90)
            wait_until(lambda: server.client.get("/health").json()["long_polls"] == 1, timeout_s=10)
            server.proc.terminate()
            response = poll.result(timeout=30)  # not cut off when the graceful period ends: answered
        assert response.status_code == 200 and response.json()["status"] == "pending"
        # uvicorn re-raises the SIGTERM it caught once shut down cleanly (so the parent sees the cause).
        assert server.proc.wait(30) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.output()
    finally:
        server.stop()


def test_waiters_wake_on_ids_recheck_on_star_and_recheck_after_the_listen_connection_is_lost(module_db, sql):
    from qqueue.api.waiters import FinishedWaiters

    rechecked: list[list[uuid.UUID]] = []

    async def connect() -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(module_db, autocommit=True, application_name="waiters-test")

    async def recheck(ids: list[uuid.UUID]) -> list[uuid.UUID]:
        rechecked.append(ids)
        return ids  # as if every waited-on task had ended

    def notify(payload: str) -> None:
        sql.execute("SELECT pg_notify('qqueue_finished_v1', %s)", (payload,))

    async def scenario() -> None:
        waiters = FinishedWaiters(connect, recheck, backstop_s=60)  # the backstop must not be what answers
        waiters.start()
        await asyncio.wait_for(waiters.listening.wait(), 10)
        a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        with waiters.watch(a) as fa, waiters.watch(b) as fb:
            notify(f"{uuid.uuid4()},{a}")
            await asyncio.wait_for(fa, 10)
            assert not fb.done() and rechecked == []
            notify("*")
            await asyncio.wait_for(fb, 10)
            assert rechecked == [[b]]
        with waiters.watch(c) as fc:
            # The LISTEN session dies (a restart, a network cut): reconnect, and re-check what was missed.
            sql.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                        ("waiters-test",))
            await asyncio.wait_for(fc, 10)
            assert rechecked[-1] == [c]
        assert waiters.waiting == 0
        await waiters.stop()

    asyncio.run(scenario())


# --- errors ----------------------------------------------------------------------------------------------------
# Malformed and hostile requests (bad JSON, wrong types, unknown fields, limits, bodies over the size limit...) are
# one case each in test_hostile.py, which also checks that they write nothing.


def test_unknown_task_is_404_and_a_malformed_id_is_400(api):
    response = api.client.get(f"/tasks/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json() == {"status": "error", "message": "Task not found."}
    assert_error(api.client.post(f"/tasks/{uuid.uuid4()}/cancel"), 404, contains="not found")
    for bad in ("abc", "1234", "01a203f3-8f02-7000-9e06-4e16bd2869dz", "%00"):
        assert_error(api.client.get(f"/tasks/{bad}"), 400, contains="uuid")
        assert_error(api.client.post(f"/tasks/{bad}/cancel"), 400, contains="uuid")
    assert_error(api.client.get("/no-such-route"), 404)


def test_requests_that_cannot_be_queued_are_422_with_a_structured_error(api):
    body = assert_error(api.client.post("/tasks", json={"shots": 100}), 422, contains="qc")
    assert body["error"]["code"] == "missing_circuit"
    run_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = assert_error(api.client.post("/tasks", json={"kind": "noop", "run_at": run_at, "delay_s": 5}), 422)
    assert body["error"]["code"] == "invalid_request"


def test_an_unexpected_error_is_a_bare_500_with_the_correlation_id_and_is_logged(caplog):
    from litestar import Litestar, get
    from litestar.params import FromPath
    from litestar.testing import TestClient

    from qqueue.api import correlation
    from qqueue.api.errors import EXCEPTION_HANDLERS

    @get("/tasks/{task_id:str}")
    async def broken(task_id: FromPath[str]) -> None:
        raise RuntimeError("secret internals")

    app = Litestar([broken], exception_handlers=EXCEPTION_HANDLERS, before_send=[correlation.echo_header],
                   logging_config=None)
    with caplog.at_level(logging.ERROR, logger="qqueue.api"), TestClient(app) as client:
        response = client.get("/tasks/t-1", headers={"X-Correlation-ID": "corr-500"})
    assert response.status_code == 500
    assert response.json() == {"status": "error", "message": "Internal server error.", "correlation_id": "corr-500"}
    assert "secret" not in response.text and response.headers["x-correlation-id"] == "corr-500"
    [record] = [r for r in caplog.records if r.name == "qqueue.api"]
    assert (record.correlation_id, record.task_id) == ("corr-500", "t-1") and record.exc_info


# --- idempotency and correlation -------------------------------------------------------------------------------


def count_key(sql: psycopg.Connection[Any], pattern: str) -> int:
    return sql.execute("SELECT count(*) FROM qqueue.tasks WHERE idempotency_key LIKE %s", (pattern,)).fetchone()[0]


def test_same_idempotency_key_and_body_returns_the_same_task_and_a_different_body_is_409(api, sql):
    key = f"key-{uuid.uuid4()}"
    body = {"kind": "noop", "queue": idle_queue(), "tags": ["a"], "metadata": {"x": 1, "y": 2}}
    first = api.client.post("/tasks", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    # The same request, spelt differently (key order, spacing, a default written out).
    again = api.client.post("/tasks", headers={"Idempotency-Key": key, "content-type": "application/json"},
                            content=json.dumps({"metadata": {"y": 2, "x": 1}, "tags": ["a"], "queue": body["queue"],
                                                "kind": "noop", "priority": 0}, indent=2))
    assert again.status_code == 200, again.text
    assert again.json()["task_id"] == first.json()["task_id"]
    assert again.json()["submitted_at"] == first.json()["submitted_at"]
    conflict = api.client.post("/tasks", json={**body, "tags": ["b"]}, headers={"Idempotency-Key": key})
    assert_error(conflict, 409, contains="idempotency")
    assert count_key(sql, key) == 1


def test_concurrent_retries_with_one_idempotency_key_create_one_task(api, sql):
    key = f"race-{uuid.uuid4()}"
    body = {"kind": "noop", "queue": idle_queue()}

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=api.url, timeout=30) as client:
            return client.post("/tasks", json=body, headers={"Idempotency-Key": key})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json()["task_id"] for r in responses}) == 1
    assert count_key(sql, key) == 1


def test_correlation_id_is_honoured_echoed_stored_and_logged(api):
    cid = f"client-{uuid.uuid4()}"
    response = api.client.post("/tasks", json={"kind": "noop", "queue": idle_queue()},
                               headers={"X-Correlation-ID": cid})
    assert response.headers["x-correlation-id"] == cid and response.json()["correlation_id"] == cid
    task_id = response.json()["task_id"]
    assert get(api, task_id)["correlation_id"] == cid

    def logged() -> bool:
        lines = [json.loads(line) for line in api.output().splitlines() if line.startswith("{")]
        return any(line.get("task_id") == task_id and line.get("correlation_id") == cid for line in lines)

    wait_until(logged, timeout_s=10)
    # Unusable ids (too long, control characters) are replaced by a fresh one.
    for bad in ("x" * 256, "tab\there"):
        response = api.client.get(f"/tasks/{task_id}", headers={"X-Correlation-ID": bad})
        generated = response.headers["x-correlation-id"]
        assert generated != bad and len(generated) == 32 and int(generated, 16) >= 0
    # Every answer carries one, errors and unknown routes included.
    assert api.client.get("/nowhere").headers["x-correlation-id"]
    assert api.client.get(f"/tasks/{uuid.uuid4()}", headers={"X-Correlation-ID": "c-404"}).headers[
        "x-correlation-id"] == "c-404"


# --- batch -----------------------------------------------------------------------------------------------------


def test_batch_queues_valid_items_in_order_and_reports_invalid_ones_by_index(api, worker):
    response = api.client.post("/tasks/batch", json={"tasks": [
        {"kind": "noop"}, {"kind": "simulate"}, {"kind": "noop", "priority": 5},
    ]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["queued"], body["rejected"]) == ("partial", 2, 1)
    assert [i["index"] for i in body["items"]] == [0, 1, 2]
    assert body["items"][1]["error"]["code"] == "missing_circuit" and "task_id" not in body["items"][1]
    for item in (body["items"][0], body["items"][2]):
        task = wait_until(lambda i=item: finished(api, i["task_id"]), timeout_s=30)
        assert task["status"] == "completed" and task["correlation_id"] == body["correlation_id"]
    all_bad = api.client.post("/tasks/batch", json={"tasks": [{"kind": "simulate"}]})
    assert all_bad.status_code == 422 and all_bad.json()["items"][0]["error"]["code"] == "missing_circuit"


def test_a_batch_item_that_is_no_valid_submission_is_refused_alone(api, sql):
    queue = idle_queue()
    before = sql.execute("SELECT count(*) FROM qqueue.tasks WHERE queue = %s", (queue,)).fetchone()[0]
    response = api.client.post("/tasks/batch", json={"tasks": [
        {"kind": "noop", "queue": queue}, {"kind": "noop", "queue": queue, "shots": "many"}, 7,
        {"kind": "noop", "queue": queue, "unknown": True}, {"kind": "noop", "queue": queue, "priority": 1},
    ]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["queued"], body["rejected"]) == ("partial", 2, 3)
    messages = {i["index"]: i["error"]["message"] for i in body["items"] if "error" in i}
    assert messages == {1: "Invalid request: tasks[1].shots: Expected `int`, got `str`",
                        2: "Invalid request: tasks[2]: Expected `object`, got `int`",
                        3: "Invalid request: tasks[3]: Object contains unknown field `unknown`"}
    assert sql.execute("SELECT count(*) FROM qqueue.tasks WHERE queue = %s", (queue,)).fetchone()[0] == before + 2


def test_a_batch_of_a_thousand_is_one_statement_and_a_thousand_and_one_is_refused(api, sql):
    queue = idle_queue()
    response = api.client.post("/tasks/batch", json={"tasks": [{"kind": "noop", "queue": queue, "metadata": {"i": i}}
                                                               for i in range(1000)]})
    assert response.status_code == 201, response.text
    ids = [item["task_id"] for item in response.json()["items"]]
    rows = sql.execute("SELECT id::text, (metadata->>'i')::int, created_at FROM qqueue.tasks WHERE queue = %s",
                       (queue,)).fetchall()
    assert {r[0]: r[1] for r in rows} == {task_id: i for i, task_id in enumerate(ids)}
    assert len({r[2] for r in rows}) == 1  # one statement: one transaction timestamp
    too_many = {"tasks": [{"kind": "noop", "queue": queue}] * 1001}
    assert_error(api.client.post("/tasks/batch", json=too_many), 400, contains="tasks")


def test_replayed_batch_returns_the_same_ids_and_a_changed_one_is_409_keeping_nothing(api, sql):
    key, queue = f"batch-{uuid.uuid4()}", idle_queue()
    body = {"tasks": [{"kind": "noop", "queue": queue}, {"kind": "noop", "queue": queue, "priority": 3}]}
    first = api.client.post("/tasks/batch", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    again = api.client.post("/tasks/batch", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 200
    assert [i["task_id"] for i in again.json()["items"]] == [i["task_id"] for i in first.json()["items"]]
    assert [i["created"] for i in again.json()["items"]] == [False, False]
    changed = {"tasks": [*body["tasks"], {"kind": "noop", "queue": queue}]}
    assert_error(api.client.post("/tasks/batch", json=changed, headers={"Idempotency-Key": key}), 409)
    assert sql.execute("SELECT count(*) FROM qqueue.tasks WHERE queue = %s", (queue,)).fetchone()[0] == 2


SWEEP = 'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float a;\nqubit q;\nbit c;\nrx(a) q;\nc = measure q;\n'


def test_a_batch_replayed_with_its_refused_items_spelt_otherwise_is_the_same_request(api, sql):
    """A batch is hashed over its items as decoded, refused ones too, however their JSON is spelt; only the
    inputs of accepted items are read back from intake (the API keeps inputs as text)."""
    key, queue = f"batch-{uuid.uuid4()}", idle_queue()
    good = f'{{"kind": "sample", "queue": "{queue}", "qc": {json.dumps(SWEEP)}, "parameter_values": [[0.1], [0.2]]}}'
    refused_wire = '{"kind": "noop", "shots": -1, "parameter_values": [1, 2]}'
    refused_intake = '{"kind": "sample", "qc": "qubit q;", "parameter_values": [[0.1, 0.2]]}'
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    first = api.client.post("/tasks/batch", content=f'{{"tasks": [{good}, {refused_wire}, {refused_intake}]}}',
                            headers=headers)
    assert first.status_code == 201, first.text
    assert [("task_id" in i) for i in first.json()["items"]] == [True, False, False]
    respelt = [text.replace(", ", ",").replace(": ", ":") for text in (good, refused_wire, refused_intake)]
    again = api.client.post("/tasks/batch", content='{ "tasks" : [ ' + " , ".join(respelt) + " ] }",
                            headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["items"][0]["task_id"] == first.json()["items"][0]["task_id"]
    other = refused_intake.replace("0.2", "0.3")
    assert_error(api.client.post("/tasks/batch", content=f'{{"tasks": [{good}, {refused_wire}, {other}]}}',
                                 headers=headers), 409)
    assert sql.execute("SELECT count(*) FROM qqueue.tasks WHERE queue = %s", (queue,)).fetchone()[0] == 1


def test_inputs_past_a_double_with_an_idempotency_key_are_refused_or_queued_as_without_one(api):
    headers = {"Content-Type": "application/json"}
    body = f'{{"kind": "sample", "qc": {json.dumps(SWEEP)}, "parameter_values": [[1e999]]}}'
    for key in (None, f"past-{uuid.uuid4()}"):
        keyed = {**headers, "Idempotency-Key": key} if key else headers
        assert_error(api.client.post("/tasks", content=body, headers=keyed), 422, contains="Number out of range")
    # A kind without a circuit does not read its inputs: queued with a key as without one.
    noop = f'{{"kind": "noop", "queue": "{idle_queue()}", "parameter_values": [1e999]}}'
    key = f"past-{uuid.uuid4()}"
    first = api.client.post("/tasks", content=noop, headers={**headers, "Idempotency-Key": key})
    assert first.status_code == 201, first.text
    again = api.client.post("/tasks", content=noop, headers={**headers, "Idempotency-Key": key})
    assert again.status_code == 200 and again.json()["task_id"] == first.json()["task_id"]


def test_a_batch_item_not_utf8_or_past_a_double_is_refused_clearly(api):
    bad_bytes = b'{"tasks": [{"kind": "noop", "queue": "q\xff"}]}'
    assert_error(api.client.post("/tasks/batch", content=bad_bytes, headers={"Content-Type": "application/json"}),
                 400, contains="UTF-8")
    past = b'{"tasks": [{"kind": "noop"}, {"kind": "noop", "metadata": {"x": [1, 1e999]}}]}'
    answer = api.client.post("/tasks/batch", content=past, headers={"Content-Type": "application/json"})
    assert answer.status_code == 201, answer.text
    error = answer.json()["items"][1]["error"]
    assert "Number out of range" in error["message"] and "$.tasks[1].metadata" in error["message"], error


# --- reading, listing, cancelling ------------------------------------------------------------------------------


def test_queue_position_is_the_exact_claim_order_among_due_tasks(api):
    queue = idle_queue()
    a = submit(api, {"kind": "noop", "queue": queue})["task_id"]
    b = submit(api, {"kind": "noop", "queue": queue})["task_id"]
    c = submit(api, {"kind": "noop", "queue": queue, "priority": 5})["task_id"]
    later = submit(api, {"kind": "noop", "queue": queue, "delay_s": 3600})["task_id"]
    low = submit(api, {"kind": "noop", "queue": queue, "priority": -1})["task_id"]
    submit(api, {"kind": "noop", "queue": idle_queue(), "priority": 100})  # another queue: not counted
    positions = {name: get(api, task_id)["queue_position"]
                 for name, task_id in {"a": a, "b": b, "c": c, "later": later, "low": low}.items()}
    # c, a, b are due and claimed in that order; the not-yet-due task has no place in the line yet.
    assert positions == {"c": 1, "a": 2, "b": 3, "low": 4, "later": None}
    assert get(api, later)["message"] == "Task is scheduled and waits for its run_at."
    assert api.client.post(f"/tasks/{c}/cancel").status_code == 200
    assert get(api, a)["queue_position"] == 1
    assert get(api, c)["queue_position"] is None


def test_list_filters_combine_and_pages_follow_the_cursor_without_gaps(api):
    queue = idle_queue()
    made = []
    for i in range(6):
        tags = ["a", "b"] if i % 3 == 0 else ["a"]
        made.append(submit(api, {"kind": "sleep" if i == 5 else "noop", "queue": queue, "tags": tags})["task_id"])
    batch = api.client.post("/tasks/batch", json={"tasks": [{"kind": "noop", "queue": queue}] * 5}).json()
    made += [item["task_id"] for item in batch["items"]]
    assert api.client.post(f"/tasks/{made[1]}/cancel").status_code == 200

    def listed(**params: Any) -> list[str]:
        response = api.client.get("/tasks", params={"queue": queue, **params})
        assert response.status_code == 200, response.text
        return [item["task_id"] for item in response.json()["items"]]

    everything = listed(limit=500)
    # Newest first; the batch shares one created_at and is ordered by id.
    assert everything == sorted(made, key=lambda t: (datetime.fromisoformat(get(api, t)["created_at"]), t),
                                reverse=True)
    assert set(listed(tags=["a", "b"])) == {made[0], made[3]}
    assert listed(kind="sleep") == [made[5]]
    assert listed(status="cancelled") == [made[1]]
    assert set(listed(status=["pending", "cancelled"])) == set(made)
    pivot = get(api, made[2])["created_at"]
    assert set(listed(created_after=pivot)) == set(made[3:])
    assert set(listed(created_before=pivot)) == set(made[:2])

    pages, cursor = [], None
    while True:
        params = {"queue": queue, "limit": 2, **({"cursor": cursor} if cursor else {})}
        response = api.client.get("/tasks", params=params)
        page = response.json()
        pages.append([item["task_id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [t for page in pages for t in page] == everything
    assert all(len(page) == 2 for page in pages[:-1])
    assert_error(api.client.get("/tasks", params={"cursor": "not-a-cursor"}), 400, contains="cursor")
    assert_error(api.client.get("/tasks", params={"limit": 501}), 400, contains="limit")
    assert_error(api.client.get("/tasks", params={"status": "bogus"}), 400, contains="status")


def test_cancel_stops_pending_at_once_running_on_request_and_refuses_finished(api, worker):
    pending = submit(api, {"kind": "noop", "queue": idle_queue()})["task_id"]
    response = api.client.post(f"/tasks/{pending}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert [h["status"] for h in get(api, pending)["status_history"]] == ["pending", "cancelled"]
    assert_error(api.client.post(f"/tasks/{pending}/cancel"), 409, contains="already cancelled")

    running = submit(api, {"kind": "sleep", "payload": {"seconds": 60}})["task_id"]
    wait_until(lambda: get(api, running)["status"] == "running", timeout_s=30)
    response = api.client.post(f"/tasks/{running}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancel_requested"
    task = get(api, running, wait=30)
    assert task["status"] == "cancelled" and task["cancel_requested_at"] is not None

    done = submit(api, {"kind": "noop"})["task_id"]
    wait_until(lambda: finished(api, done), timeout_s=30)
    assert_error(api.client.post(f"/tasks/{done}/cancel"), 409, contains="already completed")


# --- operations ------------------------------------------------------------------------------------------------


def test_health_queues_and_workers_describe_the_system(api, worker):
    queue = idle_queue()
    submit(api, {"kind": "noop", "queue": queue})
    health = api.client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert (body["status"], body["database"], body["schema"]) == ("healthy", "ok", "current")
    assert (body["database_status"], body["queue_status"]) == ("connected", "connected")
    assert body["schema_version"] == body["expected_schema_version"] == migrate.latest_version()
    assert body["live_workers"] >= 1 and body["queue_depth"] >= 1
    stats = {q["queue"]: q for q in api.client.get("/queues").json()}
    assert stats[queue]["pending"] == stats[queue]["due"] == 1
    workers = api.client.get("/workers").json()
    assert worker.pid in {w["pid"] for w in workers}
    assert all(w["queues"] == ["default"] and w["heartbeat_age_s"] >= 0 for w in workers)


def test_openapi_document_and_interactive_docs_are_served(api):
    document = api.client.get("/schema/openapi.json")
    assert document.status_code == 200
    schema = document.json()
    assert {"/tasks", "/tasks/batch", "/tasks/{task_id}", "/tasks/{task_id}/cancel", "/health", "/queues",
            "/workers"} <= set(schema["paths"])
    assert "TaskSubmission" in schema["components"]["schemas"]
    assert "qc" in schema["components"]["schemas"]["TaskSubmission"]["properties"]
    docs = api.client.get("/schema")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]


def test_health_is_503_while_postgres_is_down_and_200_again_without_restarting_the_api():
    with private_postgres() as pg:
        with db.connection(pg.url) as conn:
            migrate.migrate(conn)
        server = ApiServer(pg.url)
        try:
            pid = server.proc.pid
            assert submit(server, {"kind": "noop"})["status"] == "pending"
            pg.stop()
            wait_until(lambda: server.client.get("/health").status_code == 503, timeout_s=30)
            body = server.client.get("/health").json()
            assert (body["status"], body["database"]) == ("unhealthy", "unreachable")
            assert (body["database_status"], body["queue_status"]) == ("disconnected", "disconnected")
            assert_error(server.client.post("/tasks", json={"kind": "noop"}), 503, contains="database")
            assert_error(server.client.get(f"/tasks/{uuid.uuid4()}"), 503)
            pg.start()
            wait_until(lambda: server.client.get("/health").status_code == 200, timeout_s=45, interval_s=0.2)
            task_id = submit(server, {"kind": "noop"})["task_id"]
            assert get(server, task_id)["status"] == "pending"
            assert server.proc.poll() is None and server.proc.pid == pid
        finally:
            server.stop()
