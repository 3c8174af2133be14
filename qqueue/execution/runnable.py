"""What Aer runs as it is, and turning the rest into it: once at intake, and in the slot for what a stored form
writes back as gate definitions.

Aer executes the instructions its methods list (`AerSimulator(method=…).configuration().basis_gates`) and knows no
user-defined gate: a circuit with `gate majority a,b,c { … }` fails in the simulator with "unknown instruction".
Aer also knows instructions by name only, so a user-defined gate that happens to be called `unitary` or `ccz`
would be taken for Aer's own. Every user-defined gate is therefore inlined through its definition, whatever its
name, and what is left that Aer does not run (standard gates it lacks, such as rccx) is unrolled by Qiskit's
HighLevelSynthesis, which also descends into control-flow blocks. A circuit Aer can already run is returned as
it is: no transpiler pass runs on that, the common path.

The method Aer's automatic selection picks is decided by Aer's own rules (src/controllers/aer_controller.hpp): a
circuit is run on the stabilizer simulator when every instruction is one the stabilizer method supports and every
`rz` angle is a multiple of pi/2 to within a double's epsilon (stabilizer_state.hpp, validate_parameters).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import cache

from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp, Gate, Instruction

from qqueue.errors import IntakeError

#: Instructions every method runs, though Aer's configuration does not list them as gates.
DIRECTIVES = frozenset({"measure", "barrier", "reset", "delay"})
METHODS_WITH_OWN_SETS = ("statevector", "density_matrix", "stabilizer", "matrix_product_state",
                         "extended_stabilizer")


@cache
def runnable_names(method: str) -> frozenset[str]:
    """Instruction names Aer runs with `method` ("automatic": those of any method)."""
    from qiskit_aer import AerSimulator

    names = set(AerSimulator(method=method).configuration().basis_gates) | DIRECTIVES
    return frozenset(names - {"roerror", "kraus", "superop", "qerror_loc", "quantum_channel"})


def instructions(circuit: QuantumCircuit) -> Iterator[Instruction]:
    """Every instruction of the circuit, those inside control-flow blocks included."""
    for item in circuit.data:
        yield item.operation
        if isinstance(item.operation, ControlFlowOp):
            for block in item.operation.blocks:
                yield from instructions(block)


def operation_names(circuit: QuantumCircuit) -> set[str]:
    """Names of every instruction, control-flow blocks included."""
    return {op.name for op in instructions(circuit)}


def operation_count(circuit: QuantumCircuit) -> int:
    """Instructions of the circuit and of its control-flow blocks (each block counted once)."""
    return sum(1 for _ in instructions(circuit))


def user_defined(op: Instruction) -> bool:
    """A gate a program defined itself (`gate name … { … }`), as opposed to one of Qiskit's or Aer's: the
    parsers build those as plain gates (or their own subclasses), never as library classes."""
    if not isinstance(op, Gate) or getattr(op, "_standard_gate", None) is not None:
        return False
    return type(op) is Gate or not type(op).__module__.startswith(("qiskit.circuit.", "qiskit_aer."))


def make_runnable(circuit: QuantumCircuit, method: str) -> QuantumCircuit:
    """The circuit with every user-defined gate inlined and every instruction Aer cannot run with `method`
    unrolled through its definition.

    Raises `IntakeError` for instructions that have no definition to unroll (opaque gates), naming them."""
    allowed = runnable_names(method)
    ops = list(instructions(circuit))
    unknown = {op.name for op in ops} - allowed
    if not unknown and not any(user_defined(op) for op in ops):
        return circuit
    undefined = sorted({op.name for op in instructions(circuit) if op.name in unknown and _undefined(op)})
    if undefined:
        raise IntakeError(f"{_names(undefined)} {'has' if len(undefined) == 1 else 'have'} no definition (an opaque "
                          "gate), so no simulator can run it; define it with `gate name(params) qubits { … }`",
                          code="opaque_gate", details={"gates": undefined})
    from qiskit.transpiler import PassManager
    from qiskit.transpiler.passes import HighLevelSynthesis

    try:
        circuit = _inline(circuit, {})
    except RecursionError:
        raise IntakeError("gate definitions are nested too deeply to unroll", code="nesting_too_deep") from None
    if not operation_names(circuit) - allowed:
        return circuit
    try:
        unrolled = PassManager([HighLevelSynthesis(basis_gates=sorted(allowed))]).run(circuit)
    except Exception as exc:  # the synthesis names what it could not decompose
        raise IntakeError(f"the circuit's gates {_names(sorted(unknown))} cannot be decomposed into gates the "
                          f"simulator runs: {exc}", code="unsupported_instruction") from None
    left = operation_names(unrolled) - allowed
    if left:
        raise IntakeError(f"{_names(sorted(left))} cannot be run by the {method} method",
                          code="unsupported_instruction", details={"gates": sorted(left)})
    return unrolled


def _inline(circuit: QuantumCircuit, done: dict[int, QuantumCircuit]) -> QuantumCircuit:
    """The circuit with every user-defined gate replaced by its (inlined) definition, control-flow blocks
    included; `done` keeps each definition's inlined form, so each is inlined once however often it is used."""
    out = circuit.copy_empty_like()
    for item in circuit.data:
        op = item.operation
        if isinstance(op, ControlFlowOp):
            out.append(op.replace_blocks([_inline(block, done) for block in op.blocks]), item.qubits, item.clbits)
        elif user_defined(op) and op.definition is not None:
            key = id(op.definition)
            if key not in done:
                done[key] = _inline(op.definition, done)
            out.compose(done[key], qubits=item.qubits, clbits=item.clbits, inplace=True)
        else:
            out._append(item)
    return out


