"""Hand-written OpenQASM 3 programs in the style of the specification's examples, each paired with the same
circuit built with Qiskit's Python API: the reference Aer runs directly.

Where Qiskit's exporters write one narrow dialect (every declaration explicit, every loop unrolled, every
modifier applied), people write OpenQASM 3 the way the specification teaches it: no version line, `const`
sizes, loops, subroutines, `let` aliases, register broadcasting, gate modifiers on their own gates, `π` and
`tau`. Each program below exercises a few of those features, and its reference builds the same operations with
`QuantumCircuit` methods (loops unrolled, modifiers spelled as the gates they make), never by importing the text.

The classical registers of a reference are declared in the program's order and with the program's sizes, so the
count keys (registers separated by spaces, the last-declared leftmost) read the same. Every declared bit is a
result: a lone `bit b;` is a one-bit register `b` in the reference (Qiskit's importer makes it a bit in no
register, which Aer leaves out of the counts; unrolled by pyqasm it becomes `bit[1] b;`). Where a program measures
without a target (`measure q;`), qqueue gives the results bits of its own, one register `__qq_measured` declared
before all others: the reference declares a register of that name and size first.

Every reference is checked against the program without the service where Qiskit's own importer reads the
program (`tests/e2e/test_corpus.py`, by operator equality or, with mid-circuit measurement, by sampling); the rest
(loops, subroutines, targetless measurement: constructs that importer refuses) were checked by hand against the
specification's semantics, and their docstrings say what the program computes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Gate, Parameter
from qiskit.circuit.library import HGate, RZGate, XGate

__all__ = ["builders", "programs"]

Program = tuple[str, QuantumCircuit]


# --- the programs ----------------------------------------------------------------------------------------------


def no_version_line() -> Program:
    """A program without `OPENQASM 3.0;`: the version statement is optional in OpenQASM 3."""
    source = """\
// A Bell pair and a rotated third qubit, entangled by a CZ.
include "stdgates.inc";
qubit[3] q;
bit[3] c;
h q[0];
cx q[0], q[1];
ry(1.2) q[2];
cz q[1], q[2];
h q[2];
c = measure q;
"""
    q, c = QuantumRegister(3, "q"), ClassicalRegister(3, "c")
    qc = QuantumCircuit(q, c)
    qc.h(0)
    qc.cx(0, 1)
    qc.ry(1.2, 2)
    qc.cz(1, 2)
    qc.h(2)
    qc.measure(q, c)
    return source, qc


def const_sized_for_loops() -> Program:
    """`const int` register sizes, and `for` loops bounded by them: a ramp of RY angles π(i+1)/(2n), a CX
    ladder, and a stepped range `[0:2:last]` (qubits 0, 2, 4) rotated and turned by a Hadamard."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";

const int n = 5;
const int last = n - 1;
qubit[n] q;
bit[n] c;

for int i in [0:last] {
  ry(pi * (i + 1) / (2 * n)) q[i];
}
for int i in [0:last - 1] {
  cx q[i], q[i + 1];
}
for int i in [0:2:last] {
  rz(pi / 4) q[i];
  h q[i];
}
c = measure q;
"""
    n = 5
    q, c = QuantumRegister(n, "q"), ClassicalRegister(n, "c")
    qc = QuantumCircuit(q, c)
    for i in range(n):
        qc.ry(math.pi * (i + 1) / (2 * n), i)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    for i in range(0, n, 2):
        qc.rz(math.pi / 4, i)
        qc.h(i)
    qc.measure(q, c)
    return source, qc


def def_subroutine_twice() -> Program:
    """A `def` subroutine taking a `qubit[2]` and an angle, called on two registers with different angles, then
    the two pairs coupled."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";

def entangle(qubit[2] pair, float[64] theta) {
  ry(theta) pair[0];
  cx pair[0], pair[1];
  rz(theta / 2) pair[1];
}

qubit[2] left;
qubit[2] right;
bit[4] c;

