"""The web dashboard at /ui: server-rendered pages (Jinja2 templates, SVG charts drawn on the server) over the
same reads as the JSON API, a few lines of plain JavaScript for live refresh, and CSRF-protected forms for actions.
Everything it serves ships in this package, so it works offline.

`routes(settings)` gives the app what to mount; `template_config()` the template engine.
"""

from __future__ import annotations

from typing import Any

from litestar import Router
from litestar.static_files import create_static_files_router

from qqueue.api.auth import EXCLUDE_FROM_AUTH
from qqueue.config import Settings
from qqueue.dashboard.actions import ActionController
from qqueue.dashboard.pages import PageController
from qqueue.dashboard.session import LoginController, cookie_auth, csrf
from qqueue.dashboard.view import BASE, STATIC_DIR, exception_handlers, template_config

__all__ = ["BASE", "routes", "template_config"]

#: Largest body of a dashboard form (a login key, a CSRF token).
MAX_FORM_BYTES = 16 * 1024


def routes(settings: Settings) -> list[Any]:
    """The dashboard's pages and forms (signed in with a key when API keys are on), and its static files."""
    middleware = [csrf(settings), *([cookie_auth()] if settings.api_auth else [])]
    pages = Router(path=BASE, route_handlers=[PageController, ActionController, LoginController],
                   middleware=middleware, exception_handlers=exception_handlers(),  # type: ignore[arg-type]
                   include_in_schema=False, request_max_body_size=MAX_FORM_BYTES)
    static = create_static_files_router(path=f"{BASE}/static", directories=[STATIC_DIR], name="ui-static",
                                        include_in_schema=False, opt={EXCLUDE_FROM_AUTH: True})
    return [pages, static]
