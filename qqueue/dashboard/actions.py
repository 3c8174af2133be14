"""What the dashboard's forms do: POSTs under /ui (CSRF-checked by the router), each a state change the queue
records (in the task's history, or as a queue event), answered with a redirect back to the page
(post/redirect/get)."""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.params import Body, FromPath
from litestar.response import Redirect

from qqueue.api import correlation
from qqueue.api.auth import principal_of, requires_operator
from qqueue.api.params import Api
from qqueue.api.queues import QueuePath
from qqueue.api.schemas import MAX_RUNNING, QueueLimit
from qqueue.api.tasks import retry_as_caller
from qqueue.dashboard.view import BASE, viewer
from qqueue.errors import InvalidTransitionError, RateLimitedError
from qqueue.store import controls
from qqueue.store.queue import cancel_async
from qqueue.store.retries import RetryFilter

log = logging.getLogger("qqueue.api")

__all__ = ["ActionController"]


class ActionController(Controller):
    """POST /ui/tasks/{task_id}/cancel and /retry, /ui/queues/{name}/pause, /resume and /limit."""

    path = "/"

    @post("/tasks/{task_id:str}/cancel", status_code=303)
    async def cancel(self, request: Request[Any, Any, Any], task_id: FromPath[uuid.UUID], api: Api) -> Redirect:
        """Cancel the task (a pending one at once, a running one asked to stop), as POST /tasks/{id}/cancel does;
        another tenant's task is not found."""
        try:
            async with api.connection() as conn:
                outcome = await cancel_async(conn, task_id, tenant=viewer(request).tenant)
        except InvalidTransitionError:
            outcome = "not_cancellable"
        log.info("task %s from the dashboard", outcome.replace("_", " "),
                 extra={"task_id": str(task_id), "correlation_id": correlation.from_scope(request.scope)})
        return Redirect(f"{BASE}/tasks/{task_id}?notice={outcome}", status_code=303)

    @post("/tasks/{task_id:str}/retry", status_code=303)
    async def retry(self, request: Request[Any, Any, Any], task_id: FromPath[uuid.UUID], api: Api) -> Redirect:
        """Send a failed or cancelled task back to pending, as POST /tasks/{id}/retry does (its history notes
        who asked, from the dashboard); another tenant's task is not found."""
        try:
            result = await retry_as_caller(request, api, RetryFilter(ids=[task_id]), "from the dashboard")
            outcome = "retried" if result.retried else "not_retryable"
        except RateLimitedError:
            outcome = "over_limit"
        log.info("task retry from the dashboard: %s", outcome.replace("_", " "),
                 extra={"task_id": str(task_id), "correlation_id": correlation.from_scope(request.scope)})
        return Redirect(f"{BASE}/tasks/{task_id}?notice={outcome}", status_code=303)

    @post("/queues/{name:str}/pause", status_code=303, guards=[requires_operator])
    async def pause(self, request: Request[Any, Any, Any], name: QueuePath, api: Api) -> Redirect:
        """Pause the queue, as POST /queues/{name}/pause does (operators only), recorded as a queue event."""
        return await _control(request, api, name, pause=True)

    @post("/queues/{name:str}/resume", status_code=303, guards=[requires_operator])
    async def resume(self, request: Request[Any, Any, Any], name: QueuePath, api: Api) -> Redirect:
        """Resume the queue (operators only), recorded as a queue event."""
        return await _control(request, api, name, pause=False)

    @post("/queues/{name:str}/limit", status_code=303, guards=[requires_operator])
    async def limit(self, request: Request[Any, Any, Any], name: QueuePath, api: Api,
                    data: Annotated[LimitForm, Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Redirect:
        """Set the queue's max_running (empty: no limit), as POST /queues/{name}/limit does (operators only)."""
        return await _control(request, api, name, max_running=data.limit().max_running)


class LimitForm(msgspec.Struct, kw_only=True):
    """The limit form's body: the queue's max_running as typed, empty for no limit."""

    max_running: Annotated[str, msgspec.Meta(max_length=20)] = ""

    def limit(self) -> QueueLimit:
        """The typed field as the API's own body, so the API's bound is the form's; `ValidationException` (a
        400 page) when it is not a limit."""
        text = self.max_running.strip()
        if not text:
            return QueueLimit(max_running=None)
        if text.isascii() and text.isdigit():
            with contextlib.suppress(msgspec.ValidationError):
                return msgspec.convert({"max_running": int(text)}, QueueLimit)
        raise ValidationException(detail=f"max running: a whole number from 1 to {MAX_RUNNING:,}, or empty for no "
                                         "limit")


async def _control(request: Request[Any, Any, Any], api: Api, name: str, **change: Any) -> Redirect:
    actor = principal_of(request.scope).actor(via="dashboard")
    async with api.connection() as conn:
        changed = await controls.apply_async(conn, controls.change(name, actor=actor, **change))
    notice = ("limited" if "max_running" in change else "paused" if changed.paused else "resumed")
    log.info("queue %s controls from the dashboard: paused=%s max_running=%s", name, changed.paused,
             changed.max_running, extra={"queue": name, "correlation_id": correlation.from_scope(request.scope)})
    return Redirect(f"{BASE}/?notice={notice}", status_code=303)
