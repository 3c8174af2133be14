"""Operations endpoints: GET /health (for load balancers and orchestrators), GET /queues, GET /workers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from litestar import Controller, Request, Response, get
from litestar.exceptions import NotAuthorizedException
from litestar.openapi.datastructures import ResponseSpec

from qqueue.api.auth import EXCLUDE_FROM_AUTH, authenticate, principal_of, visible_tenant
from qqueue.api.errors import documented
from qqueue.api.params import Api
from qqueue.api.schemas import Health, QueueStats, WorkerInfo
from qqueue.errors import DatabaseUnavailableError
from qqueue.store import reads

#: The 503 answers, documented so that clients (and the schema checks) know them.
_UNHEALTHY = {503: ResponseSpec(data_container=Health, description="The database cannot be reached or its schema "
                                                                   "is not current")}


class OperationsController(Controller):
    """Health, queue statistics and live workers."""

    path = "/"
    tags = ["operations"]

    @get("/health", summary="Is the API able to serve?", cache=False, opt={EXCLUDE_FROM_AUTH: True},
         security=[{}], responses=_UNHEALTHY)
    async def health(self, request: Request[Any, Any, Any], api: Api) -> Response[Health]:
        """200 when the database answers and its schema is current; 503 otherwise, answered within a few
        seconds even while the database is down. Recovers by itself when the database returns. With API keys
        on, a caller without a valid key is told only up or down: no figures about queues or workers reach it."""
        expected = api.expected_schema_version
        figures = not api.settings.api_auth or await _has_valid_key(request)
        now = datetime.now(UTC)
        try:
            figures_row = await api.read(reads.health(), timeout=api.settings.api_health_timeout_s)
        except DatabaseUnavailableError:
            return _unhealthy(Health(status="unhealthy", timestamp=now, database_status="disconnected",
                                     queue_status="disconnected", database="unreachable", schema="unknown",
                                     schema_version=None, expected_schema_version=expected, live_workers=None,
                                     queue_depth=None, long_polls=api.waiters.waiting if figures else None,
                                     message="The database cannot be reached."))
        except psycopg.errors.UndefinedTable:
            return _unhealthy(Health(status="unhealthy", timestamp=now, database_status="connected",
                                     queue_status="disconnected", database="ok", schema="missing",
                                     schema_version=None, expected_schema_version=expected, live_workers=None,
                                     queue_depth=None, long_polls=api.waiters.waiting if figures else None,
                                     message="The database has no qqueue schema; run `qqueue migrate`."))
        versions = figures_row.versions
        behind = not api.expected_schema_versions <= set(versions)
        health = Health(
            status="unhealthy" if behind else "healthy", timestamp=now, database_status="connected",
            queue_status="disconnected" if behind else "connected", database="ok",
            schema="behind" if behind else "current", schema_version=max(versions, default=None),
            expected_schema_version=expected, live_workers=figures_row.live_workers if figures else None,
            queue_depth=figures_row.queue_depth if figures else None,
            long_polls=api.waiters.waiting if figures else None,
            message="The database schema is behind; run `qqueue migrate`." if behind else None,
        )
        return _unhealthy(health) if behind else Response(health)

    @get("/queues", summary="Per-queue task counts", cache=False, responses=documented("401", "503"))
    async def queues(self, request: Request[Any, Any, Any], api: Api) -> list[QueueStats]:
        """From the qqueue.queue_stats view: pending, due, running, finished counts and the oldest due age.
        With API keys on, counted over the caller's own tasks only."""
        return await api.read(reads.queue_stats(visible_tenant(request.scope)))

    @get("/workers", summary="Live workers", cache=False, responses=documented("401", "503"))
    async def workers(self, request: Request[Any, Any, Any], api: Api) -> list[WorkerInfo]:
        """From the qqueue.live_workers view: workers that heartbeat within the last minute. Where they run
        (host name, process id) is the operator's to know: a tenant's key sees every other field."""
        return await api.read(reads.live_workers(show_hosts=principal_of(request.scope).operator))


async def _has_valid_key(request: Request[Any, Any, Any]) -> bool:
    """Whether the request carries a valid key; with the database down there is no telling, and so no figures."""
    if "authorization" not in request.headers:
        return False
    try:
        await authenticate(request)
    except (NotAuthorizedException, DatabaseUnavailableError, psycopg.Error):
        return False
    return True


def _unhealthy(health: Health) -> Response[Any]:
    return Response(health, status_code=503, headers={"Retry-After": "1"})