entangle(left, pi / 3);
entangle(right, 2 * pi / 3);
cz left[1], right[0];
h left[1];
h right[0];
c[0] = measure left[0];
c[1] = measure left[1];
c[2] = measure right[0];
c[3] = measure right[1];
"""
    left, right, c = QuantumRegister(2, "left"), QuantumRegister(2, "right"), ClassicalRegister(4, "c")
    qc = QuantumCircuit(left, right, c)
    for pair, theta in ((left, math.pi / 3), (right, 2 * math.pi / 3)):
        qc.ry(theta, pair[0])
        qc.cx(pair[0], pair[1])
        qc.rz(theta / 2, pair[1])
    qc.cz(left[1], right[0])
    qc.h(left[1])
    qc.h(right[0])
    qc.measure([*left, *right], c)
    return source, qc


def if_else_on_measured_bit() -> Program:
    """`if`/`else` on a bit measured mid-circuit (`flags[0] == 1`), then a one-line `if` on a second measured
    bit compared with 0."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
bit[2] flags;
bit[3] c;

ry(2 * pi / 3) q[0];
flags[0] = measure q[0];
if (flags[0] == 1) {
  x q[1];
  h q[2];
} else {
  ry(pi / 4) q[1];
}
flags[1] = measure q[1];
if (flags[1] == 0) cx q[2], q[0];
c = measure q;
"""
    q, flags, c = QuantumRegister(3, "q"), ClassicalRegister(2, "flags"), ClassicalRegister(3, "c")
    qc = QuantumCircuit(q, flags, c)
    qc.ry(2 * math.pi / 3, 0)
    qc.measure(0, flags[0])
    with qc.if_test((flags[0], 1)) as else_:
        qc.x(1)
        qc.h(2)
    with else_:
        qc.ry(math.pi / 4, 1)
    qc.measure(1, flags[1])
    with qc.if_test((flags[1], 0)):
        qc.cx(2, 0)
    qc.measure(q, c)
    return source, qc


def bare_bit_conditions() -> Program:
    """A lone `bit m;` (a bit in no register) as a condition, bare and negated: `if (m)`, `if (!m)`. Every
    declared bit is a result: the reference gives `m` a one-bit register of its own, declared first."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
bit m;
bit[3] c;

h q[0];
m = measure q[0];
if (m) {
  x q[1];
}
if (!m) {
  ry(pi / 3) q[2];
}
cx q[1], q[2];
c = measure q;
"""
    q, m, c = QuantumRegister(3, "q"), ClassicalRegister(1, "m"), ClassicalRegister(3, "c")
    qc = QuantumCircuit(q, m, c)
    qc.h(0)
    qc.measure(0, m[0])
    with qc.if_test((m[0], 1)):
        qc.x(1)
    with qc.if_test((m[0], 0)):
        qc.ry(math.pi / 3, 2)
    qc.cx(1, 2)
    qc.measure(q, c)
    return source, qc


def measure_without_target() -> Program:
    """`measure q;`: a whole register measured with no bits to write to (the results are discarded in
    OpenQASM 3; qqueue reports them in its own register `__qq_measured`)."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
h q[0];
cx q[0], q[1];
x q[2];
ry(pi / 3) q[2];
measure q;
"""
    q, measured = QuantumRegister(3, "q"), ClassicalRegister(3, "__qq_measured")
    qc = QuantumCircuit(q, measured)
    qc.h(0)
    qc.cx(0, 1)
    qc.x(2)
    qc.ry(math.pi / 3, 2)
    qc.measure(q, measured)
    return source, qc


def measure_with_and_without_target() -> Program:
    """`c[i] = measure q[i];` and a bare `measure q[1];` in one program: the targetless result goes to qqueue's
    one-bit `__qq_measured`, declared before `c`, so it is the rightmost character of each key."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
bit[2] c;
h q[0];
cx q[0], q[1];
ry(pi / 3) q[2];
c[0] = measure q[0];
measure q[1];
c[1] = measure q[2];
"""
    q, measured, c = QuantumRegister(3, "q"), ClassicalRegister(1, "__qq_measured"), ClassicalRegister(2, "c")
    qc = QuantumCircuit(q, measured, c)
    qc.h(0)
    qc.cx(0, 1)
    qc.ry(math.pi / 3, 2)
    qc.measure(0, c[0])
    qc.measure(1, measured[0])
    qc.measure(2, c[1])
    return source, qc


def modifiers_on_standard_gates() -> Program:
    """`ctrl @`, `ctrl(2) @`, `negctrl @`, `inv @`, `pow(2) @` and stacked modifiers on stdgates.inc gates, the
    phases turned into populations by a final Hadamard layer."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
qubit[4] q;
bit[4] c;

