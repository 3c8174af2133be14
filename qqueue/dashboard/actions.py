"""What the dashboard's forms do: POSTs under /ui (CSRF-checked by the router), each a state change the queue
records (in the task's history, or as a queue event), answered with a redirect back to the page
(post/redirect/get)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from litestar import Controller, Request, post
from litestar.params import FromPath
from litestar.response import Redirect

from qqueue.api import correlation
from qqueue.api.auth import requires_operator
from qqueue.api.params import Api
from qqueue.api.queues import QueuePath
from qqueue.api.tasks import retry_as_caller
from qqueue.dashboard.view import BASE, viewer
from qqueue.errors import InvalidTransitionError, RateLimitedError
from qqueue.store import controls
from qqueue.store.queue import cancel_async
from qqueue.store.retries import RetryFilter

log = logging.getLogger("qqueue.api")

__all__ = ["ActionController"]


class ActionController(Controller):
    """POST /ui/tasks/{task_id}/cancel and /retry, /ui/queues/{name}/pause and /ui/queues/{name}/resume."""

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


async def _control(request: Request[Any, Any, Any], api: Api, name: str, *, pause: bool) -> Redirect:
    prefix = request.scope.get("auth")
    actor = f"dashboard, api key {prefix}" if isinstance(prefix, str) else "dashboard"
    async with api.connection() as conn:
        changed = await controls.apply_async(conn, controls.change(name, pause=pause, actor=actor))
    log.info("queue %s %s from the dashboard", name, "paused" if changed.paused else "resumed",
             extra={"queue": name, "correlation_id": correlation.from_scope(request.scope)})
    return Redirect(f"{BASE}/?notice={'paused' if changed.paused else 'resumed'}", status_code=303)
