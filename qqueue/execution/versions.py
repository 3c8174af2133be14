"""The library versions a result depends on: recorded in results and in result-cache keys."""

from __future__ import annotations

from functools import cache


@cache
def library_versions() -> dict[str, str]:
    """qiskit and qiskit-aer versions of this process."""
    import qiskit
    import qiskit_aer

    return {"qiskit": qiskit.__version__, "qiskit_aer": qiskit_aer.__version__}
