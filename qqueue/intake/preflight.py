"""Preflight: options checked, and what a circuit will cost charged before anything is queued. Pure.

The charge follows the method Aer will really use. For `automatic` that is Aer's own choice
(aer_controller.hpp): a noisy circuit of fewer than 30 qubits with more shots than 2^n runs on the density matrix
when that fits, a circuit the stabilizer simulator supports runs there, anything else on the statevector.
Memory: a statevector of n qubits holds 2^n complex doubles (2^(n+4) bytes), a density matrix is a statevector of
2n qubits, a stabilizer tableau 2n x 2n bits.

Time is estimated from the same model, as a lower bound: statevector and density-matrix gates touch every
amplitude, and a circuit Aer cannot sample from its final state (a reset, a measurement followed by gates on its
qubit, classical control, device noise on the statevector) is simulated once per shot. The constants are about
half of what one core of the 2-core development machine measured (statevector 3.7-5.2 ns per amplitude and
operation, density matrix 10-13 ns, stabilizer 11-44 ns per operation and qubit and 34-111 ns per shot and
qubit^2), so a refusal means the run would certainly overrun its timeout.
"""

from __future__ import annotations

from typing import Any

import msgspec
from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp

from qqueue.errors import IntakeError
from qqueue.execution import runnable
from qqueue.intake.model import IntakeLimits

METHODS = ("automatic", "statevector", "density_matrix", "stabilizer", "matrix_product_state", "extended_stabilizer")
#: Matrix-product-state memory assumed per qubit: bond dimension up to 256 in complex doubles, both sides.
MPS_BYTES_PER_QUBIT = 2 * 256 * 256 * 16
#: Estimates saturate here so they stay 64-bit integers on the wire (2^63 bytes is far past any limit).
MAX_ESTIMATE = 2**63 - 1
#: Lower bounds of simulation cost, in seconds (see the module docstring).
STATEVECTOR_S_PER_AMPLITUDE_OP = 2e-9
DENSITY_S_PER_ENTRY_OP = 5e-9
STABILIZER_S_PER_QUBIT_OP = 5e-9
STABILIZER_S_PER_SHOT_QUBIT2 = 15e-9
#: Bytes per shot and classical bit of per-shot memory, as JSON (a quoted string and a comma).
MEMORY_BYTES_OVERHEAD = 3
#: Bytes per outcome and classical bit of a counts object, as JSON (a quoted key, a count up to 100,000).
COUNTS_BYTES_OVERHEAD = 10


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


class Charge(msgspec.Struct, kw_only=True, frozen=True):
    """What running a circuit will take: the method Aer will use, its memory and a lower bound of its time."""

    method: str
    memory_bytes: int
    estimate_s: float
    #: True when Aer must simulate every shot from the start (it cannot sample the final state).
    shot_by_shot: bool


def read_options(raw: dict[str, Any] | None, limits: IntakeLimits) -> Options:
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
    if options.basis_gates is not None:
        unknown = sorted(set(options.basis_gates) - known_gate_names())
        if unknown:
            raise IntakeError(f"unknown basis gates {', '.join(map(repr, unknown[:10]))}: use names of Qiskit's "
                              "standard "
                              "gates, e.g. cx, rz, sx, x", code="unknown_basis_gate", details={"unknown": unknown})
    if options.coupling_map is not None:
        for a, b in options.coupling_map:
            if not (0 <= a < limits.max_qubits and 0 <= b < limits.max_qubits) or a == b:
                raise IntakeError(f"coupling_map edge ({a}, {b}) must join two different qubits numbered 0 to "
                                  f"{limits.max_qubits - 1}", code="invalid_options",
                                  details={"edge": [a, b], "max_qubit": limits.max_qubits - 1})
    return options


def known_gate_names() -> set[str]:
    """Gate names a transpile target may be given: Qiskit's standard gates and Aer's instructions."""
    from qiskit.circuit.library import get_standard_gate_name_mapping

    return set(get_standard_gate_name_mapping()) | set(runnable.runnable_names("automatic"))


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


