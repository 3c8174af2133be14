"""GET /events through a real API process with API keys on and a real worker, on real PostgreSQL.

One server, one worker and one database serve the module; every test makes tenants and queues of its own (the
worker, test_api's, consumes only 'default'). The server polls the history every 0.1 s, sends a keepalive after
0.5 s of quiet (so a reader checks its deadline often) and serves at most 3 streams.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import psycopg
import pytest

from qqueue.store import keys
from tests.conftest import wait_until
from tests.e2e.api_support import ApiServer
from tests.e2e.test_api import assert_error, idle_queue, module_db, sql, worker  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

MAX_STREAMS = 3


@pytest.fixture(scope="module")
def api(module_db: str) -> Iterator[ApiServer]:  # noqa: F811
    server = ApiServer(module_db, args=("--auth",), env={
        "QQUEUE_API_EVENTS_POLL_S": "0.1", "QQUEUE_API_EVENTS_KEEPALIVE_S": "0.5",
        "QQUEUE_API_EVENTS_MAX_STREAMS": str(MAX_STREAMS)})
    yield server
    server.stop()


def tenant(sql: psycopg.Connection[Any]) -> dict[str, str]:  # noqa: F811
    """The headers of a new tenant's key."""
    made = keys.create(sql, f"t-{uuid.uuid4().hex[:10]}", label="events")
    return {"Authorization": f"Bearer {made.key}"}


