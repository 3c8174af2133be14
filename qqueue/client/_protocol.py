"""The client's requests, retries and answer decoding, without any I/O.

Every operation is a generator that yields what it needs done (a `Call` to send, a `Sleep` between tries, the
`Items` of a page) and is sent back what came of it (an `httpx.Response`, or the `httpx.TransportError` the
send raised). `Client` drives these generators with blocking calls and `AsyncClient` with awaits, so the logic
(what to send, when to retry, how long to wait, how to decode) exists once for both. The endpoints themselves
are in `qqueue.client._endpoints`.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from qqueue import __version__
from qqueue.client.errors import ApiError, TransportError, WaitTimeoutError
from qqueue.tasks import TERMINAL_STATUSES

T = TypeVar("T")

#: Statuses worth another try: the server (or a proxy before it) is busy or restarting, not refusing.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: The longest pause between tries, whatever Retry-After says: a client should not hang on one header.
MAX_PAUSE_S = 30.0
#: The API's longest long-poll (GET /tasks/{id}?wait=…, GET /jobs/{id}?wait=…).
LONG_POLL_S = 60.0
CORRELATION_HEADER = "X-Correlation-ID"


#: Query parameters as httpx takes them: (name, value) pairs, a name repeated for a list.
Params = list[tuple[str, str | int | float | bool | None]]


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request and what its answer decodes into."""

    method: str
    path: str
    #: The msgspec type of a successful answer's body.
    answer: Any
    #: Statuses whose body is an `answer`; any other is an error.
    ok: frozenset[int] = frozenset({200, 201})
    params: Params | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry_on: frozenset[int] = RETRY_STATUSES
    #: Seconds this request may take beyond the client's timeout: a long-poll's wait.
    extra_timeout_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Sleep:
    """Pause before the next try."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Items(Generic[T]):
    """Values for an iterator to hand out (a page's tasks) before the operation goes on."""

    values: Sequence[T]


Step = Call | Sleep | Items[Any]
#: An operation: yields steps, is sent each `Call`'s outcome, returns its result.
Exchange = Generator[Step, Any, T]
#: An operation that hands out items page after page (`Items[T]`), for a client to iterate over.
Paging = Generator[Call | Sleep | Items[T], Any, None]


def default_headers(api_key: str | None) -> dict[str, str]:
    """Headers of every request: who we are and, with a key, the bearer credential."""
    headers = {"User-Agent": f"qqueue-client/{__version__}", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def retry_after_s(response: httpx.Response) -> float | None:
    """The answer's Retry-After in seconds (either form of the header), or None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds)


def decode(call: Call, response: httpx.Response) -> Any:
    """The answer of `call` as its type; `ApiError` for an error status (or an error body on an `ok` one)."""
    if response.status_code in call.ok:
        try:
            return msgspec.json.decode(response.content, type=call.answer)
        except (msgspec.DecodeError, msgspec.ValidationError):
            # A 2xx that is not the promised shape is a broken server, worth a traceback; an error status
            # listed in `ok` (422 of a batch) may carry an ErrorAnswer instead, read below.
            if response.is_success:
                raise
    raise ApiError.from_answer(response.status_code, response.content,
                               correlation_id=response.headers.get(CORRELATION_HEADER),
                               retry_after_s=retry_after_s(response))


def query(**values: Any) -> Params:
    """Query parameters: None left out, sequences repeated (`status=a&status=b`), datetimes in ISO 8601."""
    out: Params = []
    for name, value in values.items():
        if value is None:
            continue
        for item in [value] if isinstance(value, str | bytes) or not isinstance(value, Iterable) else value:
            out.append((name, item.isoformat() if isinstance(item, datetime) else str(item)))
    return out


def segment(value: Any) -> str:
    """A path segment: an id or a name, escaped so that it can never reach another route."""
    return quote(str(value), safe="")


def encode(value: Any) -> bytes:
    """A request body; Structs (TaskSubmission, JobSubmission, SimulationOptions) may sit anywhere in it, and
    so may NumPy arrays and numbers (parameter values usually are)."""
    return _encoder.encode(value)


def _numpy(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, without importing numpy
    if tolist is not None:
        return tolist()
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")


_encoder = msgspec.json.Encoder(enc_hook=_numpy)


class Operations:
    """The retry policy both clients share, and the exchanges every endpoint is made of (`qqueue.client._endpoints`
    defines the endpoints with these)."""

    def __init__(self, url: str, *, retries: int, backoff_s: float) -> None:
        if retries < 0:
            raise ValueError("retries cannot be negative")
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s

    # --- the exchange of one request, with its retries -----------------------------------------------------

    def pause_s(self, attempt: int) -> float:
        """Exponential backoff with jitter, so that clients that failed together do not retry together."""
        return min(MAX_PAUSE_S, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)

    def exchange(self, call: Call) -> Exchange[Any]:
        """Send `call` until it is answered with something other than a retryable status, or the tries run out.

        Connection errors and timeouts are retried like 429/503: every request is safe to send again, since
        reads and cancels repeat harmlessly and every submit carries an Idempotency-Key fixed before the first
        try. A retryable status still there after the last try is raised as its `ApiError`.
        """
        tries = self.retries + 1
        for attempt in range(tries):
            outcome = yield call
            last = attempt == tries - 1
            if isinstance(outcome, httpx.TransportError):
                if last:
                    reason = str(outcome) or type(outcome).__name__
                    raise TransportError(f"cannot reach {self.url}{call.path} after {tries} tries: {reason}",
                                         url=self.url, attempts=tries) from outcome
                yield Sleep(self.pause_s(attempt))
                continue
            if outcome.status_code in call.retry_on and not last:
                told = retry_after_s(outcome)
                yield Sleep(self.pause_s(attempt) if told is None else min(MAX_PAUSE_S, told))
                continue
            return decode(call, outcome)
        raise AssertionError("unreachable")

    def submitting(self, path: str, answer: Any, body: Any, idempotency_key: str | None,
                   ok: frozenset[int] = frozenset({200, 201})) -> Exchange[Any]:
        """A submit: its Idempotency-Key (the caller's, or one made now) is the same on every try, so a try
        whose answer was lost can never queue twice."""
        key = idempotency_key or str(uuid.uuid4())
        return self.exchange(Call("POST", path, answer, ok=ok, body=encode(body), headers={
            "Idempotency-Key": key, "Content-Type": "application/json"}))

    def waiting(self, what: str, ident: Any, look: Callable[[float], Exchange[T]], status_of: Callable[[T], str],
                timeout: float | None) -> Exchange[T]:
        """Long-poll with `look(seconds)` until `status_of` its answer is final; `WaitTimeoutError` after
        `timeout` seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = LONG_POLL_S if deadline is None else max(0.0, min(LONG_POLL_S, deadline - time.monotonic()))
            asked_at = time.monotonic()
            answer = yield from look(left)
            status = status_of(answer)
            if status in TERMINAL_STATUSES:
                return answer
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise WaitTimeoutError(what, ident, status, timeout or 0.0, answer)
            if now - asked_at < left / 2:
                # A server that answered well before the wait it was given (an older one, a proxy in
                # between) must not turn this loop into a busy poll.
                yield Sleep(min(1.0, left))

    def paging(self, page: Callable[[str | None], Exchange[Any]], cursor: str | None) -> Exchange[None]:
        """Every item of every page from `cursor` on, following `next_cursor`."""
        while True:
            answer = yield from page(cursor)
            yield Items(answer.items)
            if answer.next_cursor is None:
                return
            cursor = answer.next_cursor
