"""The Python client against a real API process, real workers and real PostgreSQL.

Failures between client and server (a lost answer, a busy server) are made by wrapping httpx's own transport:
the request still reaches the real server, only what comes back is changed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from psycopg.rows import dict_row

from qqueue.api.schemas import (
    BackendInfo,
    BatchAnswer,
    CancelAnswer,
    Health,
    JobCancelAnswer,
    JobDetail,
    JobPage,
    JobSubmission,
    JobSubmitAnswer,
    PubResult,
    PubSubmission,
    SimulationOptions,
    StatusChange,
    SubmitAnswer,
    TaskDetail,
    TaskPage,
    TaskSubmission,
    TaskSummary,
)
from qqueue.client import ApiError, AsyncClient, Client, TransportError, WaitTimeoutError
from qqueue.store import db, keys
from qqueue.tasks import TaskStatus
from tests.conftest import WorkerProcess, live_workers, wait_until
from tests.e2e.api_support import BELL, ApiServer, free_port
from tests.e2e.test_api import module_db  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

BAD = "OPENQASM 2.0;\nqreg q[2];\nfoo q[0];\n"


# One API, one worker and one database for the module (starting them is most of a test's cost); every test
# works on queues of its own.


@pytest.fixture(scope="module")
def api(module_db: str) -> Iterator[ApiServer]:
    server = ApiServer(module_db)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(module_db: str) -> Iterator[WorkerProcess]:
    """One worker on the 'default' queue; tasks a test must keep pending go to a queue of their own."""
    proc = WorkerProcess(module_db, "--concurrency", "2")
    with db.connection(module_db) as conn:
        wait_until(lambda: live_workers(conn) >= 1, timeout_s=60)
    yield proc
    proc.kill_all()
    print(f"--- worker {proc.pid} output ---\n{proc.output()}")
    proc.log.close()


@pytest.fixture(scope="module")
def client(api: ApiServer) -> Iterator[Client]:
    with Client(api.url) as c:
        yield c


def idle_queue() -> str:
    """A queue no worker consumes: its tasks stay pending."""
    return f"idle-{uuid.uuid4().hex[:10]}"


def tasks_in(db_url: str, queue: str) -> list[dict[str, Any]]:
    with db.connection(db_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT id, idempotency_key FROM qqueue.tasks WHERE queue = %s ORDER BY id",
                           (queue,)).fetchall()


class LosesFirstAnswer(httpx.BaseTransport):
    """Sends every request to the server, but drops the first answer after the server sent it, as a
    connection reset on the way back would."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.inner.handle_request(request)
        if len(self.requests) == 1:
            response.read()
            response.close()
            raise httpx.ReadError("connection reset while reading the answer", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


class BusyFirst(httpx.BaseTransport):
    """Answers the first `times` requests itself with `status` and a Retry-After, then lets them through."""

    def __init__(self, status: int, retry_after: str | None, times: int = 1) -> None:
        self.inner = httpx.HTTPTransport()
        self.status, self.retry_after, self.times = status, retry_after, times
        self.requests: list[tuple[float, httpx.Request]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((time.monotonic(), request))
        if len(self.requests) <= self.times:
            headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            return httpx.Response(self.status, headers=headers, json={"status": "error", "message": "busy"})
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


# --- tasks, typed ------------------------------------------------------------------------------------------------


def test_a_circuit_is_submitted_waited_for_and_read_back_as_typed_answers(client, worker):
    answer = client.submit(BELL, shots=100, tags=["client", "bell"], metadata={"run": 1}, options={"seed": 3})
    assert isinstance(answer, SubmitAnswer)
    assert isinstance(answer.task_id, uuid.UUID) and answer.status is TaskStatus.PENDING
    assert answer.message == "Task submitted successfully."

    done = client.wait(answer.task_id, timeout=60)
    assert isinstance(done, TaskDetail) and done.status is TaskStatus.COMPLETED
    assert sum(done.result["counts"].values()) == 100 and set(done.result["counts"]) <= {"00", "11"}
    assert done.tags == ["client", "bell"] and done.metadata == {"run": 1}
    assert [h.status for h in done.status_history] == ["pending", "running", "completed"]
    assert all(isinstance(h, StatusChange) for h in done.status_history)

    again = client.get(str(answer.task_id))  # a str id works as well as a UUID
    assert again.task_id == answer.task_id and again.result == done.result
    assert isinstance(client.health(), Health) and client.health().status == "healthy"


def test_get_with_wait_long_polls_and_wait_raises_a_timeout_naming_the_task(client):
    task = client.submit(None, kind="noop", queue=idle_queue()).task_id
    started = time.monotonic()
    assert client.get(task, wait=0.3).status is TaskStatus.PENDING
    assert time.monotonic() - started >= 0.3

    started = time.monotonic()
    with pytest.raises(WaitTimeoutError) as caught:
        client.wait(task, timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert isinstance(caught.value, TimeoutError)
    assert str(task) in str(caught.value) and "pending" in str(caught.value)
    assert caught.value.status == "pending" and caught.value.last.task_id == task


def test_listing_pages_with_cursors_and_iter_tasks_follows_them_to_the_end(client, module_db):
    queue = idle_queue()
    batch = client.submit_many([{"kind": "noop", "queue": queue, "tags": ["even" if i % 2 == 0 else "odd"]}
                                for i in range(5)])
    made = [item.task_id for item in batch.items]
    assert client.cancel(made[1]).status == "cancelled"

    page = client.list(queue=queue, limit=2)
    assert isinstance(page, TaskPage) and all(isinstance(t, TaskSummary) for t in page.items)
    assert [t.task_id for t in page.items] == made[::-1][:2] and page.next_cursor is not None
    following = client.list(queue=queue, limit=2, cursor=page.next_cursor)
    assert [t.task_id for t in following.items] == made[::-1][2:4]

    assert [t.task_id for t in client.iter_tasks(queue=queue, limit=2)] == made[::-1]
    assert {t.task_id for t in client.iter_tasks(queue=queue, tags=["even"])} == {made[0], made[2], made[4]}
    assert [t.task_id for t in client.iter_tasks(queue=queue, status="cancelled")] == [made[1]]
    assert len(list(client.iter_tasks(queue=queue, status=["pending", "cancelled"]))) == 5
    assert [t.task_id for t in client.iter_tasks(queue=queue, kind="sleep")] == []


def test_cancel_answers_typed_and_a_second_cancel_is_an_api_error(client):
    task = client.submit(BELL, queue=idle_queue()).task_id
    answer = client.cancel(task)
    assert isinstance(answer, CancelAnswer) and answer.status == "cancelled"
    with pytest.raises(ApiError) as caught:
        client.cancel(task)
    assert caught.value.status == 409 and "already cancelled" in caught.value.message


def test_a_batch_queues_the_valid_items_and_answers_each_refusal_at_its_index(client):
    queue = idle_queue()
    answer = client.batch([TaskSubmission(qc=BELL, queue=queue, shots=10), {"qc": BAD, "queue": queue},
                           {"qc": BELL, "queue": queue, "shots": 20, "priority": 7}])
    assert isinstance(answer, BatchAnswer) and (answer.status, answer.queued, answer.rejected) == ("partial", 2, 1)
    first, bad, third = answer.items
    assert first.task_id and third.task_id and bad.task_id is None
    assert (bad.error.code, bad.error.line) == ("undefined_gate", 3)
    assert client.get(third.task_id).priority == 7

    # Every item refused: still the batch's answer (422), each reason at its index.
    refused = client.submit_many([{"qc": BAD}, {"qc": BAD, "shots": -1}])
    assert (refused.status, refused.queued, refused.rejected) == ("error", 0, 2)
    assert [i.error.code for i in refused.items] == ["undefined_gate", "invalid_request"]


def test_refusals_raise_api_error_with_the_code_position_and_correlation_id(client):
    with pytest.raises(ApiError) as caught:
        client.submit(BAD, shots=10)
    error = caught.value
    assert (error.status, error.code, error.line) == (422, "undefined_gate", 3) and error.column is not None
    assert "'foo' is not defined" in error.message and error.correlation_id
    assert "undefined_gate" in str(error) and "line 3" in str(error)

    with pytest.raises(ApiError) as caught:
        client.get(uuid.uuid4())
    assert caught.value.status == 404 and caught.value.message == "Task not found."
    with pytest.raises(ApiError) as caught:
        client.submit(BELL, shots=10, queue="no spaces allowed")
    assert caught.value.status == 400 and caught.value.code == "invalid_request"


# --- retries -----------------------------------------------------------------------------------------------------


def test_a_submit_whose_answer_was_lost_is_retried_with_the_same_key_and_queued_once(api, module_db):
    queue = idle_queue()
    lossy = LosesFirstAnswer()
    with Client(api.url, transport=lossy, backoff_s=0.01) as client:
        answer = client.submit(BELL, shots=10, queue=queue)
    assert answer.message == "Task already submitted with this Idempotency-Key."  # the retry found the first
    keys_sent = [r.headers["Idempotency-Key"] for r in lossy.requests]
    assert len(keys_sent) == 2 and keys_sent[0] == keys_sent[1]
    rows = tasks_in(module_db, queue)
    assert [(r["id"], r["idempotency_key"]) for r in rows] == [(answer.task_id, keys_sent[0])]

    # A batch the same way: each item queued once; and a caller's own key is the one sent.
    lossy = LosesFirstAnswer()
    with Client(api.url, transport=lossy, backoff_s=0.01) as client:
        batch = client.submit_many([{"qc": BELL, "queue": queue}, {"kind": "noop", "queue": queue}],
                                   idempotency_key="nightly-7")
    assert [r.headers["Idempotency-Key"] for r in lossy.requests] == ["nightly-7", "nightly-7"]
    assert [i.created for i in batch.items] == [False, False]
    assert len(tasks_in(module_db, queue)) == 3

    # Two calls are two submissions: each makes its own key.
    with Client(api.url) as client:
        a, b = client.submit(BELL, queue=queue), client.submit(BELL, queue=queue)
    assert a.task_id != b.task_id and len(tasks_in(module_db, queue)) == 5


def test_503_and_429_are_retried_after_the_retry_after_the_server_gave(api, module_db):
    queue = idle_queue()
    busy = BusyFirst(503, "1")
    with Client(api.url, transport=busy) as client:
        answer = client.submit(BELL, queue=queue)
    (first_at, first), (second_at, second) = busy.requests
    assert second_at - first_at >= 1.0  # Retry-After, not the 0.2 s backoff
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert [r["id"] for r in tasks_in(module_db, queue)] == [answer.task_id]

    busy = BusyFirst(429, "0", times=2)
    with Client(api.url, transport=busy) as client:
        assert client.get(answer.task_id).status is TaskStatus.PENDING
    assert len(busy.requests) == 3

    # Still busy after every retry: the last answer is raised, with its Retry-After.
    busy = BusyFirst(503, "0", times=10)
    with Client(api.url, transport=busy, retries=2) as client, pytest.raises(ApiError) as caught:
        client.list()
    assert (caught.value.status, caught.value.retry_after_s, len(busy.requests)) == (503, 0.0, 3)

    # Other refusals are final at once.
    busy = BusyFirst(422, None, times=10)
    with Client(api.url, transport=busy) as client, pytest.raises(ApiError) as caught:
        client.submit(BELL)
    assert caught.value.status == 422 and len(busy.requests) == 1


def test_a_server_out_of_reach_is_a_transport_error_after_the_retries():
    started = time.monotonic()
    with Client(f"http://127.0.0.1:{free_port()}", retries=2, backoff_s=0.05) as client, \
            pytest.raises(TransportError) as caught:
        client.health()
    assert caught.value.attempts == 3 and isinstance(caught.value.__cause__, httpx.ConnectError)
    assert "after 3 tries" in str(caught.value) and time.monotonic() - started < 5


# --- keys ----------------------------------------------------------------------------------------------------


def test_the_api_key_is_sent_as_a_bearer_token(db_url):
    with db.connection(db_url) as conn:
        key = keys.create(conn, "acme").key
    server = ApiServer(db_url, args=("--auth",))
    try:
        with Client(server.url, api_key=key) as client:
            task = client.submit(BELL, queue=idle_queue()).task_id
            assert client.get(task).task_id == task
        with Client(server.url) as anonymous, pytest.raises(ApiError) as caught:
            anonymous.get(task)
        assert caught.value.status == 401
    finally:
        server.stop()


# --- asyncio -----------------------------------------------------------------------------------------------------


def test_the_async_client_does_what_the_blocking_one_does(api, worker, module_db):
    queue = idle_queue()

    class LosesFirstAsync(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()
            self.seen = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.seen += 1
            response = await self.inner.handle_async_request(request)
            if self.seen == 1:
                await response.aread()
                await response.aclose()
                raise httpx.ReadError("connection reset while reading the answer", request=request)
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    async def scenario() -> None:
        async with AsyncClient(api.url) as client:
            answer = await client.submit(BELL, shots=50)
            done = await client.wait(answer.task_id, timeout=60)
            assert done.status is TaskStatus.COMPLETED and sum(done.result["counts"].values()) == 50
            assert (await client.get(answer.task_id)).result == done.result

            batch = await client.submit_many([{"kind": "noop", "queue": queue} for _ in range(3)])
            made = [i.task_id for i in batch.items]
            assert [t.task_id for t in (await client.list(queue=queue, limit=2)).items] == made[::-1][:2]
            assert [t.task_id async for t in client.iter_tasks(queue=queue, limit=2)] == made[::-1]
            assert (await client.cancel(made[0])).status == "cancelled"
            with pytest.raises(ApiError) as caught:
                await client.submit(BAD)
            assert caught.value.code == "undefined_gate"
            with pytest.raises(WaitTimeoutError):
                await client.wait(made[1], timeout=0.2)
            assert (await client.health()).status == "healthy"

        async with AsyncClient(api.url, transport=LosesFirstAsync(), backoff_s=0.01) as lossy:
            again = await lossy.submit(None, kind="noop", queue=queue)
        assert [r["id"] for r in tasks_in(module_db, queue)][-1] == again.task_id
        assert len(tasks_in(module_db, queue)) == 4

    asyncio.run(scenario())


# --- backends ----------------------------------------------------------------------------------------------------


def test_backends_are_listed_and_read_by_name(client):
    listed = client.backends()
    assert listed and all(isinstance(b, BackendInfo) for b in listed)
    ideal = client.backend("aer_simulator")
    assert ideal.simulator and not ideal.noisy and ideal.coupling_map is None
    assert ideal in listed
    with pytest.raises(ApiError) as caught:
        client.backend("no_such_device")
    assert caught.value.status == 404


# --- jobs ----------------------------------------------------------------------------------------------------


def test_jobs_are_submitted_waited_for_listed_and_cancelled(client, worker):
    job = client.submit_job(JobSubmission(kind="sample", pubs=[PubSubmission(qc=BELL, shots=100)],
                                          options=SimulationOptions(seed=1), tags=["client"]))
    assert isinstance(job, JobSubmitAnswer) and (job.pubs, job.status) == (1, "pending")
    done = client.wait_job(job.job_id, timeout=90)
    assert isinstance(done, JobDetail) and done.status == "completed", done
    [pub] = done.results
    assert isinstance(pub, PubResult) and pub.data
    assert client.get_job(str(job.job_id)).status == "completed"

    queue = idle_queue()
    body = {"kind": "sample", "pubs": [{"qc": BELL}, {"qc": BELL, "shots": 10}], "queue": queue}
    idle = client.submit_job(body, idempotency_key="job-1")
    assert client.submit_job(body, idempotency_key="job-1").job_id == idle.job_id  # a replay, not a second job
    with pytest.raises(WaitTimeoutError) as caught:
        client.wait_job(idle.job_id, timeout=0.3)
    assert caught.value.status == "pending" and str(idle.job_id) in str(caught.value)

    page = client.list_jobs(queue=queue)
    assert isinstance(page, JobPage) and [j.job_id for j in page.items] == [idle.job_id]
    assert [j.job_id for j in client.iter_jobs(tags=["client"])] == [job.job_id]
    cancelled = client.cancel_job(idle.job_id)
    assert isinstance(cancelled, JobCancelAnswer) and cancelled.cancelled == 2
    assert client.get_job(idle.job_id, wait=10).status == "cancelled"
    with pytest.raises(ApiError) as missing:
        client.get_job(uuid.uuid4())
    assert missing.value.status == 404
