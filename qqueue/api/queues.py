"""Queue controls: POST /queues/{name}/pause, /resume and /limit, for operators.

A change is one statement (qqueue/store/controls.py) and is obeyed by every worker from its next claim on. With
API keys on, only an operator may change a queue: a queue is shared by every tenant that submits to it.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from litestar import Controller, Request, post
from litestar.params import JSONBody, PathParameter

from qqueue.api import correlation
from qqueue.api.auth import principal_of, requires_operator
from qqueue.api.errors import documented
from qqueue.api.params import Api
from qqueue.api.schemas import NAME_PATTERN, QueueControls, QueueLimit
from qqueue.store import controls

log = logging.getLogger("qqueue.api")

QueuePath = Annotated[str, PathParameter(pattern=NAME_PATTERN, max_length=64, description="The queue's name.")]


class QueueController(Controller):
    """Pause, resume and limit a queue."""

    path = "/queues/{name:str}"
    tags = ["operations"]
    guards = [requires_operator]

    @post("/pause", status_code=200, summary="Pause a queue", responses=documented("400", "401", "403", "503"))
    async def pause(self, request: Request[Any, Any, Any], name: QueuePath, api: Api) -> QueueControls:
        """No worker claims the queue's tasks from its next claim on; running ones finish. Pausing a paused
        queue changes nothing. A queue may be paused before any task is queued to it."""
        return await _apply(request, api, controls.change(name, pause=True, actor=_actor(request)))

    @post("/resume", status_code=200, summary="Resume a paused queue",
          responses=documented("400", "401", "403", "503"))
    async def resume(self, request: Request[Any, Any, Any], name: QueuePath, api: Api) -> QueueControls:
        """Workers claim the queue's tasks again, and idle ones are woken at once."""
        return await _apply(request, api, controls.change(name, pause=False, actor=_actor(request)))

    @post("/limit", status_code=200, summary="Limit how many of a queue's tasks run at once",
          responses=documented("400", "401", "403", "503"))
    async def limit(self, request: Request[Any, Any, Any], name: QueuePath, data: JSONBody[QueueLimit],
                    api: Api) -> QueueControls:
        """At most `max_running` of the queue's tasks run at once over every worker (tasks already running
        beyond a lowered limit finish; no new one starts until the queue is under it). Null removes the limit."""
        return await _apply(request, api, controls.change(name, max_running=data.max_running,
                                                          actor=_actor(request)))


def _actor(request: Request[Any, Any, Any]) -> str:
    """Who changed the queue, for its history: the API key's prefix when keys are on."""
    return principal_of(request.scope).actor()


async def _apply(request: Request[Any, Any, Any], api: Api, statement: controls.Change) -> QueueControls:
    async with api.connection() as conn:
        changed = await controls.apply_async(conn, statement)
    log.info("queue %s controls: paused=%s max_running=%s", changed.queue, changed.paused, changed.max_running,
             extra={"correlation_id": correlation.from_scope(request.scope), "queue": changed.queue})
    return changed
