"""The interactive API docs at /schema, offline: Swagger UI's files come from the `swagger-ui-py` package and are
served by the app itself under /schema/assets, so the page loads nothing from a CDN (Litestar's default does)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

__all__ = ["ASSETS", "assets_router", "render_plugins"]

#: Where the vendored Swagger UI files are served.
ASSETS = "/schema/assets"

def _swagger_dir() -> Path:
    # Located, not imported: the package's Python side (framework adapters) is not used.
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing; reinstall qqueue")
    return Path(next(iter(spec.submodule_search_locations))) / "static"



def render_plugins() -> list[OpenAPIRenderPlugin]:
    """Swagger UI at /schema (and /schema/swagger, where it was) from the local assets, and the JSON document."""
    favicon = f"<link rel='icon' type='image/png' href='{ASSETS}/favicon-32x32.png'>"
    return [SwaggerRenderPlugin(path=["/", "/swagger"], js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                css_url=f"{ASSETS}/swagger-ui.css",
                                standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
                                favicon=favicon),
            JsonRenderPlugin()]


def assets_router() -> Any:
    """The static files router of the vendored Swagger UI (public, as the docs are)."""
    return create_static_files_router(path=ASSETS, directories=[_swagger_dir()], name="docs-assets",
                                      include_in_schema=False)