h q;
ctrl @ x q[0], q[2];
negctrl @ x q[1], q[3];
ctrl(2) @ rz(pi / 3) q[0], q[1], q[2];
inv @ s q[0];
pow(2) @ t q[1];
ctrl @ inv @ ry(pi / 5) q[3], q[2];
negctrl @ ctrl @ h q[0], q[1], q[3];
inv @ pow(2) @ sx q[2];
ry(pi / 7) q[3];
h q;
c = measure q;
"""
    q, c = QuantumRegister(4, "q"), ClassicalRegister(4, "c")
    qc = QuantumCircuit(q, c)
    qc.h(q)
    qc.cx(0, 2)
    qc.append(XGate().control(1, ctrl_state=0, annotated=False), [1, 3])
    qc.append(RZGate(math.pi / 3).control(2, annotated=False), [0, 1, 2])
    qc.sdg(0)
    qc.s(1)  # T²
    qc.cry(-math.pi / 5, 3, 2)
    # Controls listed outermost modifier first: negctrl on q[0], ctrl on q[1]; ctrl_state's bit 0 is q[0].
    qc.append(HGate().control(2, ctrl_state="10", annotated=False), [0, 1, 3])
    qc.x(2)  # (SX²)⁻¹ = X⁻¹ = X
    qc.ry(math.pi / 7, 3)
    qc.h(q)
    qc.measure(q, c)
    return source, qc


def _twirl(theta: float) -> Gate:
    """The program's `twirl(theta)`, bound (a gate of another name, so nothing mistakes it for a library gate)."""
    body = QuantumCircuit(2, name="twirl_ref")
    body.ry(theta, 0)
    body.cx(0, 1)
    body.rz(theta / 2, 1)
    body.h(1)
    return body.to_gate()


TWIRL = """\
gate twirl(theta) a, b {
  ry(theta) a;
  cx a, b;
  rz(theta / 2) b;
  h b;
}
"""


def modifiers_on_a_user_gate() -> Program:
    """`ctrl @`, `negctrl @`, `inv @` and `pow(2) @` applied to a parameterised gate the program defines."""
    source = f"""\
OPENQASM 3.0;
include "stdgates.inc";
{TWIRL}
qubit[4] q;
bit[4] c;

h q[0];
x q[3];
ry(pi / 3) q[1];
ctrl @ twirl(pi / 3) q[0], q[1], q[2];
negctrl @ twirl(pi / 5) q[3], q[1], q[2];
negctrl @ twirl(2 * pi / 5) q[2], q[0], q[1];
inv @ twirl(pi / 7) q[1], q[2];
pow(2) @ twirl(pi / 9) q[2], q[3];
twirl(pi / 2) q[3], q[0];
c = measure q;
"""
    bound = _twirl  # bound(θ) is the program's twirl(θ)
    q, c = QuantumRegister(4, "q"), ClassicalRegister(4, "c")
    qc = QuantumCircuit(q, c)
    qc.h(0)
    qc.x(3)
    qc.ry(math.pi / 3, 1)
    qc.append(bound(math.pi / 3).control(1, annotated=False), [0, 1, 2])
    qc.append(bound(math.pi / 5).control(1, ctrl_state=0, annotated=False), [3, 1, 2])
    qc.append(bound(2 * math.pi / 5).control(1, ctrl_state=0, annotated=False), [2, 0, 1])
    qc.append(bound(math.pi / 7).inverse(), [1, 2])
    qc.append(bound(math.pi / 9), [2, 3])
    qc.append(bound(math.pi / 9), [2, 3])
    qc.append(bound(math.pi / 2), [3, 0])
    qc.measure(q, c)
    return source, qc


