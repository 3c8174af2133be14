"""The HTTP API: a Litestar app over the queue. `create_app` builds it; `serve` runs it under uvicorn."""

from qqueue.api.app import create_app

__all__ = ["create_app"]
