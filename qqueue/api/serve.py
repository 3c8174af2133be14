"""Run the HTTP API under uvicorn: `serve(settings, database_url, host, port)`, called by `qqueue serve`."""

from __future__ import annotations

import logging
import socket

import uvicorn

from qqueue.api.app import create_app
from qqueue.api.context import ApiContext
from qqueue.config import Settings
from qqueue.errors import QQueueError
from qqueue.logs import setup_logging
from qqueue.store import db, migrate

#: How long a stopping server lets requests (long-polls included) finish.
GRACEFUL_SHUTDOWN_S = 5


def serve(settings: Settings, database_url: str, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the API until SIGINT/SIGTERM.

    Raises `DatabaseUnavailableError` or `SchemaNotReadyError` (one clear line, no traceback) when the database
    is unreachable or its schema is behind; the app's lifespan checks the same again when it starts.
    """
    setup_logging(settings.log_level)
    if not settings.api_auth and host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("qqueue.api").warning(
            "API keys are off and the API listens on %s: whoever reaches it can read, submit and cancel every "
            "task (turn keys on with --auth or QQUEUE_API_AUTH=true)", host)
    _json_logs_for("psycopg", logging.WARNING)
    _json_logs_for("uvicorn", settings.log_level)
    with db.connection(database_url, connect_timeout_s=5) as conn:
        migrate.check_current(conn)
    app = create_app(settings, database_url)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # One JSON log line per API event is ours to write; uvicorn's access log is plain text and per request.
        access_log=False,
        log_config=None,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        server_header=False,
    )
    server = _Server(config, app.state["api"])
    server.run()
    if not server.started:
        raise QQueueError("the API did not start; see the log above")


class _Server(uvicorn.Server):
    """uvicorn's server, plus one thing: when a shutdown begins, pending long-polls answer at once with their
    task's current state and event streams end, instead of being cut off when the graceful period runs out."""

    def __init__(self, config: uvicorn.Config, context: ApiContext) -> None:
        super().__init__(config)
        self._context = context

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._context.waiters.close()
        self._context.events.close()
        await super().shutdown(sockets=sockets)


def _json_logs_for(name: str, level: int | str) -> None:
    """Write a library's logs through qqueue's JSON handler (psycopg_pool reports lost connections and
    reconnection attempts on 'psycopg', uvicorn its start and failures); otherwise they reach stderr as
    plain text, or nowhere."""
    library = logging.getLogger(name)
    library.setLevel(level.upper() if isinstance(level, str) else level)
    library.propagate = False
    for handler in logging.getLogger("qqueue").handlers:
        if handler not in library.handlers:
            library.addHandler(handler)

