"""API keys and tenants through a real API process started with `--auth`, on real PostgreSQL.

One server and one database serve the module; every test makes tenants of its own, so their tasks, limits and
token buckets never meet. Bursts are 5 submissions here (QQUEUE_API_TENANT_SUBMIT_BURST) so the rate limit
can be reached with a handful of requests.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from qqueue.store import keys
from tests.conftest import REPO
from tests.e2e.api_support import BELL, ApiServer
from tests.e2e.test_api import assert_error, idle_queue, module_db, sql  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

BURST = 5


@pytest.fixture(scope="module")
def api(module_db: str) -> Iterator[ApiServer]:  # noqa: F811 (a keyed server, not test_api's)
    server = ApiServer(module_db, args=("--auth",), env={"QQUEUE_API_TENANT_SUBMIT_BURST": str(BURST)})
    yield server
    server.stop()


def tenant_key(sql: psycopg.Connection[Any], **limits: Any) -> tuple[str, dict[str, str]]:  # noqa: F811
    """A new tenant with one key: (tenant name, the headers that authenticate as it)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    made = keys.create(sql, name, label="test", **limits)
    return name, {"Authorization": f"Bearer {made.key}"}


def counts(sql: psycopg.Connection[Any]) -> tuple[int, int]:  # noqa: F811
    return sql.execute("SELECT (SELECT count(*) FROM qqueue.tasks), (SELECT count(*) FROM qqueue.task_events)"
                       ).fetchone()


@contextlib.contextmanager
def live_worker(module_db: str, sql: psycopg.Connection[Any]) -> Iterator[None]:  # noqa: F811
    """A worker of one slot, live (heartbeating) while the block runs."""
    from tests.conftest import WorkerProcess, live_workers, wait_until

    worker = WorkerProcess(module_db, "--concurrency", "1")
    try:
        wait_until(lambda: live_workers(sql) >= 1, timeout_s=60)
        yield
    finally:
        worker.kill_all()
        worker.log.close()


def submit(api: ApiServer, headers: dict[str, str], **body: Any) -> httpx.Response:
    return api.client.post("/tasks", json={"kind": "noop", "queue": body.pop("queue", None) or idle_queue(), **body},
                           headers=headers)


