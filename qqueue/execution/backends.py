"""Device backends: IBM devices from qiskit-ibm-runtime's offline fake provider, by friendly name.

"fake_manila", "manila", "FakeManilaV2" all name the same device. Simulators built from a device's noise model
are cached per process: building one costs tens of milliseconds, running a small circuit on it about one.
"""

from __future__ import annotations

import re
import warnings
from functools import cache
from typing import Any

from qqueue.errors import IntakeError


@cache
def _devices() -> dict[str, str]:
    """Friendly name -> class name of every fake V2 device."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from qiskit_ibm_runtime import fake_provider
    out = {}
    for name in dir(fake_provider):
        match = re.fullmatch(r"Fake(\w+)V2", name)
        if match and not name.startswith("FakeProvider"):  # FakeProviderForBackendV2 is no device
            out[f"fake_{match[1].lower()}"] = name
    return out


def _normalise(name: str) -> str:
    key = name.strip().lower()
    match = re.fullmatch(r"fake(\w+?)(v2)?", key.replace("_", ""))
    return f"fake_{match[1]}" if match else f"fake_{key}"


def available_backends() -> list[str]:
    """Names accepted as `backend`."""
    return sorted(_devices())


def resolve_backend(name: str) -> str:
    """The canonical name of a device, or an `IntakeError` listing the ones there are."""
    key = _normalise(name)
    if key not in _devices():
        raise IntakeError(f"unknown backend {name!r}; use one of the {len(_devices())} fake IBM devices, e.g. "
                          "fake_manila or fake_jakarta (all are listed in details.available)",
                          code="unknown_backend", details={"available": available_backends()})
    return key


@cache
def device(name: str) -> Any:
    """The fake device object (a BackendV2) for a backend name."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from qiskit_ibm_runtime import fake_provider

        return getattr(fake_provider, _devices()[resolve_backend(name)])()


@cache
def noisy_simulator(name: str, method: str) -> Any:
    """An AerSimulator with the device's noise model, coupling map and basis gates."""
    from qiskit_aer import AerSimulator

    return AerSimulator.from_backend(device(name), method=method, max_parallel_threads=1)


@cache
def ideal_simulator(method: str) -> Any:
    """A noiseless AerSimulator for `method`, on one thread: slots are the parallelism, and Aer's own threads
    in forked slot processes made a Bell circuit 4x slower (4.2 ms against 1.2 ms per circuit, measured)."""
    from qiskit_aer import AerSimulator

    return AerSimulator(method=method, max_parallel_threads=1)