def let_aliases_and_slices() -> Program:
    """`let` aliases of register slices (`q[0:2]`, a stepped `q[0:2:5]`, a concatenation `back ++ front`),
    gates on aliases, on elements of aliases and on slices, broadcast over them; measurements into slices."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
qubit[6] q;
bit[6] c;

let front = q[0:2];
let back = q[3:5];
let evens = q[0:2:5];
let ends = back ++ front;

h front;
cx front, back;
cz ends[0], ends[5];
rz(pi / 4) evens;
h evens;
ry(pi / 5) q[1:2];
crx(pi / 3) ends[2], ends[3];
x back[1];
c[0:2] = measure front;
c[3:5] = measure back;
"""
    q, c = QuantumRegister(6, "q"), ClassicalRegister(6, "c")
    qc = QuantumCircuit(q, c)
    qc.h([0, 1, 2])
    for a, b in ((0, 3), (1, 4), (2, 5)):
        qc.cx(a, b)
    qc.cz(3, 2)  # ends = q[3], q[4], q[5], q[0], q[1], q[2]
    qc.rz(math.pi / 4, [0, 2, 4])
    qc.h([0, 2, 4])
    qc.ry(math.pi / 5, [1, 2])
    qc.crx(math.pi / 3, 5, 0)
    qc.x(4)
    qc.measure(q, c)
    return source, qc


def broadcasting() -> Program:
    """Gates on whole registers: `h a;`, `cx a, b;` pairwise, `cz a[0], b;` one control against a register,
    `ry(..) b;`, and `cb = measure b;`."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
qubit[3] a;
qubit[3] b;
bit[3] ca;
bit[3] cb;

h a;
ry(pi / 3) b;
cx a, b;
t a;
cz a[0], b;
h a;
ry(-pi / 6) b;
ca = measure a;
cb = measure b;
"""
    a, b = QuantumRegister(3, "a"), QuantumRegister(3, "b")
    ca, cb = ClassicalRegister(3, "ca"), ClassicalRegister(3, "cb")
    qc = QuantumCircuit(a, b, ca, cb)
    qc.h(a)
    qc.ry(math.pi / 3, b)
    for i in range(3):
        qc.cx(a[i], b[i])
    qc.t(a)
    for i in range(3):
        qc.cz(a[0], b[i])
    qc.h(a)
    qc.ry(-math.pi / 6, b)
    qc.measure(a, ca)
    qc.measure(b, cb)
    return source, qc


def reset_mid_circuit() -> Program:
    """A qubit measured, `reset`, and used again; then `reset q;` on the whole register before a final round."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[4] c;

h q[0];
cx q[0], q[1];
c[0] = measure q[0];
reset q[0];
ry(pi / 3) q[0];
cx q[0], q[1];
c[1] = measure q[1];
reset q;
x q[1];
ry(2 * pi / 3) q[0];
c[2] = measure q[0];
c[3] = measure q[1];
"""
    q, c = QuantumRegister(2, "q"), ClassicalRegister(4, "c")
    qc = QuantumCircuit(q, c)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure(0, c[0])
    qc.reset(0)
    qc.ry(math.pi / 3, 0)
    qc.cx(0, 1)
    qc.measure(1, c[1])
    qc.reset(q)
    qc.x(1)
    qc.ry(2 * math.pi / 3, 0)
    qc.measure(0, c[2])
    qc.measure(1, c[3])
    return source, qc


def barriers() -> Program:
    """`barrier` on a register, on listed qubits, and with no operands (all qubits)."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
bit[3] c;

h q[0];
barrier q;
cx q[0], q[1];
barrier q[1], q[2];
ry(pi / 4) q[2];
barrier;
cz q[1], q[2];
h q[2];
c = measure q;
"""
    q, c = QuantumRegister(3, "q"), ClassicalRegister(3, "c")
    qc = QuantumCircuit(q, c)
    qc.h(0)
    qc.barrier(q)
    qc.cx(0, 1)
    qc.barrier(1, 2)
    qc.ry(math.pi / 4, 2)
    qc.barrier()
    qc.cz(1, 2)
    qc.h(2)
    qc.measure(q, c)
    return source, qc


def user_gate_named_ccz() -> Program:
    """A gate the program defines and names `ccz` (stdgates.inc has no gate of that name), which is not the
    doubly-controlled Z Aer knows by that name: a Toffoli then a Hadamard on the first control. On |++0> the
    real CCZ changes no population; this one flips the target on |11> and mixes the first qubit."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
gate ccz a, b, t {
  ccx a, b, t;
  h a;
}
qubit[3] q;
bit[3] c;
h q[0];
h q[1];
ccz q[0], q[1], q[2];
c = measure q;
"""
    body = QuantumCircuit(3, name="not_ccz")
    body.ccx(0, 1, 2)
    body.h(0)
    q, c = QuantumRegister(3, "q"), ClassicalRegister(3, "c")
    qc = QuantumCircuit(q, c)
    qc.h([0, 1])
    qc.append(body.to_gate(), [0, 1, 2])
    qc.measure(q, c)
    return source, qc


