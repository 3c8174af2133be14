"""The dashboard's pages: overview, task list, task detail, failures, workers. Every figure comes from a typed
read of `qqueue.store.reads`, awaited on the API's pool and scoped to the viewer's tenant."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any, cast

import msgspec
from litestar import Controller, Request, get
from litestar.exceptions import NotFoundException, PermissionDeniedException, ValidationException
from litestar.params import FromPath, QueryParameter
from litestar.response import ServerSentEvent, Template

from qqueue.api.events import open_stream
from qqueue.api.params import Api
from qqueue.api.schemas import MAX_RUNNING, StatusChange
from qqueue.dashboard import charts, filters
from qqueue.dashboard.view import REFRESH_S, page, viewer
from qqueue.errors import CursorError
from qqueue.store import event_reads, job_reads, reads
from qqueue.tasks import TaskStatus

__all__ = ["PageController"]

#: The largest result a task page decodes to draw its counts: a bigger one is linked to, not drawn.
MAX_DRAWN_RESULT_BYTES = 4 * 1024 * 1024
#: Jobs per page of the jobs list.
JOBS_PAGE = 50
#: Notices a page shows after an action (a fixed set: nothing from the query string is written into the page).
NOTICES = {
    "cancelled": "Task cancelled.",
    "cancel_requested": "Cancellation requested: the running task stops shortly.",
    "not_cancellable": "The task had already finished: nothing to cancel.",
    "retried": "Task sent back to pending: it runs again.",
    "not_retryable": "Only a failed or cancelled task can be retried.",
    "over_limit": "Not retried: the tenant would hold more pending tasks than it may.",
    "paused": "Queue paused: no worker claims its tasks until it is resumed.",
    "resumed": "Queue resumed.",
    "limited": "Queue limit set: every worker obeys it from its next claim on.",
}


class PageController(Controller):
    """The pages under /ui."""

    path = "/"

    @get("/", name="ui-overview")
    async def overview(self, request: Request[Any, Any, Any], api: Api) -> Template:
        """Per-queue counts, throughput over the last hour, wait and run-time histograms."""
        tenant = viewer(request).tenant
        queues, minutes, durations = await asyncio.gather(
            api.read(reads.queue_stats(tenant)), api.read(reads.throughput(tenant)), api.read(reads.durations(tenant)))
        return page(request, "overview", refresh_s=REFRESH_S, events="events", queues=queues,
                    max_running_bound=MAX_RUNNING,
                    notice=NOTICES.get(request.query_params.get("notice", "")),
                    throughput=charts.throughput_chart(minutes), ended=sum(
                        m.completed + m.failed + m.cancelled for m in minutes),
                    wait=charts.duration_chart(durations.wait), run=charts.duration_chart(durations.run))

    @get("/tasks", name="ui-tasks")
    async def tasks(self, request: Request[Any, Any, Any], api: Api) -> Template:
        """The task list with every filter of GET /tasks, newest first, keyset-paged."""
        try:
            form = filters.parse({name: request.query_params.getall(name) for name in request.query_params})
        except filters.FilterError as exc:
            return page(request, "tasks", status_code=400, form=filters.TaskFilterForm(), error=str(exc),
                        statuses=list(TaskStatus), page_sizes=filters.PAGE_SIZES, tasks=None)
        listing = await api.read(reads.task_page(form.list_filter(viewer(request).tenant)))
        return page(request, "tasks", form=form, tasks=listing, statuses=list(TaskStatus),
                    page_sizes=filters.PAGE_SIZES, error=None)

    @get("/tasks/{task_id:str}", name="ui-task")
    async def task(self, request: Request[Any, Any, Any], task_id: FromPath[uuid.UUID], api: Api) -> Template:
        """One task: circuit, profile, options, history, error, webhooks, and its counts as a histogram."""
        tenant = viewer(request).tenant
        detail, source = await asyncio.gather(api.read(reads.task_detail(task_id, tenant)),
                                              api.read(reads.task_source(task_id, tenant)))
        # Only a task with a callback has deliveries to list: the others cost no read.
        webhooks = await api.read(reads.task_webhooks(task_id, tenant)) if detail.callback_url else []
        # The read passes the history through as the JSON text Postgres built (a Raw), decoded only here.
        history = msgspec.json.decode(cast(msgspec.Raw, detail.status_history), type=list[StatusChange])
        counts, result_bytes = None, 0
        if detail.result is not None:
            result_bytes = len(detail.result)
            if result_bytes <= MAX_DRAWN_RESULT_BYTES:
                counts = charts.counts_of(msgspec.json.decode(detail.result))
        notice = NOTICES.get(request.query_params.get("notice", ""))
        live = detail.status not in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
        return page(request, "task", refresh_s=REFRESH_S if live else None, events=f"events?task={task_id}",
                    task=detail, source=source, webhooks=webhooks,
                    history=history, counts=counts, histogram=charts.counts_chart(counts) if counts else None,
                    result_bytes=result_bytes, notice=notice,
                    cancellable=detail.status in (TaskStatus.PENDING, TaskStatus.RUNNING)
                    and detail.cancel_requested_at is None,
                    retryable=detail.status in (TaskStatus.FAILED, TaskStatus.CANCELLED))

    @get("/failures", name="ui-failures")
    async def failures(self, request: Request[Any, Any, Any], api: Api) -> Template:
        """Failed tasks grouped by error code and message, with counts and the newest examples."""
        groups = await api.read(reads.failure_groups(viewer(request).tenant))
        return page(request, "failures", groups=groups)

    @get("/jobs", name="ui-jobs")
    async def jobs(self, request: Request[Any, Any, Any], api: Api,
                   cursor: Annotated[str | None, QueryParameter(required=False, max_length=200)] = None) -> Template:
        """Primitive jobs, newest first, with their progress; keyset-paged as the task list is."""
        try:
            if cursor:
                reads.decode_cursor(cursor)
        except CursorError as exc:
            raise ValidationException(detail=str(exc)) from exc
        listing = await api.read(job_reads.job_page(reads.ListFilter(tenant=viewer(request).tenant, limit=JOBS_PAGE,
                                                                 cursor=cursor)))
        return page(request, "jobs", jobs=listing, cursor=cursor)

    @get("/workers", name="ui-workers")
    async def workers(self, request: Request[Any, Any, Any], api: Api) -> Template:
        """Live workers: host, pid, heartbeat age, running tasks, version. Not for a tenant's key."""
        if not viewer(request).sees_workers:
            raise PermissionDeniedException(
                "Where workers run is the operator's to know: a tenant's key has no workers page.")
        return page(request, "workers", workers=await api.read(reads.live_workers()))

    @get("/events", name="ui-events")
    async def events(self, request: Request[Any, Any, Any], api: Api,
                     task: Annotated[uuid.UUID | None, QueryParameter(required=False)] = None) -> ServerSentEvent:
        """The viewer's status changes (of one task, with `task`), as server-sent events: a live page refreshes
        when one arrives. An EventSource cannot send the API's Authorization header, so the dashboard serves
        the stream itself, behind its own sign-in."""
        where = event_reads.EventFilter(tenant=viewer(request).tenant, task_ids=frozenset({task}) if task else None,
                                  job_id=None, queue=None)
        return await open_stream(request, api, where)

    @get("/{rest:path}", name="ui-unknown")
    async def unknown(self, rest: FromPath[str]) -> Template:
        """Any other address under /ui: a 404 page, not the API's JSON answer."""
        raise NotFoundException()
