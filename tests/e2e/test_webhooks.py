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

import msgspec
import psycopg
import pytest
from typer.testing import CliRunner

from qqueue.api.schemas import WebhookEvent
from qqueue.cli import app
from qqueue.client import Client
from qqueue.store import queue as q
from qqueue.store import webhooks
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
    [delivery] = wait_until(lambda: [d for d in webhooks.deliveries(sql, uuid.UUID(task_id))
                                     if d.delivered_at is not None])
    assert (delivery.attempts, delivery.last_status_code, delivery.task_status) == (1, 200, "completed")
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
    [delivery] = wait_until(lambda: [d for d in webhooks.deliveries(sql, done.id) if d.delivered_at is not None])
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
    [delivery] = wait_until(lambda: [d for d in webhooks.deliveries(sql, done.id) if d.abandoned_at is not None])
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
