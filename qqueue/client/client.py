"""`Client` (blocking, on httpx.Client) and `AsyncClient` (on httpx.AsyncClient) for the qqueue HTTP API.

Both have the endpoints of `qqueue.client._endpoints`, listed once in `_Base`; each client only sends requests
and sleeps its own way. Every answer is a Struct of `qqueue.api.schemas`, the types the server itself answers with.

    with Client("http://127.0.0.1:8000") as qq:
        task = qq.submit(open("bell.qasm").read(), shots=1000)
        print(qq.wait(task.task_id, timeout=60).result["counts"])
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx

from qqueue.client import _endpoints as endpoints
from qqueue.client._endpoints import Statuses, TaskId
from qqueue.client._methods import Endpoint, Pages
from qqueue.client._protocol import Call, Exchange, Items, Operations, Sleep, Step, default_headers

__all__ = ["AsyncClient", "Client", "Statuses", "TaskId"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Done(Generic[T]):
    """An operation's end, with what it returned."""

    value: T


def _advance(steps: Exchange[T], outcome: Any) -> Step | _Done[T]:
    """The operation's next step, sent the outcome of the last; `_Done` once it has returned. Both clients drive
    their operations with it: only how a step is performed is their own."""
    try:
        return steps.send(outcome)
    except StopIteration as done:
        return _Done(done.value)


class _Base:
    """What both clients hold: the operations, the per-request timeout, the base URL, and every endpoint (a
    subclass gets each as a method of its own, blocking or awaited as its `_awaited` says)."""

    #: Whether the endpoints are coroutines (AsyncClient) or block (Client).
    _awaited = False

    submit = Endpoint(endpoints.submit)
    submit_many = Endpoint(endpoints.submit_many)
    batch = submit_many
    get = Endpoint(endpoints.get)
    wait = Endpoint(endpoints.wait)
    list = Endpoint(endpoints.list_tasks)
    iter_tasks = Pages(endpoints.iter_tasks)
    cancel = Endpoint(endpoints.cancel)
    retry = Endpoint(endpoints.retry)
    retry_many = Endpoint(endpoints.retry_many)
    webhooks = Endpoint(endpoints.webhooks)
    submit_job = Endpoint(endpoints.submit_job)
    get_job = Endpoint(endpoints.get_job)
    wait_job = Endpoint(endpoints.wait_job)
    list_jobs = Endpoint(endpoints.list_jobs)
    iter_jobs = Pages(endpoints.iter_jobs)
    cancel_job = Endpoint(endpoints.cancel_job)
    job_webhooks = Endpoint(endpoints.job_webhooks)
    backends = Endpoint(endpoints.backends)
    backend = Endpoint(endpoints.backend)
    health = Endpoint(endpoints.health)
    queues = Endpoint(endpoints.queues)
    pause_queue = Endpoint(endpoints.pause_queue)
    resume_queue = Endpoint(endpoints.resume_queue)
    limit_queue = Endpoint(endpoints.limit_queue)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give Client and AsyncClient each endpoint as a method of their own."""
        super().__init_subclass__(**kwargs)
        if _Base in cls.__bases__:  # Client and AsyncClient; their subclasses inherit (and may override) these
            for name, value in vars(_Base).items():
                if isinstance(value, Endpoint | Pages):
                    setattr(cls, name, value.method(cls))

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

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float | None = 30.0, retries: int = 5,
                 backoff_s: float = 0.2, transport: httpx.BaseTransport | None = None) -> None:
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
        while not isinstance(step := _advance(steps, outcome), _Done):
            assert not isinstance(step, Items)
            outcome = self._perform(step)
        return step.value

    def _iterate(self, steps: Exchange[None]) -> Iterator[Any]:
        outcome: Any = None
        while not isinstance(step := _advance(steps, outcome), _Done):
            if isinstance(step, Items):
                outcome = None
                yield from step.values
            else:
                outcome = self._perform(step)

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

    _awaited = True

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float | None = 30.0, retries: int = 5,
                 backoff_s: float = 0.2, transport: httpx.AsyncBaseTransport | None = None) -> None:
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
        while not isinstance(step := _advance(steps, outcome), _Done):
            assert not isinstance(step, Items)
            outcome = await self._perform(step)
        return step.value

    async def _iterate(self, steps: Exchange[None]) -> AsyncIterator[Any]:
        outcome: Any = None
        while not isinstance(step := _advance(steps, outcome), _Done):
            if isinstance(step, Items):
                outcome = None
                for value in step.values:
                    yield value
            else:
                outcome = await self._perform(step)

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    aclose = close

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.close()