def test_every_endpoint_but_health_and_the_docs_needs_a_valid_key(api, sql):  # noqa: F811
    name, good = tenant_key(sql)
    prefix = good["Authorization"].split("_")[1]
    wrong_secret = f"Bearer qq_{prefix}_{'A' * 43}"
    before = counts(sql)
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer not-a-key"}, {"Authorization": f"Bearer qq_{'a' * 12}_{'A' * 43}"},
                    {"Authorization": wrong_secret}):
        for method, path in (("POST", "/tasks"), ("POST", "/tasks/batch"), ("GET", "/tasks"),
                             ("GET", f"/tasks/{uuid.uuid4()}"), ("POST", f"/tasks/{uuid.uuid4()}/cancel"),
                             ("GET", "/queues"), ("GET", "/workers"), ("POST", "/jobs"), ("GET", "/jobs"),
                             ("GET", f"/jobs/{uuid.uuid4()}"), ("POST", f"/jobs/{uuid.uuid4()}/cancel")):
            response = api.client.request(method, path, headers=headers,
                                          json={"kind": "noop"} if method == "POST" else None)
            body = assert_error(response, 401, contains="API key")
            assert response.headers["www-authenticate"].startswith("Bearer"), (method, path)
            # Every refusal reads the same: a wrong secret says nothing a missing key would not.
            assert body["message"] == "A valid API key is required: send `Authorization: Bearer <key>`."
    assert counts(sql) == before
    # /health answers anyone, so it says up or down and nothing about queues or workers.
    health = api.client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    assert {k: health.json()[k] for k in ("live_workers", "queue_depth", "long_polls")} == {
        "live_workers": None, "queue_depth": None, "long_polls": None}
    schemes = api.client.get("/schema/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["apiKey"]["scheme"] == "bearer"
    assert submit(api, good).status_code == 201


def test_a_tenant_sees_lists_and_cancels_only_its_own_tasks(api, sql):  # noqa: F811
    a, as_a = tenant_key(sql)
    b, as_b = tenant_key(sql)
    queue = idle_queue()
    mine = submit(api, as_a, queue=queue, tags=["shared-tag"]).json()["task_id"]
    assert sql.execute("SELECT tenant FROM qqueue.tasks WHERE id = %s", (mine,)).fetchone()[0] == a

    # To b, a's task does not exist: the same 404 as an id nobody holds, for reading, waiting and cancelling.
    assert_error(api.client.get(f"/tasks/{mine}", headers=as_b), 404, contains="not found")
    assert_error(api.client.get(f"/tasks/{mine}", params={"wait": 0.2}, headers=as_b), 404)
    assert_error(api.client.post(f"/tasks/{mine}/cancel", headers=as_b), 404, contains="not found")
    assert api.client.get(f"/tasks/{mine}", headers=as_a).json()["status"] == "pending"
    listed_b = api.client.get("/tasks", params={"tags": "shared-tag"}, headers=as_b).json()["items"]
    assert listed_b == []
    assert [t["task_id"] for t in api.client.get("/tasks", params={"queue": queue}, headers=as_a).json()["items"]] \
        == [mine]
    assert queue not in {q["queue"] for q in api.client.get("/queues", headers=as_b).json()}
    assert [q["pending"] for q in api.client.get("/queues", headers=as_a).json() if q["queue"] == queue] == [1]

    # b's own task is b's to cancel; a's own cancel works.
    theirs = submit(api, as_b).json()["task_id"]
    assert api.client.post(f"/tasks/{theirs}/cancel", headers=as_b).status_code == 200
    assert api.client.post(f"/tasks/{mine}/cancel", headers=as_a).json()["status"] == "cancelled"


def test_idempotency_keys_belong_to_their_tenant(api, sql):  # noqa: F811
    _, as_a = tenant_key(sql)
    _, as_b = tenant_key(sql)
    queue = idle_queue()
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    first = submit(api, {**as_a, **key}, queue=queue)
    again = submit(api, {**as_a, **key}, queue=queue)
    other = submit(api, {**as_b, **key}, queue=queue)
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["task_id"] == first.json()["task_id"] != other.json()["task_id"]
    # A different body under b's key is b's conflict alone; a's task is untouched by it.
    assert_error(submit(api, {**as_b, **key}, queue=queue, priority=5), 409, contains="Idempotency-Key")
    assert api.client.get(f"/tasks/{first.json()['task_id']}", headers=as_a).json()["priority"] == 0


def test_a_revoked_key_is_refused_from_the_next_request(api, sql, module_db):  # noqa: F811
    _, headers = tenant_key(sql)
    task_id = submit(api, headers).json()["task_id"]
    key = headers["Authorization"].removeprefix("Bearer ")
    revoked = subprocess.run([sys.executable, "-m", "qqueue", "keys", "revoke", keys.parse(key) or "",
                              "--database-url", module_db], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stdout
    assert_error(api.client.get(f"/tasks/{task_id}", headers=headers), 401)


def test_keys_create_prints_the_key_once_and_stores_only_its_hash(api, sql, module_db):  # noqa: F811
    name = f"t-{uuid.uuid4().hex[:10]}"
    made = subprocess.run([sys.executable, "-m", "qqueue", "keys", "create", "--tenant", name, "--max-pending", "7",
                           "--database-url", module_db], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert keys.parse(key) is not None
    stored = sql.execute("SELECT k.key_hash, t.max_pending FROM qqueue.api_keys k JOIN qqueue.tenants t "
                         "ON t.name = k.tenant WHERE k.tenant = %s", (name,)).fetchall()
    assert [(bytes(h), m) for h, m in stored] == [(keys.hash_key(key), 7)]
    dumped = sql.execute("SELECT string_agg(k::text, ' ') FROM qqueue.api_keys k").fetchone()[0]
    assert key.split("_")[2] not in dumped  # the secret is nowhere in the table
    assert submit(api, {"Authorization": f"Bearer {key}"}).status_code == 201
    bad = subprocess.run([sys.executable, "-m", "qqueue", "keys", "create", "--tenant", "no spaces allowed",
                          "--database-url", module_db], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_a_tenant_over_its_pending_limit_gets_429_and_nothing_is_queued(api, sql):  # noqa: F811
    _, headers = tenant_key(sql, max_pending=3)
    queue = idle_queue()
    assert [submit(api, headers, queue=queue).status_code for _ in range(2)] == [201, 201]
    before = counts(sql)
    batch = api.client.post("/tasks/batch", headers=headers,
                            json={"tasks": [{"kind": "noop", "queue": queue}, {"kind": "noop", "queue": queue}]})
    body = assert_error(batch, 429, contains="pending")
    assert body["error"]["code"] == "pending_limit" and int(batch.headers["retry-after"]) >= 1
    assert counts(sql) == before
    assert submit(api, headers, queue=queue).status_code == 201
    refused = submit(api, headers, queue=queue)
    assert_error(refused, 429, contains="pending")
    assert counts(sql)[0] == before[0] + 1
    # A task that leaves 'pending' makes room again.
    first = api.client.get("/tasks", params={"queue": queue}, headers=headers).json()["items"][-1]["task_id"]
    assert api.client.post(f"/tasks/{first}/cancel", headers=headers).status_code == 200
    assert submit(api, headers, queue=queue).status_code == 201


def test_a_tenant_submitting_faster_than_its_rate_gets_429_with_retry_after(api, sql):  # noqa: F811
    _, slow = tenant_key(sql, submit_rate_per_s=0.1)
    _, other = tenant_key(sql)
    answers = [submit(api, slow).status_code for _ in range(BURST + 1)]
    assert answers == [201] * BURST + [429]
    refused = submit(api, slow)
    assert_error(refused, 429, contains="per second")
    # One token comes back every 10 s at 0.1/s.
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    # Another tenant's bucket is its own.
    assert submit(api, other).status_code == 201


def test_keyed_tasks_run_and_their_results_are_read_with_the_key(api, sql, module_db):  # noqa: F811
    from tests.conftest import WorkerProcess, live_workers, wait_until

    _, headers = tenant_key(sql)
    queue = f"keyed-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(module_db, "--concurrency", "1", "--queue", queue)
    try:
        task_id = submit(api, headers, queue=queue, kind="simulate", qc=BELL, shots=64).json()["task_id"]
        wait_until(lambda: live_workers(sql) >= 1, timeout_s=60)
        task = api.client.get(f"/tasks/{task_id}", params={"wait": 30}, headers=headers).json()
        assert task["status"] == "completed" and sum(task["result"]["counts"].values()) == 64
    finally:
        worker.kill_all()
        worker.log.close()


def test_a_tenants_key_sees_workers_without_their_hosts(api, sql, module_db):  # noqa: F811

    _, headers = tenant_key(sql)
    with live_worker(module_db, sql):
        workers = api.client.get("/workers", headers=headers).json()
        assert workers and all(w["hostname"] is None and w["pid"] is None for w in workers)
        assert all(w["concurrency"] == 1 and w["heartbeat_age_s"] >= 0 for w in workers)


def test_a_tenant_sees_waits_on_lists_and_cancels_only_its_own_jobs(api, sql):  # noqa: F811
    a, as_a = tenant_key(sql)
    b, as_b = tenant_key(sql)
    body = {"kind": "estimate", "queue": idle_queue(), "tags": ["shared-job-tag"],
            "pubs": [{"qc": "OPENQASM 3.0; qubit q; h q;", "observables": "Z"}]}
    made = api.client.post("/jobs", json=body, headers={**as_a, "Idempotency-Key": "same-key"})
    assert made.status_code == 201, made.text
    mine = made.json()["job_id"]
    assert sql.execute("SELECT tenant FROM qqueue.jobs WHERE id = %s", (mine,)).fetchone()[0] == a
    assert sql.execute("SELECT DISTINCT tenant FROM qqueue.tasks WHERE job_id = %s", (mine,)).fetchall() == [(a,)]
    assert_error(api.client.get(f"/jobs/{mine}", headers=as_b), 404, contains="not found")
    assert_error(api.client.get(f"/jobs/{mine}", params={"wait": 0.2}, headers=as_b), 404)
    assert_error(api.client.post(f"/jobs/{mine}/cancel", headers=as_b), 404, contains="not found")
    assert api.client.get("/jobs", params={"tags": "shared-job-tag"}, headers=as_b).json()["items"] == []
    # The same key from another tenant is another job.
    theirs = api.client.post("/jobs", json=body, headers={**as_b, "Idempotency-Key": "same-key"})
    assert theirs.status_code == 201 and theirs.json()["job_id"] != mine
    assert [j["job_id"] for j in api.client.get("/jobs", params={"tags": "shared-job-tag"},
                                                headers=as_a).json()["items"]] == [mine]
    assert api.client.post(f"/jobs/{mine}/cancel", headers=as_a).json()["cancelled"] == 1
    assert b != a


def operator_key(sql: psycopg.Connection[Any], tenant: str | None = None) -> dict[str, str]:  # noqa: F811
    """The headers of a new operator key (of `tenant`, or of none)."""
    made = keys.create(sql, tenant, role="operator", label="test")
    return {"Authorization": f"Bearer {made.key}"}


def test_an_operator_key_sees_every_tenant_and_the_workers_hosts(api, sql, module_db):  # noqa: F811

    a, as_a = tenant_key(sql)
    _, as_b = tenant_key(sql)
    as_operator = operator_key(sql)
    queue = idle_queue()
    theirs = submit(api, as_a, queue=queue).json()["task_id"]
    assert api.client.get(f"/tasks/{theirs}", headers=as_operator).json()["status"] == "pending"
    assert [t["task_id"] for t in api.client.get("/tasks", params={"queue": queue}, headers=as_operator
                                                 ).json()["items"]] == [theirs]
    assert [q["pending"] for q in api.client.get("/queues", headers=as_operator).json() if q["queue"] == queue] \
        == [1]
    # An operator key without a tenant submits tasks of no tenant: no tenant sees them.
    own = submit(api, as_operator, queue=queue).json()["task_id"]
    assert sql.execute("SELECT tenant FROM qqueue.tasks WHERE id = %s", (own,)).fetchone()[0] is None
    assert_error(api.client.get(f"/tasks/{own}", headers=as_a), 404)
    assert api.client.post(f"/tasks/{theirs}/cancel", headers=as_operator).json()["status"] == "cancelled"
    # An operator key of a tenant submits that tenant's tasks, and still sees the others'.
    of_a = submit(api, operator_key(sql, a), queue=queue).json()["task_id"]
    assert sql.execute("SELECT tenant FROM qqueue.tasks WHERE id = %s", (of_a,)).fetchone()[0] == a
    assert_error(api.client.get(f"/tasks/{of_a}", headers=as_b), 404)

    # /health: figures for any valid key, only up or down for anyone else.
    figures = ("live_workers", "queue_depth", "long_polls")
    for headers in (as_operator, as_b):
        assert all(api.client.get("/health", headers=headers).json()[k] is not None for k in figures)
    for headers in ({}, {"Authorization": f"Bearer qq_{'a' * 12}_{'A' * 43}"}):
        assert all(api.client.get("/health", headers=headers).json()[k] is None for k in figures)

    with live_worker(module_db, sql):
        workers = api.client.get("/workers", headers=as_operator).json()
        assert workers and all(w["hostname"] and w["pid"] for w in workers)
        assert all(w["hostname"] is None for w in api.client.get("/workers", headers=as_b).json())


def test_a_tenant_retries_only_its_own_tasks_and_an_operator_any(api, sql):  # noqa: F811
    _, as_a = tenant_key(sql)
    _, as_b = tenant_key(sql)
    queue = idle_queue()
    mine = submit(api, as_a, queue=queue).json()["task_id"]
    other = submit(api, as_a, queue=queue).json()["task_id"]
    for task_id in (mine, other):
        assert api.client.post(f"/tasks/{task_id}/cancel", headers=as_a).status_code == 200
    before = counts(sql)
    assert_error(api.client.post(f"/tasks/{mine}/retry", headers=as_b), 404, contains="not found")
    bulk = api.client.post("/tasks/retry", json={"status": ["cancelled"], "queue": queue}, headers=as_b).json()
    assert (bulk["retried"], bulk["task_ids"]) == (0, [])
    assert counts(sql) == before
    assert_error(api.client.post(f"/tasks/{mine}/retry"), 401)

    assert api.client.post(f"/tasks/{mine}/retry", headers=as_a).json()["status"] == "pending"
    prefix = as_a["Authorization"].split("_")[1]
    note = api.client.get(f"/tasks/{mine}", headers=as_a).json()["status_history"][-1]["notes"]
    assert note.startswith(f"retried by tenant key {prefix} of tenant t-")
    assert api.client.post(f"/tasks/{other}/retry", headers=operator_key(sql)).json()["status"] == "pending"


def test_keys_create_makes_operator_keys_and_keys_ls_shows_roles(sql, module_db):  # noqa: F811
    def qqueue(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "qqueue", "keys", *args, "--database-url", module_db],
                              cwd=REPO, capture_output=True, text=True, timeout=60)

    label = f"oncall-{uuid.uuid4().hex[:8]}"
    made = qqueue("create", "--role", "operator", "--label", label)
    assert made.returncode == 0, made.stderr
    assert "operator key" in made.stderr and "no tenant" in made.stderr
    listed = json.loads(qqueue("ls", "--json").stdout)
    assert [(k["role"], k["tenant"]) for k in listed if k["label"] == label] == [("operator", None)]
    assert {k["role"] for k in listed} == {"tenant", "operator"}
    for args, says in ((("--role", "admin"), "--role is one of"), ((), "needs --tenant")):
        refused = qqueue("create", *args)
        assert refused.returncode == 1 and says in refused.stderr and "Traceback" not in refused.stderr


def test_a_tenants_retry_that_would_overrun_its_pending_limit_is_refused_and_undone(api, sql):  # noqa: F811
    _, headers = tenant_key(sql, max_pending=2)
    queue = idle_queue()
    first = submit(api, headers, queue=queue).json()["task_id"]
    cancelled = submit(api, headers, queue=queue).json()["task_id"]
    assert api.client.post(f"/tasks/{cancelled}/cancel", headers=headers).status_code == 200
    assert submit(api, headers, queue=queue).status_code == 201
    before = counts(sql)
    body = assert_error(api.client.post(f"/tasks/{cancelled}/retry", headers=headers), 429, contains="pending")
    assert body["error"]["code"] == "pending_limit"
    assert_error(api.client.post("/tasks/retry", json={"status": ["cancelled"], "queue": queue}, headers=headers),
                 429)
    assert counts(sql) == before
    assert api.client.get(f"/tasks/{cancelled}", headers=headers).json()["status"] == "cancelled"
    assert api.client.post(f"/tasks/{first}/cancel", headers=headers).status_code == 200
    assert api.client.post(f"/tasks/{cancelled}/retry", headers=headers).status_code == 200