def submit(api: ApiServer, headers: dict[str, str], queue: str) -> str:
    response = api.client.post("/tasks", json={"kind": "noop", "queue": queue}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["task_id"]


class Events:
    """An open event stream, read message by message."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()
        self.keepalives = 0

    def next(self) -> dict[str, Any] | None:
        """The next event as {id, event, data}; None for a keepalive comment."""
        fields: dict[str, Any] = {}
        for line in self._lines:
            if line == "":
                if fields:
                    return {"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])}
                continue
            if line.startswith(":"):
                assert line == ": keepalive"
                self.keepalives += 1
                return None
            name, _, value = line.partition(": ")
            fields[name] = value
        raise AssertionError("the stream ended")

    def until(self, done: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 30) -> list[dict[str, Any]]:
        """Events until `done(events so far)`; fails at the deadline."""
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while not done(events):
            assert time.monotonic() < deadline, f"not done within {timeout_s} s: {events}"
            event = self.next()
            if event is not None:
                events.append(event)
        return events


@contextmanager
def stream(api: ApiServer, headers: dict[str, str], **params: Any) -> Iterator[Events]:
    last = params.pop("last_event_id", None)
    extra = {} if last is None else {"Last-Event-ID": str(last)}
    with api.client.stream("GET", "/events", params=params, headers={**headers, **extra}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Events(response)


def statuses(events: list[dict[str, Any]], task_id: str) -> list[str]:
    return [e["data"]["status"] for e in events if e["data"]["task_id"] == task_id]


def test_a_task_run_by_a_worker_streams_submitted_claimed_and_completed(api, sql, worker):  # noqa: F811
    headers = tenant(sql)
    with stream(api, headers) as events:
        task_id = submit(api, headers, "default")
        seen = events.until(lambda got: "completed" in statuses(got, task_id))
    mine = [e for e in seen if e["data"]["task_id"] == task_id]
    assert [(e["event"], e["data"]["status"], e["data"]["attempt"]) for e in mine] == [
        ("task.status", "pending", 0), ("task.status", "running", 1), ("task.status", "completed", 1)]
    assert [e["id"] for e in mine] == sorted(e["id"] for e in mine)
    assert {e["data"]["queue"] for e in mine} == {"default"} and mine[0]["data"]["note"] == "submitted"
    assert all(e["data"]["job_id"] is None and e["data"]["error_code"] is None for e in mine)
    # The ids are the history's.
    history = sql.execute("SELECT id FROM qqueue.task_events WHERE task_id = %s ORDER BY id", (task_id,)).fetchall()
    assert [e["id"] for e in mine] == [r[0] for r in history]


def test_a_job_streams_its_tasks_and_its_own_status_until_it_completes(api, sql, worker):  # noqa: F811
    headers = tenant(sql)
    job = api.client.post("/jobs", headers=headers, json={
        "kind": "estimate", "pubs": [{"qc": "OPENQASM 3.0; qubit q; h q;", "observables": "Z"}]})
    assert job.status_code == 201, job.text
    job_id = job.json()["job_id"]
    with stream(api, headers, job_id=job_id, last_event_id=0) as events:
        seen = events.until(lambda got: any(e["event"] == "job.status" and e["data"]["status"] == "completed"
                                            for e in got))
    tasks = [e["data"] for e in seen if e["event"] == "task.status"]
    assert [t["status"] for t in tasks] == ["pending", "running", "completed"]
    assert {t["job_id"] for t in tasks} == {job_id}
    final = seen[-1]
    assert final["event"] == "job.status" and final["id"] == seen[-2]["id"]
    assert (final["data"]["job_id"], final["data"]["tasks_done"], final["data"]["tasks_total"]) == (job_id, 1, 1)


def test_streams_filter_by_queue_and_by_task(api, sql):  # noqa: F811
    headers = tenant(sql)
    q1, q2 = idle_queue(), idle_queue()
    with stream(api, headers, queue=q1) as by_queue:
        first, other, second = submit(api, headers, q1), submit(api, headers, q2), submit(api, headers, q1)
        seen = by_queue.until(lambda got: statuses(got, second) == ["pending"])
    assert [e["data"]["task_id"] for e in seen] == [first, second]
    # From the start of the history, two tasks of two queues: exactly their rows, the missed ones then live.
    with stream(api, headers, task_id=[other, second], last_event_id=0) as by_task:
        seen = by_task.until(lambda got: len(got) == 2)
        assert api.client.post(f"/tasks/{other}/cancel", headers=headers).status_code == 200
        seen += by_task.until(lambda got: len(got) == 1)
        by_task.until(lambda got: by_task.keepalives > 0)
    assert [(e["data"]["task_id"], e["data"]["status"]) for e in seen] == [
        (other, "pending"), (second, "pending"), (other, "cancelled")]


def test_a_dropped_stream_resumes_with_last_event_id_with_nothing_lost_or_twice(api, sql):  # noqa: F811
    headers = tenant(sql)
    queue = idle_queue()
    with stream(api, headers, queue=queue) as events:
        before = [submit(api, headers, queue) for _ in range(2)]
        seen = events.until(lambda got: len(got) == 2)
    assert [e["data"]["task_id"] for e in seen] == before
    last = seen[-1]["id"]
    # While nobody listens: more tasks, and a cancel.
    missed_tasks = [submit(api, headers, queue) for _ in range(3)]
    assert api.client.post(f"/tasks/{before[0]}/cancel", headers=headers).status_code == 200
    missed = [r[0] for r in sql.execute(
        "SELECT e.id FROM qqueue.task_events e JOIN qqueue.tasks t ON t.id = e.task_id "
        "WHERE t.queue = %s AND e.id > %s ORDER BY e.id", (queue, last)).fetchall()]
    assert len(missed) == 4
    with stream(api, headers, queue=queue, last_event_id=last) as events:
        resumed = events.until(lambda got: len(got) == 4)
        live = submit(api, headers, queue)
        resumed += events.until(lambda got: len(got) == 1)
        events.until(lambda got: events.keepalives > 0)
    assert [e["id"] for e in resumed[:4]] == missed
    assert [e["data"]["task_id"] for e in resumed] == [*missed_tasks, before[0], live]
    assert [e["data"]["status"] for e in resumed] == ["pending"] * 3 + ["cancelled", "pending"]


def test_a_tenant_never_sees_another_tenants_events(api, sql):  # noqa: F811
    mine, theirs = tenant(sql), tenant(sql)
    queue = idle_queue()
    with stream(api, mine, last_event_id=0) as everything, stream(api, mine, queue=queue) as by_queue:
        foreign = submit(api, theirs, queue)
        own = submit(api, mine, queue)
        seen = everything.until(lambda got: own in {e["data"]["task_id"] for e in got})
        by_queue_seen = by_queue.until(lambda got: len(got) == 1)
    assert foreign not in {e["data"]["task_id"] for e in seen}
    assert [e["data"]["task_id"] for e in by_queue_seen] == [own]
    # Asking for the other tenant's task by id gives nothing at all, not even its existence.
    with stream(api, mine, task_id=[foreign], last_event_id=0) as named:
        assert named.until(lambda got: named.keepalives >= 2) == []


def test_bad_filters_and_resume_points_are_400_and_keys_are_required(api, sql):  # noqa: F811
    headers = tenant(sql)
    for params, wanted in (({"task_id": "not-a-uuid"}, "task_id"), ({"job_id": "42"}, "job_id"),
                           ({"queue": "a b"}, "queue"), ({"queue": "x" * 65}, "queue"),
                           ({"task_id": [str(uuid.uuid4()) for _ in range(101)]}, "at most 100"),
                           ({"last_event_id": "-1"}, "Last-Event-ID"), ({"last_event_id": "1e3"}, "Last-Event-ID"),
                           ({"last_event_id": str(2**63)}, "Last-Event-ID")):
        assert_error(api.client.get("/events", params=params, headers=headers), 400, contains=wanted)
    for value in ("abc", "1 2", "9" * 30):
        assert_error(api.client.get("/events", headers={**headers, "Last-Event-ID": value}), 400,
                     contains="Last-Event-ID")
    assert_error(api.client.get("/events"), 401, contains="API key")


def test_a_full_server_refuses_one_stream_more_with_503_and_takes_it_once_one_closes(api, sql):  # noqa: F811
    headers = tenant(sql)
    with ExitStack() as open_streams:
        # Streams of earlier tests may take a moment to be noticed gone: open until the server holds the most.
        def one_more() -> bool:
            response = open_streams.enter_context(api.client.stream("GET", "/events", headers=headers))
            return response.status_code == 200
        for _ in range(MAX_STREAMS):
            wait_until(one_more, timeout_s=30, interval_s=0.1)
        refused = api.client.get("/events", headers=headers)
        body = assert_error(refused, 503, contains="event streams")
        assert body["error"]["code"] == "event_streams_full" and int(refused.headers["retry-after"]) >= 1
    # Closed: the server takes new streams again.
    wait_until(lambda: _opens(api, headers), timeout_s=30, interval_s=0.1)


def _opens(api: ApiServer, headers: dict[str, str]) -> bool:
    with api.client.stream("GET", "/events", headers=headers) as response:
        return response.status_code == 200


def test_an_operators_key_streams_every_tenants_events(api, sql):  # noqa: F811
    made = keys.create(sql, None, role="operator", label="events")
    operator = {"Authorization": f"Bearer {made.key}"}
    queue = idle_queue()
    first, second = submit(api, tenant(sql), queue), submit(api, tenant(sql), queue)
    with stream(api, operator, queue=queue, last_event_id=0) as everyone:
        seen = everyone.until(lambda got: len(got) == 2)
    assert {e["data"]["task_id"] for e in seen} == {first, second}


def test_open_streams_end_cleanly_when_the_server_stops(api, sql):  # noqa: F811
    # Last in the module: it stops the module's server.
    headers = tenant(sql)
    with stream(api, headers) as events:
        events.until(lambda got: events.keepalives > 0)
        api.proc.send_signal(signal.SIGINT)
        # The stream ends (the server closes it), rather than being cut off after the graceful period.
        with pytest.raises(AssertionError, match="the stream ended"):
            events.until(lambda got: False)
    # Ctrl-C: uvicorn exits as an interrupted process does (128 + SIGINT) once everything has shut down.
    assert api.proc.wait(30) in (0, 128 + signal.SIGINT)
    assert "timeout graceful shutdown exceeded" not in api.output()

