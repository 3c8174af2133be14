"""The Litestar application factory.

`create_app(settings, database_url)` builds the app; nothing touches the database until its lifespan starts
(see `ApiContext.lifespan`): it opens the pool and waits for it, failing fast when the database cannot be
reached, checks that the schema is current, and starts the listener that drives long-polls.
"""

from __future__ import annotations

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Reference, SecurityScheme

import qqueue
from qqueue import dashboard
from qqueue.api import bodies, correlation, docs
from qqueue.api.auth import bearer_auth
from qqueue.api.backends import BackendController
from qqueue.api.context import ApiContext
from qqueue.api.errors import EXCEPTION_HANDLERS, JsonBodyRequest
from qqueue.api.events import EventController
from qqueue.api.health import OperationsController
from qqueue.api.jobs import JobController
from qqueue.api.metrics import FleetMetrics, metrics
from qqueue.api.queues import QueueController
from qqueue.api.tasks import BatchController, TaskController
from qqueue.config import Settings

__all__ = ["create_app"]


def create_app(settings: Settings, database_url: str) -> Litestar:
    """The qqueue HTTP API on `database_url`, configured by `settings`.

    Examples
    --------
    >>> app = create_app(load_settings(), "postgresql://qqueue@db/qqueue")
    >>> uvicorn.run(app, host="0.0.0.0", port=8000)
    """
    context = ApiContext(settings, database_url)
    fleet = FleetMetrics(context)
    # The timer first (outermost), so it also sees the requests authentication refuses.
    middleware = [fleet.middleware(), *([bearer_auth()] if settings.api_auth else [])]
    security = Components(security_schemes={"apiKey": SecurityScheme(
        type="http", scheme="bearer", description="A key from `qqueue keys create`.")})
    app = Litestar(
        route_handlers=[
            Router(path="/", route_handlers=[TaskController, OperationsController, QueueController, BackendController,
                                             EventController],
                   request_max_body_size=settings.api_max_body_bytes),
            Router(path="/", route_handlers=[BatchController, JobController],
                   request_max_body_size=settings.api_max_batch_body_bytes),
            metrics,
            docs.assets_router(),
            *dashboard.routes(settings),
        ],
        template_config=dashboard.template_config(),
        dependencies={"api": Provide(lambda: context, use_cache=True, sync_to_thread=False)},
        lifespan=[context.lifespan],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_class=JsonBodyRequest,
        opt={bodies.LIMIT_OPT: settings.api_max_body_bytes},
        before_send=[correlation.echo_header],
        openapi_config=OpenAPIConfig(
            title="qqueue",
            version=qqueue.__version__,
            description="Run OpenQASM circuits asynchronously on a PostgreSQL-only task queue.",
            path="/schema",
            render_plugins=docs.render_plugins(),
            # With API keys on, every operation but GET /health (which opts out) needs a bearer key.
            components=security if settings.api_auth else Components(),
            security=[{"apiKey": []}] if settings.api_auth else None,
        ),
        logging_config=None,
        state=State({"api": context, "metrics": fleet}),
        middleware=middleware,
    )
    _document_batch_items(app)
    return app


def _document_batch_items(app: Litestar) -> None:
    """A batch's items are decoded one by one (each refused alone), so its body type takes any item; the
    document says what each must be. Litestar builds the document once and keeps it: amended in place."""
    schemas = app.openapi_schema.components.schemas or {}
    tasks = schemas["BatchSubmission"].properties["tasks"]  # type: ignore[index]
    tasks.items = Reference(ref="#/components/schemas/TaskSubmission")  # type: ignore[union-attr]
