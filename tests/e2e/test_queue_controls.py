"""Queue controls end to end: real worker processes obey a pause and a max_running; the HTTP API and the CLI
change them, operators only."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from qqueue.api.schemas import MAX_RUNNING
from qqueue.client import ApiError, Client
from qqueue.store import keys
from qqueue.store import queue as q
from qqueue.tasks import TaskSpec
from tests.conftest import live_workers, wait_until
from tests.e2e.api_support import ApiServer
from tests.e2e.test_api import assert_error, idle_queue, module_db, sql  # noqa: F401 (fixtures)
from tests.e2e.test_cli_processes import qq

pytestmark = pytest.mark.slow


def finished(conn: psycopg.Connection[Any], queue: str) -> int:
    return conn.execute("SELECT count(*) FROM qqueue.tasks WHERE queue = %s AND status = 'completed'",
                        (queue,)).fetchone()[0]


def test_two_workers_obey_a_pause_and_never_run_more_than_max_running(conn, start_worker, db_url):
    paused, limited, other = "held", "gpu", "free"
    assert qq("queue", "pause", paused, "--database-url", db_url).returncode == 0
    assert qq("queue", "limit", limited, "2", "--database-url", db_url).returncode == 0
    for _ in range(2):
        start_worker("--concurrency", "3", "--queue", paused, "--queue", limited, "--queue", other)
    wait_until(lambda: live_workers(conn) == 2, timeout_s=60)

    # The limited queue's tasks take a while, so both workers, six slots in all, want more than two at once.
    q.enqueue_many(conn, [TaskSpec(kind="noop", queue=paused)] * 5
                   + [TaskSpec(kind="sleep", queue=limited, payload={"seconds": 0.1})] * 16)
    most, stop = [0], threading.Event()

    def watch() -> None:
        with psycopg.connect(db_url, autocommit=True) as own:
            while not stop.is_set():
                running = own.execute("SELECT count(*) FROM qqueue.tasks WHERE queue = %s AND status = 'running'",
                                      (limited,)).fetchone()[0]
                most[0] = max(most[0], running)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        wait_until(lambda: finished(conn, limited) == 16, timeout_s=90)
    finally:
        stop.set()
        watcher.join()
    assert 1 <= most[0] <= 2

    # Tasks queued after the paused ones, on a queue of their own, run: the workers claim, just not those.
    q.enqueue_many(conn, [TaskSpec(kind="noop", queue=other)] * 3)
    wait_until(lambda: finished(conn, other) == 3, timeout_s=30)
    assert conn.execute("SELECT count(*) FROM qqueue.tasks WHERE queue = %s AND status = 'pending' "
                        "AND attempt = 0", (paused,)).fetchone()[0] == 5
    assert qq("queue", "resume", paused, "--database-url", db_url).returncode == 0
    wait_until(lambda: finished(conn, paused) == 5, timeout_s=30)


@pytest.fixture(scope="module")
def open_api(module_db: str) -> Iterator[ApiServer]:  # noqa: F811
    server = ApiServer(module_db)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keyed_api(module_db: str) -> Iterator[ApiServer]:  # noqa: F811
    server = ApiServer(module_db, args=("--auth",))
    yield server
    server.stop()


def queue_rows(sql: psycopg.Connection[Any], queue: str) -> tuple[int, int]:  # noqa: F811
    return sql.execute("SELECT (SELECT count(*) FROM qqueue.queues WHERE name = %s), "
                       "(SELECT count(*) FROM qqueue.queue_events WHERE queue = %s)", (queue, queue)).fetchone()


def test_the_api_and_its_client_pause_limit_and_resume_a_queue(open_api, sql):  # noqa: F811
    queue = idle_queue()
    with Client(open_api.url) as client:
        assert client.pause_queue(queue).paused is True
        assert client.limit_queue(queue, 4).max_running == 4
        [row] = [s for s in client.queues() if s.queue == queue]
        assert (row.paused, row.max_running, row.pending) == (True, 4, 0)
        state = client.resume_queue(queue)
        assert (state.paused, state.max_running) == (False, 4)
        assert client.limit_queue(queue, None).max_running is None
    actions = [r[0] for r in sql.execute("SELECT action FROM qqueue.queue_events WHERE queue = %s ORDER BY id",
                                         (queue,)).fetchall()]
    assert actions == ["paused", "limited", "resumed", "unlimited"]


def test_bad_queue_changes_are_refused_and_write_nothing(open_api, sql, module_db):  # noqa: F811
    queue = idle_queue()
    post = open_api.client.post
    for body in ({"max_running": 0}, {"max_running": -1}, {"max_running": "four"}, {"max_running": 2, "x": 1}, {},
                 [], {"max_running": 10**7}):
        assert_error(post(f"/queues/{queue}/limit", json=body), 400)
    assert_error(post(f"/queues/{'x' * 65}/pause"), 400)
    assert_error(post("/queues/bad name/pause"), 400)
    assert_error(post("/queues/%C3%A9/pause"), 400)
    assert_error(post(f"/queues/{queue}/limit", content=b"{", headers={"content-type": "application/json"}), 400)
    # The CLI refuses past the API's bound too, on the database as through the API.
    refused = qq("queue", "limit", queue, str(MAX_RUNNING + 1), "--database-url", module_db)
    assert refused.returncode == 1 and f"from 1 to {MAX_RUNNING:,}" in refused.stderr
    assert queue_rows(sql, queue) == (0, 0)


def test_only_an_operator_may_change_a_queue(keyed_api, sql):  # noqa: F811
    queue = idle_queue()
    made = keys.create(sql, f"t-{uuid.uuid4().hex[:10]}", label="test")
    tenant = {"Authorization": f"Bearer {made.key}"}
    for path, body in ((f"/queues/{queue}/pause", None), (f"/queues/{queue}/resume", None),
                       (f"/queues/{queue}/limit", {"max_running": 1})):
        assert_error(keyed_api.client.post(path, json=body), 401)
        assert_error(keyed_api.client.post(path, json=body, headers=tenant), 403, contains="operator")
    assert queue_rows(sql, queue) == (0, 0)
    with Client(keyed_api.url, api_key=made.key) as client, pytest.raises(ApiError) as refused:
        client.pause_queue(queue)
    assert refused.value.status == 403


def test_an_operator_key_may_change_a_queue_even_one_of_a_tenant(keyed_api, sql):  # noqa: F811
    queue = idle_queue()
    made = keys.create(sql, f"t-{uuid.uuid4().hex[:10]}", role="operator", label="test")
    answer = keyed_api.client.post(f"/queues/{queue}/pause", headers={"Authorization": f"Bearer {made.key}"})
    assert answer.status_code == 200 and answer.json()["paused"] is True
    assert queue_rows(sql, queue)[0] == 1