def user_gate_named_unitary() -> Program:
    """A gate the program defines and names `unitary`, which Aer knows as its matrix instruction (a gate with
    the matrix as parameter): here plain gates, with one angle parameter, called twice."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
gate unitary(theta) a, b {
  ry(theta) a;
  cx a, b;
  s b;
}
qubit[3] q;
bit[3] c;
unitary(pi / 3) q[0], q[1];
unitary(2 * pi / 3) q[1], q[2];
h q[2];
c = measure q;
"""
    theta = Parameter("theta")
    body = QuantumCircuit(2, name="not_unitary")
    body.ry(theta, 0)
    body.cx(0, 1)
    body.s(1)
    q, c = QuantumRegister(3, "q"), ClassicalRegister(3, "c")
    qc = QuantumCircuit(q, c)
    qc.append(body.assign_parameters({theta: math.pi / 3}).to_gate(), [0, 1])
    qc.append(body.assign_parameters({theta: 2 * math.pi / 3}).to_gate(), [1, 2])
    qc.h(2)
    qc.measure(q, c)
    return source, qc


def angles_pi_tau() -> Program:
    """Angles written with `pi`, `π`, `tau`, `τ` and arithmetic on them (`U(π/2, 0, π)` is a Hadamard)."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
qubit[4] q;
bit[4] c;

rx(π / 3) q[0];
ry(tau / 6) q[1];
ry(2 * pi / 5 - π / 10) q[2];
U(π / 2, 0, π) q[3];
cp(-tau / 4) q[3], q[0];
rz(τ / 8 + pi / 8) q[1];
crx(3 * π / 4) q[1], q[2];
h q[0];
h q[1];
c = measure q;
"""
    q, c = QuantumRegister(4, "q"), ClassicalRegister(4, "c")
    qc = QuantumCircuit(q, c)
    qc.rx(math.pi / 3, 0)
    qc.ry(math.tau / 6, 1)
    qc.ry(2 * math.pi / 5 - math.pi / 10, 2)
    qc.h(3)
    qc.cp(-math.tau / 4, 3, 0)
    qc.rz(math.tau / 8 + math.pi / 8, 1)
    qc.crx(3 * math.pi / 4, 1, 2)
    qc.h(0)
    qc.h(1)
    qc.measure(q, c)
    return source, qc


def const_float_math() -> Program:
    """A W state on 3 qubits whose angles are `const float`s computed with the built-in `arccos` and `sqrt`."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
const float first = 2 * arccos(sqrt(1 / 3.0));
const float second = 2 * arccos(sqrt(1 / 2.0));
qubit[3] q;
bit[3] c;
ry(first) q[0];
ctrl @ ry(second) q[0], q[1];
negctrl @ x q[1], q[2];
cx q[0], q[1];
x q[0];
c = measure q;
"""
    q, c = QuantumRegister(3, "q"), ClassicalRegister(3, "c")
    qc = QuantumCircuit(q, c)
    qc.ry(2 * math.acos(math.sqrt(1 / 3)), 0)
    qc.cry(2 * math.acos(math.sqrt(1 / 2)), 0, 1)
    qc.append(XGate().control(1, ctrl_state=0, annotated=False), [1, 2])
    qc.cx(0, 1)
    qc.x(0)
    qc.measure(q, c)
    return source, qc


def legacy_declarations() -> Program:
    """OpenQASM 2 forms that OpenQASM 3 keeps: `qreg`, `creg`, and `measure q -> c;`."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
qreg q[3];
creg c[3];
h q[0];
cx q[0], q[1];
ry(pi / 5) q[2];
measure q -> c;
"""
    q, c = QuantumRegister(3, "q"), ClassicalRegister(3, "c")
    qc = QuantumCircuit(q, c)
    qc.h(0)
    qc.cx(0, 1)
    qc.ry(math.pi / 5, 2)
    qc.measure(q, c)
    return source, qc


