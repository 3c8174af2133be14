"""`Client` (blocking, on httpx.Client) and `AsyncClient` (on httpx.AsyncClient) for the qqueue HTTP API.

Both run the same operations of `qqueue.client._protocol`; each only sends requests and sleeps its own way.
Every answer is a Struct of `qqueue.api.schemas`, the types the server itself answers with.

    with Client("http://127.0.0.1:8000") as qq:
        task = qq.submit(open("bell.qasm").read(), shots=1000)
        print(qq.wait(task.task_id, timeout=60).result["counts"])
"""

from __future__ import annotations

import asyncio
import builtins
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

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
    JobSummary,
    SimulationOptions,
    SubmitAnswer,
    TaskDetail,
    TaskPage,
    TaskSubmission,
    TaskSummary,
)
from qqueue.client._protocol import Call, Exchange, Items, Operations, Sleep, default_headers

T = TypeVar("T")

TaskId = uuid.UUID | str
Statuses = str | Sequence[str] | None


class _Base:
    """What both clients hold: the operations, the per-request timeout, and the base URL."""

    def __init__(self, url: str, api_key: str | None, timeout: float | None, retries: int, backoff_s: float) -> None:
        self._ops = Operations(url, retries=retries, backoff_s=backoff_s)
        self._timeout = timeout
        self._headers = default_headers(api_key)

    @property
    def url(self) -> str:
        """The API's base URL."""
        return self._ops.url

    def _request_timeout(self, call: Call) -> float | None:
        return None if self._timeout is None else self._timeout + call.extra_timeout_s


