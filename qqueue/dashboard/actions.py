"""What the dashboard's forms do: POSTs under /ui (CSRF-checked by the router), each a state change the queue
records in the task's history, answered with a redirect back to the page (post/redirect/get)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from litestar import Controller, Request, post
from litestar.params import FromPath
from litestar.response import Redirect

from qqueue.api import correlation
from qqueue.api.params import Api
from qqueue.dashboard.view import BASE, viewer
from qqueue.errors import InvalidTransitionError
from qqueue.store.queue import cancel_async

log = logging.getLogger("qqueue.api")

__all__ = ["ActionController"]


class ActionController(Controller):
    """POST /ui/tasks/{task_id}/cancel."""

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
