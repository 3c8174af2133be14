"""Webhooks end to end: a real API (with API keys), a real worker and a receiver on a loopback address that the
allow-list names, on real PostgreSQL.

The receiver listens on 127.0.0.2 and only that address is allowed, so 127.0.0.1 (and localhost) stand for the
refused loopback. The worker's backoff is a few hundredths of a second, so a redelivery takes no time.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
from typer.testing import CliRunner

from qqueue.api.schemas import JobWebhookEvent, WebhookDelivery, WebhookEvent
from qqueue.cli import app
from qqueue.client import Client
from qqueue.store import keys, reads, webhooks
from qqueue.store import queue as q
from qqueue.tasks import TaskSpec
from qqueue.webhooks import verify
from tests.conftest import WorkerProcess, serving_worker, wait_until
from tests.e2e.api_support import BELL, ApiServer
from tests.e2e.test_api import module_db, sql  # noqa: F401 (fixtures)
from tests.e2e.test_tenants import counts, tenant_key

pytestmark = pytest.mark.slow

RECEIVER_HOST = "127.0.0.2"
QUEUE = "hooks"
WEBHOOK_ENV = {"QQUEUE_WEBHOOK_ALLOW": RECEIVER_HOST, "QQUEUE_WEBHOOK_BACKOFF_BASE_S": "0.05",
               "QQUEUE_WEBHOOK_BACKOFF_CAP_S": "0.1", "QQUEUE_WEBHOOK_POLL_INTERVAL_S": "0.5"}


class Receiver:
    """A tiny HTTP server that records every request and answers each path with its scripted status codes in
    turn (200 once the script runs out)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.script: dict[str, list[int]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((self.path, dict(self.headers), body))
                codes = receiver.script.get(self.path) or []
                self.send_response(codes.pop(0) if codes else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((RECEIVER_HOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://{RECEIVER_HOST}:{self.port}{path}"

    def received(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(headers, body) for p, headers, body in self.requests if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def api(module_db: str) -> Iterator[ApiServer]:  # noqa: F811
    server = ApiServer(module_db, args=("--auth",), env=WEBHOOK_ENV)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(module_db: str, sql: psycopg.Connection[Any]) -> Iterator[WorkerProcess]:  # noqa: F811
    with serving_worker(module_db, sql, "--concurrency", "1", "--queue", QUEUE, env=WEBHOOK_ENV) as proc:
        yield proc


def hook_path() -> str:
    return f"/hook/{uuid.uuid4().hex[:10]}"


def deliveries(sql: psycopg.Connection[Any], task_id: uuid.UUID) -> list[WebhookDelivery]:  # noqa: F811
    return reads.fetch(sql, reads.task_webhooks(task_id))


def test_a_tenants_task_is_posted_when_it_completes_signed_with_the_tenants_secret(api, worker, receiver, sql):  # noqa: F811
    tenant, headers = tenant_key(sql)
    path = hook_path()
    with Client(api.url, api_key=headers["Authorization"].split(" ", 1)[1]) as client:
        task_id = str(client.submit(None, kind="noop", queue=QUEUE, callback_url=receiver.url(path)).task_id)
    [(got, body)] = wait_until(lambda: receiver.received(path), timeout_s=30)
    secret = webhooks.secret(sql, tenant)
    assert verify(secret, got["X-QQueue-Signature"], body)
    assert not verify(webhooks.secret(sql, None), got["X-QQueue-Signature"], body)
    assert not verify(webhooks.secret(sql, tenant_key(sql)[0]), got["X-QQueue-Signature"], body)
    event = msgspec.json.decode(body, type=WebhookEvent)
    assert (str(event.task_id), event.status, event.attempt, event.error) == (task_id, "completed", 1, None)
    assert event.result_url == f"/tasks/{task_id}"
    assert got["Host"] == f"{RECEIVER_HOST}:{receiver.port}" and got["Content-Type"] == "application/json"
    assert got["X-QQueue-Delivery"] == str(event.delivery_id)
    [delivery] = wait_until(lambda: [d for d in deliveries(sql, uuid.UUID(task_id))
                                     if d.delivered_at is not None])
    assert (delivery.attempts, delivery.last_status_code, delivery.status) == (1, 200, "completed")
    # A rotated secret signs from then on; the old one no longer verifies what is sent next.
    rotated = webhooks.rotate_secret(sql, tenant)
    assert rotated != secret and webhooks.secret(sql, tenant) == rotated


def test_a_receiver_failing_twice_gets_the_same_notice_a_third_time_and_it_is_recorded_once_delivered(
        worker, receiver, sql):  # noqa: F811
    path = hook_path()
    receiver.script[path] = [500, 500]
    # Queued without a tenant (as with API keys off): signed with the service-wide secret. A failing task says why.
    [done] = q.enqueue_many(sql, [TaskSpec(kind="fail", queue=QUEUE, max_attempts=1, callback_url=receiver.url(path),
                                           payload={"message": "boom", "retryable": False})])
    received = wait_until(lambda: len(receiver.received(path)) >= 3 and receiver.received(path), timeout_s=30)
    [delivery] = wait_until(lambda: [d for d in deliveries(sql, done.id) if d.delivered_at is not None])
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (3, 200, None)
    assert len(receiver.received(path)) == 3
    secret = webhooks.secret(sql, None)
    bodies = {body for _, body in received}
    assert len(bodies) == 1  # the same notice each time; only the signature's time may differ
    assert all(verify(secret, headers["X-QQueue-Signature"], body) for headers, body in received)
    event = msgspec.json.decode(bodies.pop(), type=WebhookEvent)
    assert event.status == "failed" and event.result_url is None
    assert event.error is not None and "boom" in event.error.message


def test_a_refused_target_that_reached_the_queue_anyway_is_checked_again_at_send_time_and_abandoned(
        worker, receiver, sql):  # noqa: F811
    # Queued by Python (as plain SQL could), past the API's check: the worker refuses to send it.
    path = hook_path()
    [done] = q.enqueue_many(sql, [TaskSpec(kind="noop", queue=QUEUE,
                                           callback_url=f"http://127.0.0.1:{receiver.port}{path}")])
    [delivery] = wait_until(lambda: [d for d in deliveries(sql, done.id) if d.abandoned_at is not None])
    assert delivery.attempts == 1 and delivery.delivered_at is None
    assert delivery.last_error is not None and "loopback" in delivery.last_error
    assert receiver.received(path) == []


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/hook", "http://10.0.0.7/hook", "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:{port}/hook", "http://[::ffff:127.0.0.1]/", "file:///etc/passwd", "http://localhost:{port}/hook",
    "http://0x7f000001:{port}/", "http://user:pw@127.0.0.2:{port}/", "ftp://127.0.0.2/",
])
def test_refused_callback_targets_are_a_422_and_nothing_is_written(api, receiver, sql, url):  # noqa: F811
    _, headers = tenant_key(sql)
    before = counts(sql)
    url = url.format(port=receiver.port)
    answer = api.client.post("/tasks", json={"kind": "noop", "queue": QUEUE, "callback_url": url}, headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "callback_refused" and "Traceback" not in answer.text
    batch = api.client.post("/tasks/batch", headers=headers, json={"tasks": [
        {"kind": "noop", "queue": "idle-hooks", "callback_url": url},
        {"kind": "noop", "queue": "idle-hooks", "callback_url": receiver.url("/fine")}]})
    assert batch.status_code == 201, batch.text
    items = batch.json()["items"]
    assert items[0]["error"]["code"] == "callback_refused" and items[1]["task_id"]
    job = api.client.post("/jobs", headers=headers, json={"kind": "sample", "queue": "idle-hooks",
                                                          "callback_url": url, "pubs": [{"qc": BELL}]})
    assert job.status_code == 422, job.text
    assert job.json()["error"]["code"] == "callback_refused"
    assert counts(sql)[0] == before[0] + 1


def test_the_cli_prints_and_rotates_webhook_secrets_and_refuses_a_loopback_callback(module_db, sql, tmp_path):  # noqa: F811
    tenant, _ = tenant_key(sql)
    cli = CliRunner()
    shown = cli.invoke(app, ["keys", "webhook-secret", tenant, "--database-url", module_db])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.strip() == webhooks.secret(sql, tenant)
    rotated = cli.invoke(app, ["keys", "webhook-secret", "--rotate", "--database-url", module_db])
    assert rotated.exit_code == 0 and rotated.stdout.strip() == webhooks.secret(sql, None)
    assert cli.invoke(app, ["keys", "webhook-secret", "nobody", "--database-url", module_db]).exit_code == 1
    circuit = tmp_path / "bell.qasm"
    circuit.write_text(BELL)
    before = counts(sql)
    refused = cli.invoke(app, ["submit", str(circuit), "--callback-url", "http://127.0.0.1:9/hook",
                               "--database-url", module_db])
    assert refused.exit_code == 1 and "allow-list" in refused.output
    assert counts(sql) == before


# --- what a task's and a job's webhooks look like afterwards -----------------------------------------------------


class Retried(msgspec.Struct, frozen=True):
    """A tenant's failing task whose receiver refused the first send, retried once: two ends, two notices."""

    tenant: str
    key: str
    task_id: uuid.UUID
    url: str
    #: What the receiver got, in order: the refused send, its redelivery, the notice of the second end.
    received: list[tuple[dict[str, str], bytes]]


def key_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


@pytest.fixture(scope="module")
def retried(api, worker, receiver, sql) -> Retried:  # noqa: F811
    tenant, headers = tenant_key(sql)
    path = hook_path()
    receiver.script[path] = [500]
    url = receiver.url(path)
    with Client(api.url, api_key=key_of(headers)) as client:
        task_id = client.submit(None, kind="fail", queue=QUEUE, max_attempts=1, callback_url=url,
                                payload={"message": "boom", "retryable": False}).task_id
        wait_until(lambda: [d for d in client.webhooks(task_id) if d.delivered_at is not None], timeout_s=30)
        client.retry(task_id, reason="again")
        wait_until(lambda: sum(d.delivered_at is not None for d in client.webhooks(task_id)) == 2, timeout_s=30)
    return Retried(tenant=tenant, key=key_of(headers), task_id=task_id, url=url, received=receiver.received(path))


def test_a_tasks_callback_url_is_shown_in_its_detail(api, retried):
    with Client(api.url, api_key=retried.key) as client:
        assert client.get(retried.task_id).callback_url == retried.url
        plain = client.submit(None, kind="noop", queue="idle-hooks")
        assert client.get(plain.task_id).callback_url is None
        assert client.webhooks(plain.task_id) == []


def test_a_tasks_deliveries_are_listed_newest_first_with_each_ones_sends(api, retried, sql):  # noqa: F811
    with Client(api.url, api_key=retried.key) as client:
        second, first = client.webhooks(retried.task_id)
    # The first end's notice was refused once (500) and sent again; the second end's went through at once.
    assert (first.status, first.attempt, first.attempts, first.last_status_code, first.last_error) == (
        "failed", 1, 2, 200, None)
    assert (second.status, second.attempt, second.attempts, second.last_status_code) == ("failed", 2, 1, 200)
    assert second.delivery_id > first.delivery_id and second.finished_at > first.finished_at
    for d in (first, second):
        assert (d.event, d.task_id, d.job_id, d.url) == ("task.finished", retried.task_id, None, retried.url)
        assert d.delivered_at is not None and d.abandoned_at is None and d.next_attempt_at is None
    # The ids are those the receiver saw, in the header and in the body.
    sent = [headers["X-QQueue-Delivery"] for headers, _ in retried.received]
    assert sent == [str(first.delivery_id)] * 2 + [str(second.delivery_id)]
    assert [msgspec.json.decode(body, type=WebhookEvent).delivery_id for _, body in retried.received] == [
        first.delivery_id] * 2 + [second.delivery_id]
    assert reads.fetch(sql, reads.task_webhooks(retried.task_id)) == [second, first]


def test_another_tenant_gets_a_404_for_a_tasks_webhooks_as_for_the_task_and_an_operator_sees_them(
        api, retried, sql):  # noqa: F811
    _, other = tenant_key(sql)
    hidden = api.client.get(f"/tasks/{retried.task_id}/webhooks", headers=other)
    detail = api.client.get(f"/tasks/{retried.task_id}", headers=other)
    assert hidden.status_code == detail.status_code == 404
    assert {k: v for k, v in hidden.json().items() if k != "correlation_id"} == {
        k: v for k, v in detail.json().items() if k != "correlation_id"}
    operator = keys.create(sql, None, role="operator", label="test").key
    with Client(api.url, api_key=operator) as client, Client(api.url, api_key=retried.key) as own:
        assert client.webhooks(retried.task_id) == own.webhooks(retried.task_id)
    # Never the secret the notices are signed with.
    shown = api.client.get(f"/tasks/{retried.task_id}/webhooks", headers={"Authorization": f"Bearer {retried.key}"})
    assert shown.status_code == 200 and webhooks.secret(sql, retried.tenant) not in shown.text
    assert "whsec_" not in shown.text


def test_the_cli_shows_a_tasks_callback_and_its_deliveries_locally_and_through_the_api(api, retried, module_db):  # noqa: F811
    cli = CliRunner()
    with Client(api.url, api_key=retried.key) as client:
        ids = [str(d.delivery_id) for d in client.webhooks(retried.task_id)]
    for args in (["get", str(retried.task_id), "--database-url", module_db],
                 ["--api-url", api.url, "--api-key", retried.key, "get", str(retried.task_id)]):
        shown = cli.invoke(app, args, env={"COLUMNS": "200"})
        assert shown.exit_code == 0, shown.output
        assert f"callback: {retried.url}" in shown.stdout and "webhooks" in shown.stdout
        assert all(i in shown.stdout for i in ids) and "delivered" in shown.stdout
    as_json = cli.invoke(app, ["get", str(retried.task_id), "--json", "--database-url", module_db])
    assert msgspec.json.decode(as_json.stdout)["callback_url"] == retried.url


def test_the_dashboards_task_page_shows_the_callback_and_lists_the_deliveries(api, retried, sql):  # noqa: F811
    with Client(api.url, api_key=retried.key) as client:
        listed = client.webhooks(retried.task_id)
    _, other = tenant_key(sql)
    with signed_in(api, retried.key) as own, signed_in(api, key_of(other)) as theirs:
        page = own.get(f"/ui/tasks/{retried.task_id}")
        assert theirs.get(f"/ui/tasks/{retried.task_id}").status_code == 404
    assert page.status_code == 200, page.text
    assert retried.url in page.text and 'id="webhooks"' in page.text
    assert all(f'data-delivery="{d.delivery_id}"' in page.text for d in listed)
    assert webhooks.secret(sql, retried.tenant) not in page.text


def signed_in(api: ApiServer, key: str) -> httpx.Client:
    """A client holding the dashboard's sign-in cookie for `key`, as the login form sets it."""
    return httpx.Client(base_url=api.url, cookies={"qqueue_key": key}, timeout=30)


def test_a_job_with_a_callback_is_posted_once_signed_when_it_ends_and_its_delivery_is_listed(
        api, worker, receiver, sql):  # noqa: F811
    tenant, headers = tenant_key(sql)
    path = hook_path()
    url = receiver.url(path)
    body = {"kind": "sample", "queue": QUEUE, "shots": 20, "callback_url": url,
            "pubs": [{"qc": BELL}, {"qc": BELL, "shots": 10}]}
    with Client(api.url, api_key=key_of(headers)) as client:
        job_id = client.submit_job(body, idempotency_key=f"job-{path}").job_id
        # The same body replays the job; another callback is another request.
        assert client.submit_job(body, idempotency_key=f"job-{path}").job_id == job_id
        conflict = api.client.post("/jobs", json={**body, "callback_url": receiver.url("/other")},
                                   headers={**headers, "Idempotency-Key": f"job-{path}"})
        assert conflict.status_code == 409, conflict.text
        job = client.wait_job(job_id, timeout=60)
        assert (job.status, job.callback_url, job.progress.tasks_total) == ("completed", url, 2)
        [(got, sent)] = wait_until(lambda: receiver.received(path), timeout_s=30)
        [delivery] = wait_until(lambda: [d for d in client.job_webhooks(job_id) if d.delivered_at is not None])
    assert verify(webhooks.secret(sql, tenant), got["X-QQueue-Signature"], sent)
    assert got["X-QQueue-Event"] == "job.finished" and got["X-QQueue-Delivery"] == str(delivery.delivery_id)
    event = msgspec.json.decode(sent, type=JobWebhookEvent)
    assert (event.event, event.job_id, event.status, event.error) == ("job.finished", job_id, "completed", None)
    assert event.result_url == f"/jobs/{job_id}" and event.finished_at == job.finished_at
    assert (delivery.event, delivery.job_id, delivery.task_id, delivery.attempt, delivery.attempts,
            delivery.last_status_code) == ("job.finished", job_id, None, None, 1, 200)
    # Exactly one: the job's two tasks wrote no notice of their own, and its end wrote one.
    assert len(receiver.received(path)) == 1
    assert sql.execute("SELECT count(*) FROM qqueue.webhook_deliveries WHERE job_id = %s OR task_id = ANY("
                       "SELECT id FROM qqueue.tasks WHERE job_id = %s)", (job_id, job_id)).fetchone() == (1,)
    _, other = tenant_key(sql)
    assert api.client.get(f"/jobs/{job_id}/webhooks", headers=other).status_code == 404
    assert api.client.get(f"/jobs/{job_id}", headers=other).status_code == 404
    shown = CliRunner().invoke(app, ["--api-url", api.url, "--api-key", key_of(headers), "jobs", "get", str(job_id)],
                               env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert f"callback: {url}" in shown.stdout and str(delivery.delivery_id) in shown.stdout
