"""The HTTP API: a Litestar app over the queue. `create_app` builds it; `serve` runs it under uvicorn.

`create_app` is loaded on first use: the wire types (`qqueue.api.schemas`), which the Python client shares,
must not cost an import of Litestar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qqueue.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from qqueue.api.app import create_app

        return create_app
    raise AttributeError(f"module 'qqueue.api' has no attribute {name!r}")