def charge(circuit: QuantumCircuit, method: str, *, shots: int, noisy: bool, budget_bytes: int) -> Charge:
    """The method Aer will run `circuit` with (its automatic choice for "automatic"), and its cost."""
    n = circuit.num_qubits
    if method == "automatic":
        if noisy and n < 30 and shots > 2**n and memory_bytes("density_matrix", n) <= budget_bytes:
            method = "density_matrix"
        elif not noisy and runnable.is_aer_clifford(circuit):
            method = "stabilizer"
        else:
            method = "statevector"
    sampled = _samplable(circuit) and not (noisy and method in ("statevector", "matrix_product_state"))
    passes = 1 if sampled or method == "density_matrix" and _samplable(circuit) else shots
    ops = max(1, runnable.operation_count(circuit))
    if method == "statevector":
        estimate = passes * ops * 2.0**n * STATEVECTOR_S_PER_AMPLITUDE_OP
    elif method == "density_matrix":
        estimate = passes * ops * 4.0**n * DENSITY_S_PER_ENTRY_OP
    elif method == "stabilizer":
        estimate = passes * ops * n * STABILIZER_S_PER_QUBIT_OP + shots * n * n * STABILIZER_S_PER_SHOT_QUBIT2
    else:  # matrix_product_state and extended_stabilizer: no model worth trusting; the timeout bounds them
        estimate = 0.0
    return Charge(method=method, memory_bytes=memory_bytes(method, n), estimate_s=estimate, shot_by_shot=not sampled)


def _samplable(circuit: QuantumCircuit) -> bool:
    """Aer's rule (circuit.hpp, circuit_executor.hpp): the final state can be sampled unless the circuit
    resets, branches on classical values, or touches a qubit after measuring it."""
    measured: set[Any] = set()
    for item in circuit.data:
        op = item.operation
        if isinstance(op, ControlFlowOp) or op.name in ("reset", "store", "initialize"):
            return False
        if op.name == "measure":
            measured.update(item.qubits)
        elif measured and op.name != "barrier" and measured.intersection(item.qubits):
            return False
    return True


def profile(circuit: QuantumCircuit, requested: str, cost: Charge) -> dict[str, Any]:
    """What is stored with the task: size, depth, gate counts, and what the run will need."""
    return {
        "qubits": circuit.num_qubits,
        "clbits": circuit.num_clbits,
        "depth": circuit.depth(),
        "size": circuit.size(),
        "gate_counts": dict(circuit.count_ops()),
        "method": requested,
        "memory_method": cost.method,
        "memory_bytes": cost.memory_bytes,
        "estimate_s": round(cost.estimate_s, 6),
        "shot_by_shot": cost.shot_by_shot,
        "clifford": cost.method == "stabilizer",
    }


def check_limits(circuit: QuantumCircuit, cost: Charge, limits: IntakeLimits, *, timeout_s: float | None) -> None:
    """Refuse a circuit too big to run, saying what it would need."""
    size = runnable.operation_count(circuit)
    if size > limits.max_operations:
        raise IntakeError(f"the circuit has {size} operations once its gates are unrolled; the limit is "
                          f"{limits.max_operations}", code="too_many_operations",
                          details={"operations": size, "limit": limits.max_operations})
    if circuit.num_qubits > limits.max_qubits:
        raise IntakeError(f"the circuit has {circuit.num_qubits} qubits; the limit is {limits.max_qubits}",
                          code="too_many_qubits", details={"qubits": circuit.num_qubits, "limit": limits.max_qubits})
    if cost.memory_bytes > limits.max_memory_bytes:
        raise IntakeError(
            f"{circuit.num_qubits} qubits with the {cost.method} method would need "
            f"{human_bytes(cost.memory_bytes)} of memory; the limit is {human_bytes(limits.max_memory_bytes)}. "
            "Use fewer qubits, or a method that needs less (stabilizer for Clifford circuits, "
            "matrix_product_state for weakly entangled ones)",
            code="too_much_memory",
            details={"qubits": circuit.num_qubits, "method": cost.method, "memory_bytes": cost.memory_bytes,
                     "limit_bytes": limits.max_memory_bytes},
        )
    if timeout_s is not None and cost.estimate_s > timeout_s:
        why = " (it must be simulated shot by shot)" if cost.shot_by_shot else ""
        raise IntakeError(
            f"the {cost.method} simulation of this circuit would take at least {human_seconds(cost.estimate_s)}"
            f"{why}, longer than its timeout of {human_seconds(timeout_s)}. Use fewer shots, parameter sets, "
            "observable terms or qubits, or set a longer timeout_s", code="too_slow",
            details={"estimate_s": round(cost.estimate_s, 3), "timeout_s": timeout_s, "method": cost.method,
                     "shot_by_shot": cost.shot_by_shot})


