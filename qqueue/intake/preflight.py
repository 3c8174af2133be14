"""Preflight: options checked, the circuit measured, and limits applied before anything is queued. Pure.

The memory estimates decide what is refused: a statevector of n qubits holds 2^n complex doubles
(2^(n+4) bytes), a density matrix is a statevector of 2n qubits, and stabilizer (a 2n×2n bit tableau),
extended stabilizer and matrix-product-state simulations need far less for the circuits they are chosen for.
"""

from __future__ import annotations

from typing import Any

import msgspec
from qiskit import QuantumCircuit

from qqueue.errors import IntakeError

METHODS = ("automatic", "statevector", "density_matrix", "stabilizer", "matrix_product_state", "extended_stabilizer")
#: Gates a stabilizer simulation runs; a circuit of only these is Clifford (Aer's automatic method agrees).
CLIFFORD_GATES = frozenset({"id", "x", "y", "z", "h", "s", "sdg", "sx", "sxdg", "cx", "cy", "cz", "swap", "ecr",
                            "measure", "barrier", "reset", "delay"})
#: Matrix-product-state memory assumed per qubit: bond dimension up to 256 in complex doubles, both sides.
MPS_BYTES_PER_QUBIT = 2 * 256 * 256 * 16


class IntakeLimits(msgspec.Struct, kw_only=True, frozen=True):
    """What a single submission may ask for."""

    max_source_bytes: int = 256 * 1024
    max_shots: int = 100_000
    max_operations: int = 100_000
    max_qubits: int = 1_000
    #: Memory one simulation may need (default 4 GiB).
    max_memory_bytes: int = 4 * 1024**3
    #: Per-shot memory is returned for at most this many shots.
    max_memory_shots: int = 10_000


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """How to run or convert a circuit; every field is optional."""

    method: str = "automatic"
    seed: int | None = None
    backend: str | None = None
    optimization_level: int | None = None
    memory: bool = False
    measure_all: bool = False
    #: convert: "qasm2", "qasm3" or "qir".
    target: str | None = None
    #: transpile without a backend: the gate set and the coupling map to target.
    basis_gates: list[str] | None = None
    coupling_map: list[tuple[int, int]] | None = None


def read_options(raw: dict[str, Any] | None) -> Options:
    """Validate the options object; unknown names and wrong types are refused with the field named."""
    try:
        options = msgspec.convert({k: v for k, v in (raw or {}).items() if v is not None}, Options)
    except msgspec.ValidationError as exc:
        raise IntakeError(f"invalid options: {exc}", code="invalid_options") from None
    if options.method not in METHODS:
        raise IntakeError(f"unknown method {options.method!r}; use one of {', '.join(METHODS)}", code="invalid_options")
    if options.seed is not None and not 0 <= options.seed < 2**63:
        raise IntakeError("seed must be between 0 and 2^63-1", code="invalid_options")
    if options.optimization_level is not None and options.optimization_level not in (0, 1, 2, 3):
        raise IntakeError("optimization_level must be 0, 1, 2 or 3", code="invalid_options")
    return options


def check_shots(shots: Any, limits: IntakeLimits, *, memory: bool) -> int:
    """Shots must be a whole number in 1..max_shots (and ≤ max_memory_shots when per-shot memory is asked)."""
    if isinstance(shots, bool) or not isinstance(shots, int):
        raise IntakeError("shots must be a whole number", code="invalid_shots")
    if not 1 <= shots <= limits.max_shots:
        raise IntakeError(f"shots must be between 1 and {limits.max_shots}, not {shots}", code="invalid_shots",
                          details={"min": 1, "max": limits.max_shots})
    if memory and shots > limits.max_memory_shots:
        raise IntakeError(f"per-shot memory is returned for at most {limits.max_memory_shots} shots",
                          code="invalid_shots", details={"max": limits.max_memory_shots})
    return shots


def is_clifford(circuit: QuantumCircuit) -> bool:
    """True when every operation is a Clifford gate (or measure/reset/barrier)."""
    return set(circuit.count_ops()) <= CLIFFORD_GATES


def effective_method(method: str, circuit: QuantumCircuit) -> str:
    """The method whose memory preflight charges: `automatic` charged as Aer chooses for ideal circuits."""
    if method == "automatic":
        return "stabilizer" if is_clifford(circuit) else "statevector"
    return method


#: Estimates saturate here so they stay 64-bit integers on the wire (2^63 bytes is far past any limit).
MAX_ESTIMATE = 2**63 - 1


def memory_bytes(method: str, qubits: int) -> int:
    """Estimated memory of simulating `qubits` qubits with `method` (see the module docstring)."""
    if method == "statevector":
        estimate = 2 ** (qubits + 4)
    elif method == "density_matrix":
        estimate = 2 ** (2 * qubits + 4)
    elif method == "matrix_product_state":
        estimate = qubits * MPS_BYTES_PER_QUBIT
    else:  # stabilizer and extended_stabilizer: a tableau of 2n x 2n bits, generously rounded up.
        estimate = (2 * qubits) ** 2 + 1024 * 1024
    return min(estimate, MAX_ESTIMATE)


def profile(circuit: QuantumCircuit, method: str) -> dict[str, Any]:
    """What is stored with the task: size, depth, gate counts, and the memory the chosen method needs."""
    charged = effective_method(method, circuit)
    return {
        "qubits": circuit.num_qubits,
        "clbits": circuit.num_clbits,
        "depth": circuit.depth(),
        "size": circuit.size(),
        "gate_counts": dict(circuit.count_ops()),
        "method": method,
        "memory_method": charged,
        "memory_bytes": memory_bytes(charged, circuit.num_qubits),
        "clifford": is_clifford(circuit),
    }


def check_limits(circuit: QuantumCircuit, prof: dict[str, Any], limits: IntakeLimits) -> None:
    """Refuse a circuit too big to run, saying what it would need."""
    if circuit.size() > limits.max_operations:
        raise IntakeError(f"the circuit has {circuit.size()} operations; the limit is {limits.max_operations}",
                          code="too_many_operations", details={"operations": circuit.size(),
                                                               "limit": limits.max_operations})
    if circuit.num_qubits > limits.max_qubits:
        raise IntakeError(f"the circuit has {circuit.num_qubits} qubits; the limit is {limits.max_qubits}",
                          code="too_many_qubits", details={"qubits": circuit.num_qubits, "limit": limits.max_qubits})
    if prof["memory_bytes"] > limits.max_memory_bytes:
        raise IntakeError(
            f"{circuit.num_qubits} qubits with the {prof['memory_method']} method would need "
            f"{_human(prof['memory_bytes'])} of memory; the limit is {_human(limits.max_memory_bytes)}. "
            "Use fewer qubits, or a method that needs less (stabilizer for Clifford circuits, "
            "matrix_product_state for weakly entangled ones)",
            code="too_much_memory",
            details={"qubits": circuit.num_qubits, "method": prof["memory_method"],
                     "memory_bytes": prof["memory_bytes"], "limit_bytes": limits.max_memory_bytes},
        )


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024 or unit == "EiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
