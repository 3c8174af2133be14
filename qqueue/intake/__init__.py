"""Intake: validate and normalise a circuit submission before it is queued. No database, no HTTP.

`prepare` checks the OpenQASM source, its options, shots and limits, measures the circuit (the profile stored
with the task), and returns the payload the worker's kind function receives. The work itself
(`qqueue.intake.pipeline`) never runs in the caller's process: it runs in a bounded parser process
(`qqueue.intake.pool`), so no circuit, however hostile, can exhaust the memory or the time of the process that
submits it. This package imports no Qiskit.
"""

from __future__ import annotations

from typing import Any

from qqueue.intake.model import CIRCUIT_KINDS, MAX_SHOTS, IntakeLimits, IntakeRequest, PreparedTask
from qqueue.intake.pool import ParserPool, default_pool

__all__ = ["CIRCUIT_KINDS", "MAX_SHOTS", "IntakeLimits", "IntakeRequest", "ParserPool", "PreparedTask", "prepare"]


def prepare(
    qc: str | bytes,
    *,
    kind: str = "simulate",
    shots: Any = 1024,
    options: dict[str, Any] | None = None,
    limits: IntakeLimits | None = None,
    timeout_s: float | None = None,
    pool: ParserPool | None = None,
    **fields: Any,
) -> PreparedTask:
    """Validate a submission and normalise it for the worker; raises `IntakeError` with a clear message.

    `timeout_s` is the run's time limit: a simulation estimated to outlast it is refused. `pool` defaults to
    a process-wide pool of one parser process. `fields` are the other fields of `IntakeRequest`
    (parameter_values, observables, precision, outputs, chunk_size).

    Examples
    --------
    >>> prepare('OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[1]; x q[0]; measure q -> c;',
    ...         shots=100).profile["qubits"]
    1
    """
    request = IntakeRequest(qc=qc, kind=kind, shots=shots, options=options, limits=limits or IntakeLimits(),
                            timeout_s=timeout_s, **fields)
    return (pool or default_pool()).prepare(request)
