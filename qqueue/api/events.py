"""GET /events: task and job status changes as server-sent events, resumable with Last-Event-ID.

A stream first reads from the database what it missed (ids after Last-Event-ID up to where the process's
event reader stands), then takes the reader's live rows (`qqueue.api.eventhub`): once live, it costs no query
of its own. Every event's `id:` is its qqueue.task_events id.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from qqueue.api import correlation
from qqueue.api.auth import visible_tenant
from qqueue.api.context import ApiContext
from qqueue.api.errors import documented
from qqueue.api.eventhub import Subscription
from qqueue.api.params import Api, NameFilter
from qqueue.api.schemas import JobEvent, TaskEvent
from qqueue.errors import DatabaseUnavailableError
from qqueue.store import event_reads

log = logging.getLogger("qqueue.api.events")

__all__ = ["EventController", "open_stream"]

#: Most task ids one stream may filter on.
MAX_TASK_IDS = 100
#: History rows per read while a stream catches up.
CATCH_UP_PAGE = 500
#: How long opening a stream waits for the event reader's first read (just after the server starts).
_READY_TIMEOUT_S = 5.0
#: Highest id a Last-Event-ID may name (a bigint).
_MAX_ID = 2**63 - 1

_KEEPALIVE = ServerSentEventMessage(data=None, comment="keepalive")


def _last_event_id(header: str | None, query: str | None) -> int | None:
    """The id to resume after. The header wins: a browser's EventSource sends it on every reconnection while the
    URL keeps its first `last_event_id`."""
    text = header if header is not None else query
    if text is None:
        return None
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > _MAX_ID:
        raise ValidationException(detail="Last-Event-ID: must be the id of an event (a whole number of at most "
                                         f"{len(str(_MAX_ID))} digits)")
    return int(text)


class EventController(Controller):
    """GET /events."""

    path = "/events"
    tags = ["events"]

    @get("/", summary="Task and job status changes, as server-sent events", cache=False,
         media_type="text/event-stream",
         responses={200: ResponseSpec(data_container=TaskEvent | JobEvent, media_type="text/event-stream",
                                      description="A stream of events; each event's data is a TaskEvent "
                                                  "(event: task.status) or a JobEvent (event: job.status)"),
                    **documented("400", "401", "503")})
    async def events(
        self, request: Request[Any, Any, Any], api: Api,
        task_id: Annotated[
            list[uuid.UUID] | None,
            QueryParameter(required=False, description=f"Only these tasks; repeat for several (at most "
                                                       f"{MAX_TASK_IDS})."),
        ] = None,
        job_id: Annotated[uuid.UUID | None, QueryParameter(required=False, description="Only this job's tasks.")]
        = None,
        queue: NameFilter = None,
        last_event_id_header: Annotated[
            str | None,
            HeaderParameter(name="Last-Event-ID", required=False, max_length=64,
                            description="Resume after this event: every later change, none twice."),
        ] = None,
        duration_s: Annotated[
            float | None,
            QueryParameter(ge=0, le=86400, required=False,
                           description="End the stream after this many seconds (0: once the missed events are "
                                       "sent); unset, it lasts until the client leaves or the server stops."),
        ] = None,
        last_event_id: Annotated[
            str | None,
            QueryParameter(required=False, max_length=64,
                           description="As the Last-Event-ID header, for clients that cannot set it; the header "
                                       "wins."),
        ] = None,
    ) -> ServerSentEvent:
        """A stream of `task.status` events (one per row of a task's status history) and `job.status` events
        (a job's status after a change of one of its tasks), each with `id:` (the history row's id), `event:`
        and `data:` (JSON: TaskEvent or JobEvent). With API keys on, only the caller's tasks. Without
        Last-Event-ID the stream starts now; with it, it first sends every later change still in the history.
        A `: keepalive` comment comes when nothing happened for a while. 503 when this process already serves
        its most streams (QQUEUE_API_EVENTS_MAX_STREAMS)."""
        if task_id is not None and len(task_id) > MAX_TASK_IDS:
            raise ValidationException(detail=f"task_id: at most {MAX_TASK_IDS} task ids per stream")
        if duration_s is not None and not math.isfinite(duration_s):
            raise ValidationException(detail="duration_s: must be a finite number of seconds")
        after = _last_event_id(last_event_id_header, last_event_id)
        where = event_reads.EventFilter(tenant=visible_tenant(request.scope),
                                  task_ids=frozenset(task_id) if task_id is not None else None,
                                  job_id=job_id, queue=queue)
        return await open_stream(request, api, where, after=after, duration_s=duration_s)


async def open_stream(request: Request[Any, Any, Any], api: ApiContext, where: event_reads.EventFilter, *,
                      after: int | None = None, duration_s: float | None = None) -> ServerSentEvent:
    """A stream of the events `where` selects, after event `after` (None: from now on), for `duration_s` (None:
    until the client leaves); GET /events and the dashboard's live pages both serve one. Raises
    `EventStreamsFullError` (503) when this process serves its most streams."""
    stream = await api.events.open(where, ready_timeout_s=_READY_TIMEOUT_S)
    cid = correlation.from_scope(request.scope)
    log.info("event stream opened", extra={"correlation_id": cid, "after": after, "streams": api.events.streams})
    return ServerSentEvent(api.events.tie(stream, _body(api, stream, after, duration_s, cid)))


async def _body(
    api: ApiContext, stream: Subscription, after: int | None, duration_s: float | None, cid: str
) -> AsyncIterator[Any]:
    """What the stream sends: the missed events, then the live ones, with keepalives in the quiet."""
    position = stream.start if after is None else after
    clock = asyncio.get_running_loop().time
    end = None if duration_s is None else clock() + duration_s
    try:
        while position < stream.start:
            batch = await api.read(event_reads.event_batch(position, CATCH_UP_PAGE, stream.where, upto=stream.start))
            for message in _messages(batch.rows):
                yield message
            if len(batch.rows) < CATCH_UP_PAGE:
                break
            position = batch.rows[-1].id
        position = max(position, stream.start)
        while True:
            wait_s = api.settings.api_events_keepalive_s
            if end is not None:
                if clock() >= end:
                    return
                wait_s = min(wait_s, end - clock())
            rows = await stream.next(wait_s)
            if rows is None:
                return
            if not rows and end is not None and clock() >= end:
                return
            if not rows:
                yield _KEEPALIVE
                continue
            # Rows at or before the resume point: a Last-Event-ID from a process whose reader was further on.
            fresh = [row for row in rows if row.id > position]
            if fresh:
                position = fresh[-1].id
                for message in _messages(fresh):
                    yield message
    except DatabaseUnavailableError as exc:
        # The client reconnects with the last id it had, and resumes where this stream stopped.
        log.warning("event stream ended: %s", exc, extra={"correlation_id": cid})
    finally:
        api.events.release(stream)
        log.info("event stream closed", extra={"correlation_id": cid})


def _messages(rows: list[event_reads.EventRow]) -> list[ServerSentEventMessage]:
    """Each row's `task.status` event; after a job's last row among them, one `job.status` for that job."""
    last_of_job = {row.job.job_id: i for i, row in enumerate(rows) if row.job is not None}
    out = []
    for i, row in enumerate(rows):
        out.append(ServerSentEventMessage(id=row.id, event="task.status", data=msgspec.json.encode(row.task).decode()))
        if row.job is not None and last_of_job[row.job.job_id] == i:
            out.append(ServerSentEventMessage(id=row.id, event="job.status",
                                              data=msgspec.json.encode(row.job).decode()))
    return out
