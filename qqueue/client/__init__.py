"""Python client of the qqueue HTTP API: `Client` (blocking) and `AsyncClient` (asyncio).

    from qqueue.client import Client

    with Client("http://127.0.0.1:8000", api_key=None) as qq:
        task = qq.submit(bell_qasm, shots=1000)
        print(qq.wait(task.task_id, timeout=60).result["counts"])

The Qiskit adapters (`QQueueBackend`, `SamplerV2`, `EstimatorV2`) are imported on first use, so importing this
package costs no Qiskit import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from qqueue.client.client import AsyncClient, Client
from qqueue.client.errors import ApiError, TransportError, WaitTimeoutError

if TYPE_CHECKING:
    from qqueue.client.backend import QQueueBackend
    from qqueue.client.primitives import EstimatorV2, SamplerV2

#: Names loaded on first access, and the module each lives in.
_LAZY = {
    "QQueueBackend": "qqueue.client.backend",
    "SamplerV2": "qqueue.client.primitives",
    "EstimatorV2": "qqueue.client.primitives",
}

__all__ = ["ApiError", "AsyncClient", "Client", "EstimatorV2", "QQueueBackend", "SamplerV2", "TransportError",
           "WaitTimeoutError"]


def __getattr__(name: str) -> Any:
    """Import a Qiskit adapter when it is first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