def controlled_global_phase() -> Program:
    """`ctrl @ gphase(θ)`: a global phase made relative by a control, diag(1, e^{iθ}) on the control: the phase
    gate P(θ). Between Hadamards it shows in the counts."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q;
ctrl @ gphase(pi / 3) q[0];
ctrl @ gphase(pi / 2) q[1];
gphase(pi / 4);
h q;
c = measure q;
"""
    q, c = QuantumRegister(2, "q"), ClassicalRegister(2, "c")
    qc = QuantumCircuit(q, c)
    qc.h(q)
    qc.p(math.pi / 3, 0)
    qc.p(math.pi / 2, 1)
    qc.global_phase += math.pi / 4
    qc.h(q)
    qc.measure(q, c)
    return source, qc


def teleportation() -> Program:
    """Teleportation as the specification writes it: measurements into lone bits (`bit a;`), corrections in
    `if (a == 1)` statements, one without braces. Every declared bit is a result: the reference gives each lone
    bit a one-bit register, in declaration order."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
bit a;
bit b;
bit[1] out;

ry(1.1) q[0];
h q[1];
cx q[1], q[2];
cx q[0], q[1];
h q[0];
a = measure q[0];
b = measure q[1];
if (b == 1) x q[2];
if (a == 1) {
  z q[2];
}
out[0] = measure q[2];
"""
    q, a, b, out = (QuantumRegister(3, "q"), ClassicalRegister(1, "a"), ClassicalRegister(1, "b"),
                    ClassicalRegister(1, "out"))
    qc = QuantumCircuit(q, a, b, out)
    qc.ry(1.1, 0)
    qc.h(1)
    qc.cx(1, 2)
    qc.cx(0, 1)
    qc.h(0)
    qc.measure(0, a[0])
    qc.measure(1, b[0])
    with qc.if_test((b[0], 1)):
        qc.x(2)
    with qc.if_test((a[0], 1)):
        qc.z(2)
    qc.measure(2, out[0])
    return source, qc


def repeat_until_success() -> Program:
    """A `while` loop on a measured bit: flip a coin until it reads 0, turning a second qubit by π/5 at every
    try, so the second qubit's counts depend on how many times the loop ran (geometrically distributed)."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[1] coin;
bit[1] out;

h q[0];
coin[0] = measure q[0];
while (coin == 1) {
  reset q[0];
  h q[0];
  ry(pi / 5) q[1];
  coin[0] = measure q[0];
}
out[0] = measure q[1];
"""
    q, coin, out = QuantumRegister(2, "q"), ClassicalRegister(1, "coin"), ClassicalRegister(1, "out")
    qc = QuantumCircuit(q, coin, out)
    qc.h(0)
    qc.measure(0, coin[0])
    with qc.while_loop((coin, 1)):
        qc.reset(0)
        qc.h(0)
        qc.ry(math.pi / 5, 1)
        qc.measure(0, coin[0])
    qc.measure(1, out[0])
    return source, qc


def subroutine_returning_a_measurement() -> Program:
    """A subroutine that measures in another basis and returns the bit (`def xmeasure(qubit a) -> bit`, after
    the specification's example), its result assigned at the call."""
    source = """\
OPENQASM 3.0;
include "stdgates.inc";

def xmeasure(qubit a) -> bit {
  h a;
  return measure a;
}

qubit[2] q;
bit[2] c;
ry(pi / 3) q[0];
h q[1];
c[0] = xmeasure(q[0]);
c[1] = xmeasure(q[1]);
"""
    q, c = QuantumRegister(2, "q"), ClassicalRegister(2, "c")
    qc = QuantumCircuit(q, c)
    qc.ry(math.pi / 3, 0)
    qc.h(1)
    qc.h(0)
    qc.measure(0, c[0])
    qc.h(1)
    qc.measure(1, c[1])
    return source, qc


def builders() -> dict[str, Callable[[], Program]]:
    """Every program builder, by name (the corpus order)."""
    return {f.__name__: f for f in (
        no_version_line, const_sized_for_loops, def_subroutine_twice, if_else_on_measured_bit, bare_bit_conditions,
        measure_without_target, measure_with_and_without_target,
        modifiers_on_standard_gates, modifiers_on_a_user_gate, let_aliases_and_slices, broadcasting,
        reset_mid_circuit, barriers, user_gate_named_ccz, user_gate_named_unitary, angles_pi_tau,
        const_float_math, legacy_declarations, controlled_global_phase, teleportation, repeat_until_success,
        subroutine_returning_a_measurement,
    )}


def programs() -> dict[str, Program]:
    """Every (source, reference) pair, by name."""
    return {name: build() for name, build in builders().items()}