def _undefined(op: Instruction) -> bool:
    try:
        return op.definition is None and not isinstance(op, ControlFlowOp)
    except Exception:  # a definition that cannot be built is as good as none
        return True


def _names(names: list[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def is_aer_clifford(circuit: QuantumCircuit) -> bool:
    """Whether Aer's automatic selection runs this circuit on the stabilizer simulator (ideal, no noise)."""
    allowed = runnable_names("stabilizer")
    for op in instructions(circuit):
        if op.name not in allowed:
            return False
        if op.name == "rz" and not _quarter_turn(op.params[0]):
            return False
    return True


def _quarter_turn(angle: object) -> bool:
    """Aer's test: 2·angle/pi equals its rounding to within a double's epsilon, absolutely or relatively."""
    try:
        turns = float(angle) * 2.0 / math.pi  # type: ignore[arg-type]
    except (TypeError, ValueError):  # an unbound parameter
        return False
    nearest = float(round(turns))
    diff = abs(turns - nearest)
    eps = 2.0**-52
    return diff <= eps or diff <= eps * max(abs(turns), abs(nearest))


def non_clifford(circuit: QuantumCircuit) -> list[str]:
    """Names of the instructions that keep the circuit off the stabilizer simulator (rz at other angles as
    "rz(angle)"), for refusals."""
    allowed = runnable_names("stabilizer")
    found: dict[str, None] = {}
    for op in instructions(circuit):
        if op.name not in allowed:
            found[op.name] = None
        elif op.name == "rz" and not _quarter_turn(op.params[0]):
            found[f"rz({op.params[0]})"] = None
    return list(found)


def as_stabilizer_gates(circuit: QuantumCircuit) -> QuantumCircuit | None:
    """The circuit with each Clifford gate Aer's stabilizer method does not know by name (p(pi/2), u(pi/2, 0,
    pi), rx(pi)…) rewritten into gates it does; None when some gate is not Clifford, or for control flow."""
    from qiskit.quantum_info import Clifford

    allowed = runnable_names("stabilizer")
    replacements: dict[tuple[str, tuple[float, ...]], QuantumCircuit] = {}
    out = circuit.copy_empty_like()
    for item in circuit.data:
        op = item.operation
        if isinstance(op, ControlFlowOp):
            return None
        if op.name in allowed and (op.name != "rz" or _quarter_turn(op.params[0])):
            out._append(item)
            continue
        try:
            key = (op.name, tuple(float(p) for p in op.params))
        except (TypeError, ValueError):
            return None
        if key not in replacements:
            try:
                replacements[key] = Clifford(op).to_circuit()
            except Exception:  # not a Clifford operation
                return None
        out.compose(replacements[key], qubits=item.qubits, inplace=True)
    return out if is_aer_clifford(out) else None
