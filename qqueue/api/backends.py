"""Backend endpoints: GET /backends and GET /backends/{name}, the targets `options.backend` accepts, described
well enough for a client to build a Qiskit `Target` from them.

"aer_simulator" is the ideal simulator (no `backend` option): as wide as intake lets a circuit be, every gate Aer
runs natively, all-to-all. Every other entry is an offline fake IBM device, with the target its runs are
transpiled to (qubits, operations, directed coupling map) and its noise model.

Reading that list means importing Qiskit, Aer and qiskit-ibm-runtime and building some forty devices: seconds
of CPU and a few hundred MB, which the API keeps out of its process (an import in a thread would also hold the
GIL against the event loop for those seconds). So a child process builds it once (`main` prints it as JSON), at
the first request; concurrent first requests await the same child, and the answer is kept for the life of the
app. The list is that of the API's installed libraries, as intake's backend checks are.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import warnings
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath
from litestar.status_codes import HTTP_404_NOT_FOUND

from qqueue.api.errors import documented, error_response
from qqueue.api.schemas import BackendInfo, ErrorAnswer, ErrorDetail
from qqueue.execution.backends import _normalise
from qqueue.intake.model import IntakeLimits

log = logging.getLogger("qqueue.api")

__all__ = ["AER_SIMULATOR", "BackendController", "catalog", "main"]

#: The name of the ideal simulator: what a submission without `options.backend` runs on.
AER_SIMULATOR = "aer_simulator"

#: Aer instructions that read or overwrite the simulator's state: no OpenQASM program can carry them.
_SIMULATOR_ONLY_PREFIXES = ("save_", "set_")

#: Building the list takes a few seconds; a child still running after this is stuck.
_CHILD_TIMEOUT_S = 120.0

_STATE_KEY = "backend_catalog"

_UNKNOWN = {404: ResponseSpec(data_container=ErrorAnswer, description="No backend of that name")}


def catalog() -> list[BackendInfo]:
    """Every backend, the ideal simulator first, then the fake devices by name. Imports Qiskit: run it in a
    child process (`main`), never in the API."""
    # Imported here, not at the top: the API process imports this module and must not load Qiskit.
    from qqueue.execution import backends, runnable
    from qqueue.execution.versions import library_versions

    versions = library_versions()
    aer_gates = sorted(name for name in runnable.runnable_names("automatic")
                       if not name.startswith(_SIMULATOR_ONLY_PREFIXES))
    out = [BackendInfo(
        name=AER_SIMULATOR, num_qubits=IntakeLimits().max_qubits, basis_gates=aer_gates, coupling_map=None,
        simulator=True, noisy=False,
        description=f"Qiskit Aer {versions['qiskit_aer']}, ideal: no noise, no transpilation, "
                    "any qubit with any other; the method is Aer's choice unless options.method sets one. The width "
                    "limit is intake's: what fits in memory depends on the method.",
    )]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in backends.available_backends():
            device = backends.device(name)
            target = getattr(device, "target", None)
            if target is None:  # the fake provider module also exports its provider class under a Fake…V2 name
                continue
            edges = target.build_coupling_map()
            out.append(BackendInfo(
                name=name, num_qubits=target.num_qubits, basis_gates=sorted(target.operation_names),
                coupling_map=[] if edges is None else [[int(a), int(b)] for a, b in edges.get_edges()],
                simulator=True, noisy=True,
                description=f"{type(device).__name__} (qiskit-ibm-runtime offline snapshot, {device.description}, "
                            f"version {device.backend_version}): circuits are transpiled to it and run on Aer "
                            "with its noise model.",
            ))
    return out


async def _read_catalog() -> dict[str, BackendInfo]:
    """Run the child and decode what it prints."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from qqueue.api.backends import main; main()",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), _CHILD_TIMEOUT_S)
    except BaseException:
        # A stuck child, or a request cancelled while waiting: the child must not outlive the wait.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"listing the backends failed (exit {proc.returncode}): "
                           f"{stderr.decode(errors='replace').strip()[-2000:]}")
    found = {b.name: b for b in msgspec.json.decode(stdout, type=list[BackendInfo])}
    log.info("backends listed: %d in %.1f s", len(found), time.monotonic() - started)
    return found


class _Catalog:
    """The backends of one app, read once. A failed read is not kept: the next request tries again."""

    def __init__(self) -> None:
        self._task: asyncio.Task[dict[str, BackendInfo]] | None = None

    async def get(self) -> dict[str, BackendInfo]:
        """Every backend by name, read by the first call (later ones await the same read)."""
        task = self._task
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._task = asyncio.create_task(_read_catalog())
        # Shielded: a client that hangs up must not cancel the read other requests are waiting on.
        return await asyncio.shield(task)


def _catalog_of(request: Request[Any, Any, Any]) -> _Catalog:
    state = request.app.state
    found = state.get(_STATE_KEY)
    if found is None:
        found = state[_STATE_KEY] = _Catalog()
    return found


class BackendController(Controller):
    """GET /backends, GET /backends/{name}."""

    path = "/backends"
    tags = ["backends"]

    @get("/", summary="Backends runs can target", responses=documented("401"))
    async def list_backends(self, request: Request[Any, Any, Any]) -> list[BackendInfo]:
        """The ideal simulator, "aer_simulator", and every offline fake device `options.backend` accepts, with
        their qubits, basis gates and coupling maps. The first request reads them from the installed
        libraries (a few seconds); later ones answer at once."""
        return list((await _catalog_of(request).get()).values())

    @get("/{name:str}", summary="One backend", responses={**_UNKNOWN, **documented("401")})
    async def get_backend(self, request: Request[Any, Any, Any], name: FromPath[str]) -> Response[BackendInfo]:
        """A backend by name: "aer_simulator", or a device as `options.backend` names it ("fake_manila",
        "manila" and "FakeManilaV2" are the same device)."""
        known = await _catalog_of(request).get()
        found = known.get(name) or known.get(_normalise(name))
        if found is None:
            message = (f"Unknown backend {name[:64]!r}; GET /backends lists the {len(known)} there are "
                       f"({AER_SIMULATOR!r} and the fake IBM devices, e.g. 'fake_manila').")
            return error_response(HTTP_404_NOT_FOUND, message,  # type: ignore[return-value]
                                  error=ErrorDetail(code="unknown_backend", message=message,
                                                    details={"available": sorted(known)}))
        return Response(found)


def main() -> None:
    """Print the catalog as JSON: what the API's child process runs."""
    sys.stdout.buffer.write(msgspec.json.encode(catalog()))
