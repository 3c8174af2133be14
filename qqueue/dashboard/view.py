"""What every dashboard page shares: who is looking (and so what they may see), the template context, the
template engine's filters, and errors answered as pages instead of the API's JSON."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litestar import Request, Response
from litestar.exceptions import NotAuthorizedException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.template import TemplateConfig

from qqueue.api.auth import visible_tenant
from qqueue.api.errors import EXCEPTION_HANDLERS
from qqueue.api.schemas import ErrorAnswer

__all__ = ["BACKSTOP_S", "BASE", "LOGIN", "REFRESH_S", "STATIC_DIR", "Viewer", "exception_handlers", "page",
           "template_config", "viewer"]

BASE = "/ui"
LOGIN = f"{BASE}/login"
#: How often the overview and a task's page poll for fresh figures when the browser has no event stream.
REFRESH_S = 3
#: With a stream, a live page refreshes when an event arrives (at most once per REFRESH_S), and polls this seldom
#: only for what no event announces (due counts turning due, ages).
BACKSTOP_S = 30
STATIC_DIR = Path(__file__).parent / "static"
TEMPLATE_DIR = Path(__file__).parent / "templates"


class Viewer:
    """Who is looking: every tenant (keys off, or an operator's key) or one tenant, whose view is its own tasks."""

    def __init__(self, tenant: str | None, *, keys_on: bool) -> None:
        self.tenant = tenant
        self.keys_on = keys_on

    @property
    def sees_workers(self) -> bool:
        """Where workers run is the operator's to know: a tenant's key has no workers page."""
        return self.tenant is None

    @property
    def controls_queues(self) -> bool:
        """A queue is shared by every tenant submitting to it: only an operator pauses or resumes it."""
        return self.tenant is None


def viewer(request: Request[Any, Any, Any]) -> Viewer:
    """The viewer of this request (the dashboard's cookie, checked before the handler runs, set its tenant)."""
    return Viewer(visible_tenant(request.scope), keys_on=request.app.state["api"].settings.api_auth)


def page(request: Request[Any, Any, Any], name: str, *, status_code: int = 200, refresh_s: int | None = None,
         events: str | None = None, **context: Any) -> Template:
    """The page `name`.html with `context`, plus what the layout needs (the viewer, the current section). A live
    page (`refresh_s`) refreshes itself, when `events` (a stream under /ui) says something changed."""
    return Template(template_name=f"{name}.html", status_code=status_code,
                    context={"viewer": viewer(request), "section": name, "refresh_s": refresh_s, "base": BASE,
                             "events": f"{BASE}/{events}" if events and refresh_s else None,
                             "backstop_s": BACKSTOP_S, **context})


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """The app's templates: the dashboard's folder, with its filters."""
    return TemplateConfig(directory=TEMPLATE_DIR, engine=JinjaTemplateEngine, engine_callback=_add_filters)


def _add_filters(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters.update({"seconds": seconds, "moment": moment, "state": state})


def state(value: object) -> str:
    """A status as its value ("running"), whether a `TaskStatus` or the plain string a row holds."""
    return str(getattr(value, "value", value))


def seconds(value: float | None) -> str:
    """A duration for people: "850 ms", "12.3 s", "4 min 10 s", "2 h 5 min"; "–" for none."""
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def moment(value: datetime | None) -> str:
    """A time in UTC to the second; "–" for none."""
    if value is None:
        return "–"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def exception_handlers() -> dict[type[Exception], Callable[[Request[Any, Any, Any], Any], Response[Any]]]:
    """The API's error handlers, answering a page with the same status and message instead of JSON; a request
    without a valid key is sent to the login form."""
    handlers: dict[type[Exception], Callable[[Request[Any, Any, Any], Any], Response[Any]]] = {
        cls: _as_page(handler) for cls, handler in EXCEPTION_HANDLERS.items()}
    handlers[NotAuthorizedException] = _to_login
    return handlers


def _as_page(handler: Callable[[Request[Any, Any, Any], Any], Response[ErrorAnswer]]
             ) -> Callable[[Request[Any, Any, Any], Any], Response[Any]]:
    def answer(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        json = handler(request, exc)
        body: ErrorAnswer = json.content
        return page(request, "error", status_code=json.status_code or 500, message=body.message,
                    correlation_id=body.correlation_id)
    return answer


def _to_login(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    return Redirect(LOGIN, status_code=303)


def now() -> datetime:
    """The current time, for "as of" lines."""
    return datetime.now(UTC)
