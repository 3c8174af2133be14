"""Intake: validate and normalise a circuit submission before it is queued. Pure: no database, no HTTP.

`prepare` parses the OpenQASM source, checks options, shots and limits, measures the circuit (the profile
stored with the task), and returns the payload the worker's kind function receives. The payload carries the
circuit in the form that parses fastest: OpenQASM 2 text whenever the circuit can be written in it
(`qiskit.qasm2.loads` is ~25x faster than the OpenQASM 3 importer), OpenQASM 3 otherwise.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from qiskit import QuantumCircuit, qasm2, qasm3

from qqueue.errors import IntakeError
from qqueue.execution.backends import resolve_backend
from qqueue.execution.versions import library_versions
from qqueue.intake import preflight, source
from qqueue.intake.preflight import IntakeLimits

__all__ = ["CIRCUIT_KINDS", "IntakeLimits", "PreparedTask", "cache_key", "prepare"]

CIRCUIT_KINDS = ("simulate", "transpile", "convert")
CONVERT_TARGETS = ("qasm2", "qasm3", "qir")

_DEFAULT_LIMITS = IntakeLimits()
_canonical = msgspec.json.Encoder(order="sorted")


class PreparedTask(msgspec.Struct, kw_only=True, frozen=True):
    """What intake hands to the queue: the worker's payload, the circuit's profile, and the result-cache key
    (None unless the task is seeded and simulated)."""

    payload: dict[str, Any]
    profile: dict[str, Any]
    cache_key: str | None


def prepare(
    qc: str | bytes,
    *,
    kind: str = "simulate",
    shots: Any = 1024,
    options: dict[str, Any] | None = None,
    limits: IntakeLimits | None = None,
) -> PreparedTask:
    """Validate a submission and normalise it for the worker; raises `IntakeError` with a clear message.

    Examples
    --------
    >>> prepare('OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[1]; x q[0]; measure q -> c;',
    ...         shots=100).profile["qubits"]
    1
    """
    limits = limits or _DEFAULT_LIMITS
    if kind not in CIRCUIT_KINDS:
        raise IntakeError(f"unknown circuit kind {kind!r}; use one of {', '.join(CIRCUIT_KINDS)}",
                          code="unsupported_kind")
    opts = preflight.read_options(options)
    text = source.decode(qc, max_bytes=limits.max_source_bytes)
    version = source.detect_version(text)
    source.check_static(text, max_operations=limits.max_operations)
    circuit = source.parse(text, version).circuit
    if kind == "simulate":
        shots = preflight.check_shots(shots, limits, memory=opts.memory)
        circuit = _measured(circuit, measure_all=opts.measure_all)
    if opts.backend is not None:
        resolve_backend(opts.backend)  # an unknown name is refused now, not at run time
    prof = preflight.profile(circuit, opts.method)
    preflight.check_limits(circuit, prof, limits)
    payload = {"circuit": _fastest_form(circuit), **_kind_fields(kind, opts, shots)}
    return PreparedTask(payload=payload, profile=prof, cache_key=cache_key(kind, payload))


def cache_key(kind: str, payload: dict[str, Any]) -> str | None:
    """Content hash of everything a seeded simulation's result depends on; None when unseeded (those always
    run) and for kinds other than simulate."""
    if kind != "simulate" or payload.get("seed") is None:
        return None
    return hashlib.sha256(_canonical.encode({"kind": kind, "payload": payload, **library_versions()})).hexdigest()


def _measured(circuit: QuantumCircuit, *, measure_all: bool) -> QuantumCircuit:
    measures = circuit.count_ops().get("measure", 0)
    if measure_all:
        if measures:
            raise IntakeError("measure_all was asked for, but the circuit already measures qubits",
                              code="invalid_options")
        measured = circuit.copy()
        measured.measure_all()
        return measured
    if not measures:
        raise IntakeError("the circuit measures nothing, so it would return no counts. Add measurements "
                          '(e.g. "measure q -> c;" in OpenQASM 2, "c = measure q;" in OpenQASM 3) or set the '
                          'option "measure_all": true', code="no_measurement")
    return circuit


def _fastest_form(circuit: QuantumCircuit) -> dict[str, str]:
    try:
        return {"format": "qasm2", "source": qasm2.dumps(circuit)}
    except Exception:  # not expressible in OpenQASM 2 (e.g. classical control flow): keep OpenQASM 3
        return {"format": "qasm3", "source": qasm3.dumps(circuit)}


def _kind_fields(kind: str, opts: preflight.Options, shots: int) -> dict[str, Any]:
    if kind == "simulate":
        return {"shots": shots, "method": opts.method, "seed": opts.seed, "backend": opts.backend,
                "optimization_level": opts.optimization_level, "memory": opts.memory}
    if kind == "transpile":
        if opts.backend is None and not opts.basis_gates:
            raise IntakeError("transpile needs a target: a backend, or basis_gates (and optionally coupling_map)",
                              code="invalid_options")
        coupling = [list(edge) for edge in opts.coupling_map] if opts.coupling_map else None
        return {"backend": opts.backend, "basis_gates": opts.basis_gates, "coupling_map": coupling,
                "optimization_level": 1 if opts.optimization_level is None else opts.optimization_level,
                "seed": opts.seed}
    if opts.target not in CONVERT_TARGETS:
        raise IntakeError(f"convert needs a target: one of {', '.join(CONVERT_TARGETS)}", code="invalid_options")
    return {"target": opts.target}