class Client(_Base):
    """A blocking client of the qqueue HTTP API.

    `timeout` bounds each request (a long-poll gets its wait on top); `retries` is how many more tries a
    request gets after a connection error, a timeout, a 429 or a 503 (502, 504 too), pausing `Retry-After`
    seconds when the server says (at most 30), else `backoff_s`, doubled each time. `transport` replaces
    httpx's (an `httpx.MockTransport`, a proxy…).
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float | None = 30.0,
        retries: int = 5,
        backoff_s: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, api_key, timeout, retries, backoff_s)
        self._http = httpx.Client(base_url=self._ops.url, headers=self._headers, timeout=timeout,
                                  transport=transport)
        # Primitives and backends made with a URL own their client, and Qiskit code never closes those:
        # the connections are closed when the client is collected.
        weakref.finalize(self, self._http.close)

    # --- driving the operations -----------------------------------------------------------------------------

    def _perform(self, step: Call | Sleep) -> httpx.Response | httpx.TransportError | None:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        try:
            return self._http.request(step.method, step.path, params=step.params, content=step.body,
                                      headers=step.headers, timeout=self._request_timeout(step))
        except httpx.TransportError as exc:  # handed to the operation, which decides whether to try again
            return exc

    def _run(self, steps: Exchange[T]) -> T:
        outcome: Any = None
        while True:
            try:
                step = steps.send(outcome)
            except StopIteration as done:
                return done.value
            assert not isinstance(step, Items)
            outcome = self._perform(step)

    def _iterate(self, steps: Exchange[None]) -> Iterator[Any]:
        outcome: Any = None
        while True:
            try:
                step = steps.send(outcome)
            except StopIteration:
                return
            if isinstance(step, Items):
                outcome = None
                yield from step.values
            else:
                outcome = self._perform(step)

    # --- tasks ----------------------------------------------------------------------------------------------

    def submit(
        self,
        qc: str | None,
        *,
        kind: str = "simulate",
        shots: int = 1024,
        options: SimulationOptions | Mapping[str, Any] | None = None,
        queue: str = "default",
        priority: int = 0,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        run_at: datetime | None = None,
        delay_s: float | None = None,
        max_attempts: int = 3,
        timeout_s: float | None = None,
        parameter_values: Any = None,
        observables: Any = None,
        precision: float | None = None,
        outputs: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> SubmitAnswer:
        """Queue one task (POST /tasks); fields left None are not sent, so the server's defaults apply.

        The Idempotency-Key is `idempotency_key`, or one made for this call and sent on every retry, so a
        submit whose answer was lost is never queued twice. `payload` is for the test kinds without a circuit.
        Raises `ApiError` (422 with `code`, `line`, `column` for a circuit preflight refuses).
        """
        return self._run(self._ops.submit(
            qc, kind=kind, shots=shots, options=options, queue=queue, priority=priority, tags=tags,
            metadata=metadata, run_at=run_at, delay_s=delay_s, max_attempts=max_attempts, timeout_s=timeout_s,
            parameter_values=parameter_values, observables=observables, precision=precision, outputs=outputs,
            payload=payload, idempotency_key=idempotency_key))

    def submit_many(
        self, submissions: Sequence[TaskSubmission | Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> BatchAnswer:
        """Queue up to 1,000 tasks in one transaction (POST /tasks/batch). Items are `TaskSubmission`s or dicts
        of the same fields. An item the server refuses has its `error` at its index of `items` while the
        others are queued; when every item is refused the answer's status is "error" (HTTP 422)."""
        return self._run(self._ops.submit_many(submissions, idempotency_key=idempotency_key))

    batch = submit_many

    def get(self, task_id: TaskId, *, wait: float | None = None) -> TaskDetail:
        """The task (GET /tasks/{id}); with `wait` (0-60 s), answered as soon as it ends, or after `wait`."""
        return self._run(self._ops.get(task_id, wait=wait))

    def wait(self, task_id: TaskId, *, timeout: float | None = None) -> TaskDetail:
        """The task once completed, failed or cancelled, by long-polls of at most 60 s each. Raises
        `WaitTimeoutError` (a `TimeoutError` naming the task and its last status) after `timeout` seconds."""
        return self._run(self._ops.wait(task_id, timeout=timeout))

    def list(
        self,
        *,
        status: Statuses = None,
        queue: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> TaskPage:
        """One page of tasks, newest first (GET /tasks): any of `status`, every one of `tags`. Pass the page's
        `next_cursor` as `cursor` for the next one, or use `iter_tasks`."""
        return self._run(self._ops.list(status=status, queue=queue, kind=kind, tags=tags, created_after=created_after,
                                        created_before=created_before, limit=limit, cursor=cursor))

    def iter_tasks(
        self,
        *,
        status: Statuses = None,
        queue: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Iterator[TaskSummary]:
        """Every task matching the filters of `list`, newest first, fetched `limit` per page as it is read."""
        return self._iterate(self._ops.iter_tasks(
            status=status, queue=queue, kind=kind, tags=tags, created_after=created_after,
            created_before=created_before, limit=limit, cursor=cursor))

    def cancel(self, task_id: TaskId) -> CancelAnswer:
        """Cancel a task (POST /tasks/{id}/cancel): status "cancelled" when it was pending, "cancel_requested"
        when it runs (its worker stops it). A finished task raises `ApiError` 409."""
        return self._run(self._ops.cancel(task_id))

    # --- jobs -----------------------------------------------------------------------------------------------

    def submit_job(self, job: JobSubmission | Mapping[str, Any], *, idempotency_key: str | None = None
                   ) -> JobSubmitAnswer:
        """Queue a primitive job of many PUBs (POST /jobs), under an Idempotency-Key as `submit`."""
        return self._run(self._ops.submit_job(job, idempotency_key=idempotency_key))

    def get_job(self, job_id: TaskId, *, wait: float | None = None) -> JobDetail:
        """The job (GET /jobs/{id}); with `wait` (0-60 s), answered as soon as it ends, or after `wait`."""
        return self._run(self._ops.get_job(job_id, wait=wait))

    def wait_job(self, job_id: TaskId, *, timeout: float | None = None) -> JobDetail:
        """The job once completed, failed or cancelled; `WaitTimeoutError` after `timeout` seconds."""
        return self._run(self._ops.wait_job(job_id, timeout=timeout))

    def list_jobs(
        self,
        *,
        status: Statuses = None,
        queue: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of jobs, newest first (GET /jobs), filtered as `list`."""
        return self._run(self._ops.list_jobs(
            status=status, queue=queue, kind=kind, tags=tags, created_after=created_after,
            created_before=created_before, limit=limit, cursor=cursor))

    def iter_jobs(
        self,
        *,
        status: Statuses = None,
        queue: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Iterator[JobSummary]:
        """Every job matching the filters, newest first, page after page."""
        return self._iterate(self._ops.iter_jobs(
            status=status, queue=queue, kind=kind, tags=tags, created_after=created_after,
            created_before=created_before, limit=limit, cursor=cursor))

    def cancel_job(self, job_id: TaskId) -> JobCancelAnswer:
        """Cancel a job (POST /jobs/{id}/cancel): its pending tasks at once, its running ones asked to stop."""
        return self._run(self._ops.cancel_job(job_id))

    # --- the service ----------------------------------------------------------------------------------------

    def backends(self) -> builtins.list[BackendInfo]:
        """The simulators and fake devices runs may target (GET /backends)."""
        return self._run(self._ops.backends())

    def backend(self, name: str) -> BackendInfo:
        """One backend by name (GET /backends/{name}); `ApiError` 404 for an unknown one."""
        return self._run(self._ops.backend(name))

    def health(self) -> Health:
        """GET /health; an unhealthy server's answer (HTTP 503) is returned too, with status "unhealthy"."""
        return self._run(self._ops.health())

    # --- lifetime -------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class AsyncClient(_Base):
    """`Client` for asyncio: the same constructor and methods, each awaited (`iter_tasks` and `iter_jobs` are
    async iterators). `transport` is an `httpx.AsyncBaseTransport`."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float | None = 30.0,
        retries: int = 5,
        backoff_s: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, api_key, timeout, retries, backoff_s)
        self._http = httpx.AsyncClient(base_url=self._ops.url, headers=self._headers, timeout=timeout,
                                       transport=transport)

    async def _perform(self, step: Call | Sleep) -> httpx.Response | httpx.TransportError | None:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        try:
            return await self._http.request(step.method, step.path, params=step.params, content=step.body,
                                            headers=step.headers, timeout=self._request_timeout(step))
        except httpx.TransportError as exc:  # handed to the operation, which decides whether to try again
            return exc

    async def _run(self, steps: Exchange[T]) -> T:
        outcome: Any = None
        while True:
            try:
                step = steps.send(outcome)
            except StopIteration as done:
                return done.value
            assert not isinstance(step, Items)
            outcome = await self._perform(step)

    async def _iterate(self, steps: Exchange[None]) -> AsyncIterator[Any]:
        outcome: Any = None
        while True:
            try:
                step = steps.send(outcome)
            except StopIteration:
                return
            if isinstance(step, Items):
                outcome = None
                for value in step.values:
                    yield value
            else:
                outcome = await self._perform(step)

    async def submit(
        self,
        qc: str | None,
        *,
        kind: str = "simulate",
        shots: int = 1024,
        options: SimulationOptions | Mapping[str, Any] | None = None,
        queue: str = "default",
        priority: int = 0,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        run_at: datetime | None = None,
        delay_s: float | None = None,
        max_attempts: int = 3,
        timeout_s: float | None = None,
        parameter_values: Any = None,
        observables: Any = None,
        precision: float | None = None,
        outputs: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> SubmitAnswer:
        """See `Client.submit`."""
        return await self._run(self._ops.submit(
            qc, kind=kind, shots=shots, options=options, queue=queue, priority=priority, tags=tags,
            metadata=metadata, run_at=run_at, delay_s=delay_s, max_attempts=max_attempts, timeout_s=timeout_s,
            parameter_values=parameter_values, observables=observables, precision=precision, outputs=outputs,
            payload=payload, idempotency_key=idempotency_key))

    async def submit_many(
        self, submissions: Sequence[TaskSubmission | Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> BatchAnswer:
        """See `Client.submit_many`."""
        return await self._run(self._ops.submit_many(submissions, idempotency_key=idempotency_key))

    batch = submit_many

    async def get(self, task_id: TaskId, *, wait: float | None = None) -> TaskDetail:
        """See `Client.get`."""
        return await self._run(self._ops.get(task_id, wait=wait))

    async def wait(self, task_id: TaskId, *, timeout: float | None = None) -> TaskDetail:
        """See `Client.wait`."""
        return await self._run(self._ops.wait(task_id, timeout=timeout))

    async def list(
        self,
        *,
        status: Statuses = None,
        queue: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> TaskPage:
        """See `Client.list`."""
        return await self._run(self._ops.list(
            status=status, queue=queue, kind=kind, tags=tags, created_after=created_after,
            created_before=created_before, limit=limit, cursor=cursor))

    def iter_tasks(
        self,
        *,
        status: Statuses = None,
        queue: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> AsyncIterator[TaskSummary]:
        """See `Client.iter_tasks`; use with `async for`."""
        return self._iterate(self._ops.iter_tasks(
            status=status, queue=queue, kind=kind, tags=tags, created_after=created_after,
            created_before=created_before, limit=limit, cursor=cursor))

    async def cancel(self, task_id: TaskId) -> CancelAnswer:
        """See `Client.cancel`."""
        return await self._run(self._ops.cancel(task_id))

    async def submit_job(self, job: JobSubmission | Mapping[str, Any], *, idempotency_key: str | None = None
                         ) -> JobSubmitAnswer:
        """See `Client.submit_job`."""
        return await self._run(self._ops.submit_job(job, idempotency_key=idempotency_key))

    async def get_job(self, job_id: TaskId, *, wait: float | None = None) -> JobDetail:
        """See `Client.get_job`."""
        return await self._run(self._ops.get_job(job_id, wait=wait))

    async def wait_job(self, job_id: TaskId, *, timeout: float | None = None) -> JobDetail:
        """See `Client.wait_job`."""
        return await self._run(self._ops.wait_job(job_id, timeout=timeout))

    async def list_jobs(
        self,
        *,
        status: Statuses = None,
        queue: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """See `Client.list_jobs`."""
        return await self._run(self._ops.list_jobs(
            status=status, queue=queue, kind=kind, tags=tags, created_after=created_after,
            created_before=created_before, limit=limit, cursor=cursor))

    def iter_jobs(
        self,
        *,
        status: Statuses = None,
        queue: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> AsyncIterator[JobSummary]:
        """See `Client.iter_jobs`; use with `async for`."""
        return self._iterate(self._ops.iter_jobs(
            status=status, queue=queue, kind=kind, tags=tags, created_after=created_after,
            created_before=created_before, limit=limit, cursor=cursor))

    async def cancel_job(self, job_id: TaskId) -> JobCancelAnswer:
        """See `Client.cancel_job`."""
        return await self._run(self._ops.cancel_job(job_id))

    async def backends(self) -> builtins.list[BackendInfo]:
        """See `Client.backends`."""
        return await self._run(self._ops.backends())

    async def backend(self, name: str) -> BackendInfo:
        """See `Client.backend`."""
        return await self._run(self._ops.backend(name))

    async def health(self) -> Health:
        """See `Client.health`."""
        return await self._run(self._ops.health())

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    aclose = close

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.close()
