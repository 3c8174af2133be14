"""The task payload intake stores: the circuit in the form that parses fastest, the kind's fields (as the kind's
struct of `qqueue.payloads`), a PUB's parts, and the result-cache key. Pure."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec
from qiskit import QuantumCircuit, qasm2, qasm3

from qqueue.errors import IntakeError
from qqueue.execution.versions import library_versions
from qqueue.intake import inputs, preflight, sweeps
from qqueue.intake.model import PRIMITIVE_KINDS, IntakeLimits, IntakeRequest
from qqueue.payloads import (
    UNSET,
    CircuitPayload,
    ConvertPayload,
    EstimatePayload,
    SamplePayload,
    SimulatePayload,
    StoredCircuit,
    TranspilePayload,
    to_stored,
)

CONVERT_TARGETS = ("qasm2", "qasm3", "qir")

_canonical = msgspec.json.Encoder(order="sorted")


def fastest_form(circuit: QuantumCircuit, kind: str) -> StoredCircuit:
    """The circuit as OpenQASM 2 text whenever it can be written in it (`qasm2.loads` is ~25x faster than the
    OpenQASM 3 importer), else as OpenQASM 3."""
    try:
        form = StoredCircuit(format="qasm2", source=qasm2.dumps(circuit))
    except Exception:  # not expressible in OpenQASM 2 (e.g. classical control flow): keep OpenQASM 3
        form = StoredCircuit(format="qasm3", source=qasm3.dumps(circuit))
    if kind in ("simulate", *PRIMITIVE_KINDS) and re.search(r"^gate ", form.source, re.MULTILINE):
        # Writing the circuit out turned some instructions Aer runs by name into gate definitions (those not in
        # qelib1.inc or stdgates.inc): make sure the slot, which unrolls what it must, will run what it reads.
        from qqueue.errors import TaskFailure
        from qqueue.execution.quantum import load_circuit

        try:
            load_circuit(form, "automatic")
        except TaskFailure as exc:
            raise IntakeError(f"the circuit cannot be stored in a form the simulator runs: {exc.message}",
                              code="unsupported_instruction") from None
    return form


def build(kind: str, circuit: StoredCircuit, opts: preflight.Options, shots: int, request: IntakeRequest, *,
          sweep: sweeps.Sweep | None, outputs: list[str] | None, memory_bytes: int) -> CircuitPayload:
    """The payload of a task of `kind`; raises `IntakeError` for options the kind cannot take."""
    swept = _fields(sweep) if sweep is not None else {}
    if kind == "simulate":
        return SimulatePayload(circuit=circuit, shots=shots, method=opts.method, seed=opts.seed, backend=opts.backend,
                               optimization_level=opts.optimization_level, memory=opts.memory, **swept,
                               outputs=UNSET if outputs is None else outputs, memory_bytes=memory_bytes)
    if kind == "sample":
        return SamplePayload(circuit=circuit, shots=shots, method=opts.method, seed=opts.seed, memory=opts.memory,
                             **swept, memory_bytes=memory_bytes)
    if kind == "estimate":
        precision = 0.0 if request.precision is None else request.precision
        if isinstance(precision, bool) or not isinstance(precision, (int, float)) or not 0 <= precision <= 1:
            raise IntakeError("precision must be a number from 0 (exact) to 1", code="invalid_precision")
        if opts.memory or opts.backend:
            raise IntakeError("estimate takes neither memory nor backend options", code="invalid_options")
        return EstimatePayload(circuit=circuit, precision=float(precision), method=opts.method, seed=opts.seed,
                               **swept, memory_bytes=memory_bytes)
    if kind == "transpile":
        if opts.backend is None and not opts.basis_gates:
            raise IntakeError("transpile needs a target: a backend, or basis_gates (and optionally coupling_map)",
                              code="invalid_options")
        coupling = [list(edge) for edge in opts.coupling_map] if opts.coupling_map else None
        return TranspilePayload(circuit=circuit, backend=opts.backend, basis_gates=opts.basis_gates,
                                coupling_map=coupling,
                                optimization_level=1 if opts.optimization_level is None else opts.optimization_level,
                                seed=opts.seed, memory_bytes=memory_bytes)
    if opts.target not in CONVERT_TARGETS:
        raise IntakeError(f"convert needs a target: one of {', '.join(CONVERT_TARGETS)}", code="invalid_options")
    return ConvertPayload(circuit=circuit, target=opts.target, memory_bytes=memory_bytes)


def parts(payload: SamplePayload | EstimatePayload, request: IntakeRequest, pub: inputs.Inputs,
          limits: IntakeLimits) -> list[tuple[dict[str, Any], str | None]] | None:
    """Set the PUB's elements on its payload; the PUB as contiguous parts (stored, with their cache keys) when
    it has more elements than the chunk size, else None (it is one task)."""
    total = sweeps.sets(list(pub.shape))
    chunk = request.chunk_size
    payload.sets = [0, total]
    if not chunk or total <= chunk:
        return None
    out = []
    for start, stop, sweep in sweeps.split(pub.sweep.parameters, pub.values, pub.observables, pub.shape, chunk,
                                           inputs.bounds(limits)):
        part = msgspec.structs.replace(payload, **_fields(sweep), sets=[start, stop])
        if payload.seed is not None:
            # Each part draws its own stream, reproducibly: the same seed and chunking give the same results.
            part.seed = (payload.seed + start) % 2**63
        stored = to_stored(part)
        out.append((stored, cache_key(request.kind, stored)))
    return out


def _fields(sweep: sweeps.Sweep) -> dict[str, Any]:
    """A sweep's fields, those it has: a PUB's observables are an estimate's alone."""
    return {k: v for k, v in msgspec.structs.asdict(sweep).items() if v is not None}


def cache_key(kind: str, payload: dict[str, Any]) -> str | None:
    """Content hash of everything a seeded run's result depends on; None when unseeded (those always run) and
    for kinds that do not simulate (transpile, convert)."""
    if kind not in ("simulate", *PRIMITIVE_KINDS) or payload.get("seed") is None:
        return None
    return hashlib.sha256(_canonical.encode({"kind": kind, "payload": payload, **library_versions()})).hexdigest()