def check_result_size(clbits: int, shots: int, limits: IntakeLimits, *, memory: bool, runs: int = 1) -> int:
    """A result's size is bounded before the run: counts hold at most min(shots, 2^clbits) outcomes per run,
    and per-shot memory is a string of every classical bit per shot. Returns the bound."""
    outcomes = shots if clbits >= 63 else min(shots, 2**clbits)
    size = runs * outcomes * (clbits + COUNTS_BYTES_OVERHEAD)
    if memory:
        size += runs * shots * (clbits + MEMORY_BYTES_OVERHEAD)
    if size > limits.max_result_bytes:
        what = "counts and per-shot memory" if memory else "counts"
        raise IntakeError(f"{what} of {clbits} classical bits over {shots} shots"
                          + (f" and {runs} parameter sets" if runs > 1 else "")
                          + f" could reach {human_bytes(size)}; the limit is {human_bytes(limits.max_result_bytes)}",
                          code="result_too_large", details={"result_bytes": size,
                                                            "limit_bytes": limits.max_result_bytes})
    return size


def with_observables(cost: Charge, qubits: int, terms: int, parameter_sets: int) -> Charge:
    """The charge of an estimate: on top of the runs, each distinct Pauli term is an expectation value per
    parameter set, a pass over the state (or the tableau)."""
    if cost.method in ("statevector", "density_matrix"):
        per_term = (2.0 ** qubits if cost.method == "statevector" else 4.0 ** qubits) * STATEVECTOR_S_PER_AMPLITUDE_OP
    elif cost.method == "stabilizer":
        per_term = qubits * qubits * STABILIZER_S_PER_QUBIT_OP
    else:
        per_term = 0.0
    return msgspec.structs.replace(cost, estimate_s=cost.estimate_s + terms * parameter_sets * per_term)


def with_exact_outputs(cost: Charge, qubits: int, runs: int) -> Charge:
    """An exact output is a dense array of 2^n entries per run, each built from the state (for the stabilizer
    simulator, each a pass over the tableau)."""
    per_run = 2.0 ** qubits * STATEVECTOR_S_PER_AMPLITUDE_OP * (qubits if cost.method == "stabilizer" else 1)
    return msgspec.structs.replace(cost, estimate_s=cost.estimate_s + runs * per_run)


def repeated(cost: Charge, runs: int) -> Charge:
    """The charge of running a circuit once per parameter set: the same memory (sets run one after another),
    `runs` times the time."""
    return msgspec.structs.replace(cost, estimate_s=cost.estimate_s * runs)


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024 or unit == "EiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_seconds(s: float) -> str:
    """90 -> '1.5 min'."""
    if s < 120:
        return f"{s:.3g} s"
    if s < 7200:
        return f"{s / 60:.3g} min"
    if s < 86400 * 365:
        return f"{s / 3600:.3g} h"
    return f"{s / (86400 * 365):.3g} years"
