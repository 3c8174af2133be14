"""A corpus of real circuits, most of which we did not write: Qiskit's circuit library and MQT Bench, exported as
OpenQASM 2 and 3, and hand-written OpenQASM 3 programs in the specification's style (`tests.corpus_qasm3`).

Every circuit is built deterministically (fixed sizes, fixed seeds), has at most 12 qubits, simulates in
milliseconds, and measures its qubits. Library gates are appended as gates wherever the library offers them
(QFTGate, MCXGate, MCMTGate, the adders wrapped as instructions...), so `qiskit.qasm2.dumps` and
`qiskit.qasm3.dumps` write `gate` definitions for them: the case a service that decomposes nothing must
survive. Some circuits are composed flat (the n_local ansatzes, IQP, the hidden linear function), so plain
standard-gate programs are covered too.

MQT Bench (the `mqt_*` items) gives benchmarks as their authors build them, at small sizes: at `BenchmarkLevel.ALG`,
with its own library and custom gates (`Q`, `Oracle`, `mcphase`, `MAJ`/`UMA`, controlled sub-circuits...), and a
few at `BenchmarkLevel.INDEP`, transpiled to a generic gate set (where the multiplier has a gate literally named
`unitary`, which is Aer's name for its matrix instruction). MQT Bench's own seeds (10) and ours (`seed=` where a
benchmark takes one) make them deterministic.

The hand-written programs (the `oq3_*` items) each come with the same circuit built with Qiskit's Python API, the
reference Aer runs; only their OpenQASM 3 text is submitted.

`corpus()` gives one `CorpusCircuit` per (circuit, format). A circuit has no OpenQASM 2 item when the OpenQASM 2
exporter cannot write it: OpenQASM 2 feed-forward is only `if (creg == n) <one gate>;`, so an `if_test` on a
single bit or with an `else` branch has no OpenQASM 2 form. `skipped()` lists those with the exporter's reason, and
the MQT Bench benchmarks not in the corpus with why.

Run as a script to print the corpus: `uv run python -m tests.corpus`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, qasm2, qasm3
from qiskit.circuit import Parameter
from qiskit.circuit.classical import expr
from qiskit.circuit.library import (
    MCMTGate,
    MCXGate,
    PhaseGate,
    QFTGate,
    RYGate,
    XGate,
    ZGate,
    efficient_su2,
    grover_operator,
    hidden_linear_function,
    iqp,
    n_local,
    phase_estimation,
    quantum_volume,
    random_iqp,
    real_amplitudes,
)
from qiskit.synthesis import (
    adder_qft_d00,
    adder_ripple_c04,
    adder_ripple_v95,
    synth_mcx_gray_code,
    synth_mcx_n_dirty_i15,
    synth_mcx_noaux_v24,
)

__all__ = ["CorpusCircuit", "builders", "circuits", "corpus", "mqt_circuits", "origin", "skipped"]

MAX_QUBITS = 12


@dataclass(frozen=True)
class CorpusCircuit:
    """One item: a circuit in one OpenQASM dialect, and the QuantumCircuit it stands for (what Aer runs directly)."""

    name: str
    circuit: QuantumCircuit
    format: str  # "qasm2" or "qasm3"
    source: str
    origin: str = "qiskit"  # "qiskit" (the circuit library), "mqt" (MQT Bench), "handwritten" (tests.corpus_qasm3)

    @property
    def id(self) -> str:
        """A readable test id, e.g. "qft_5-qasm3"."""
        return f"{self.name}-{self.format}"


# --- helpers ---------------------------------------------------------------------------------------------------


def _measured(circuit: QuantumCircuit) -> QuantumCircuit:
    """The circuit with every qubit measured into a register `c` of its own."""
    out = circuit.copy()
    creg = ClassicalRegister(out.num_qubits, "c")
    out.add_register(creg)
    out.measure(out.qubits, creg)
    return out


def _wrapped(body: QuantumCircuit, *, prep: Callable[[QuantumCircuit], None] | None = None,
             name: str | None = None) -> QuantumCircuit:
    """A register `q` sized for `body`, optional state preparation, `body` appended as one gate, all measured.

    Appended as a gate, the exporters write `body` as a `gate` definition instead of inlining it."""
    qc = QuantumCircuit(QuantumRegister(body.num_qubits, "q"))
    if prep is not None:
        prep(qc)
    gate = body.to_gate()
    if name is not None:
        gate.name = name
    qc.append(gate, qc.qubits)
    return _measured(qc)


def _bound(circuit: QuantumCircuit, seed: int) -> QuantumCircuit:
    """All parameters bound to seeded uniform angles in [0, 2π)."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0, 2 * math.pi, circuit.num_parameters)
    return circuit.assign_parameters(dict(zip(circuit.parameters, values, strict=True)))


# --- the circuits ----------------------------------------------------------------------------------------------


def qft_5() -> QuantumCircuit:
    """QFTGate on |10110>: a gate definition `qft` the service must expand (uniform magnitudes, so also a test
    of phases reaching the right outcome through a following Hadamard layer)."""
    qc = QuantumCircuit(QuantumRegister(5, "q"))
    for i in (1, 2, 4):
        qc.x(i)
    qc.append(QFTGate(5), qc.qubits)
    qc.h(0)  # turns the phases of qubit 0 into populations, so a wrong phase shows in the counts
    qc.h(2)
    return _measured(qc)


def qft_then_inverse_6() -> QuantumCircuit:
    """QFT then inverse QFT on a basis state with a small rotation: nearly deterministic |x>."""
    qc = QuantumCircuit(QuantumRegister(6, "q"))
    qc.x([0, 3, 4])
    qc.ry(0.6, 5)
    qc.append(QFTGate(6), qc.qubits)
    qc.append(QFTGate(6).inverse(), qc.qubits)
    return _measured(qc)


def inverse_qft_fourier_state_4() -> QuantumCircuit:
    """Inverse QFT of the Fourier state of 11 (prepared with H and phase gates): outcome 11 = 1011."""
    n, value = 4, 11
    qc = QuantumCircuit(QuantumRegister(n, "q"))
    qc.h(qc.qubits)
    for j in range(n):
        qc.p(2 * math.pi * value * 2**j / 2**n, j)
    qc.append(QFTGate(n).inverse(), qc.qubits)
    return _measured(qc)


def adder_cdkm_3() -> QuantumCircuit:
    """Cuccaro ripple-carry (full) adder on 3-bit registers: a in superposition, b = 5, carry in = 1."""
    adder = adder_ripple_c04(3, kind="full")

    def prep(qc: QuantumCircuit) -> None:
        qc.x(0)  # carry in
        qc.h([1, 2, 3])  # a
        qc.x([4, 6])  # b = 5

    return _wrapped(adder, prep=prep, name="cdkm_adder")


def adder_vbe_2() -> QuantumCircuit:
    """Vedral-Barenco-Ekert ripple-carry (full) adder on 2-bit registers, a and b in partial superposition."""
    adder = adder_ripple_v95(2, kind="full")

    def prep(qc: QuantumCircuit) -> None:
        qc.h(1)
        qc.x(2)
        qc.h(3)
        qc.x(4)

    return _wrapped(adder, prep=prep, name="vbe_adder")


def adder_draper_qft_4() -> QuantumCircuit:
    """Draper QFT adder (half, 4-bit): the library circuit composed flat, so its QFTGate instructions and
    controlled phases are what the exporters see."""
    adder = adder_qft_d00(4, kind="half")
    qc = QuantumCircuit(QuantumRegister(adder.num_qubits, "q"))
    qc.x([0, 2])  # a = 5
    qc.h(3)
    qc.x([4, 5, 6])  # b = 7
    qc.compose(adder, qc.qubits, inplace=True)
    return _measured(qc)


def qpe_phase_exact_4() -> QuantumCircuit:
    """Phase estimation of P(2π·5/16) with 4 counting qubits: the counting register reads 0101 exactly."""
    qpe = phase_estimation(4, PhaseGate(2 * math.pi * 5 / 16))
    qc = QuantumCircuit(QuantumRegister(5, "q"))
    qc.x(4)  # the eigenstate |1> of the phase gate
    qc.append(qpe.to_gate(), qc.qubits)
    return _measured(qc)


def qpe_phase_inexact_5() -> QuantumCircuit:
    """Phase estimation of P(2π·0.3) with 5 counting qubits: a peaked distribution around 0.3·32 ≈ 9.6."""
    qpe = phase_estimation(5, PhaseGate(2 * math.pi * 0.3))
    qc = QuantumCircuit(QuantumRegister(6, "q"))
    qc.x(5)
    qc.compose(qpe, qc.qubits, inplace=True)
    return _measured(qc)


def grover_3q_101() -> QuantumCircuit:
    """Grover search for |101> on 3 qubits, 2 iterations of grover_operator (a phase oracle built from an
    h-ccx-h sandwich)."""
    oracle = QuantumCircuit(3, name="oracle")
    oracle.x(1)
    oracle.h(2)
    oracle.ccx(0, 1, 2)
    oracle.h(2)
    oracle.x(1)
    op = grover_operator(oracle)
    qc = QuantumCircuit(QuantumRegister(3, "q"))
    qc.h(qc.qubits)
    gate = op.to_gate()
    for _ in range(2):
        qc.append(gate, qc.qubits)
    return _measured(qc)


def grover_4q_two_marked() -> QuantumCircuit:
    """Grover search for |0110> and |1111> on 4 qubits (an MCMT-Z oracle), 1 iteration, composed flat."""
    oracle = QuantumCircuit(4, name="oracle")
    oracle.append(MCMTGate(ZGate(), 3, 1), [0, 1, 2, 3])
    oracle.x([0, 3])
    oracle.append(MCMTGate(ZGate(), 3, 1), [0, 1, 2, 3])
    oracle.x([0, 3])
    op = grover_operator(oracle)
    qc = QuantumCircuit(QuantumRegister(4, "q"))
    qc.h(qc.qubits)
    qc.compose(op, qc.qubits, inplace=True)
    return _measured(qc)


def quantum_volume_5() -> QuantumCircuit:
    """Quantum volume, 5 qubits, depth 5, seed 7: random SU(4) blocks (unitary gates)."""
    return _measured(quantum_volume(5, depth=5, seed=7))


def quantum_volume_wrapped_4() -> QuantumCircuit:
    """Quantum volume, 4 qubits, depth 3, seed 11, appended as one gate."""
    return _wrapped(quantum_volume(4, depth=3, seed=11), name="qv4")


def ghz_8() -> QuantumCircuit:
    """GHZ on 8 qubits: 00000000 and 11111111, half each."""
    qc = QuantumCircuit(QuantumRegister(8, "q"))
    qc.h(0)
    for i in range(7):
        qc.cx(i, i + 1)
    return _measured(qc)


def w_state_5() -> QuantumCircuit:
    """W state on 5 qubits, by hand: a custom parameterised two-qubit gate `wstep(θ)` (a controlled RY then a
    CX back), applied with θ_k = 2·acos(sqrt(1/(n-k)))."""
    n = 5
    theta = Parameter("theta")
    step = QuantumCircuit(2, name="wstep")
    step.append(RYGate(theta).control(1), [0, 1])
    step.cx(1, 0)
    angles = [Parameter(f"t{k}") for k in range(n - 1)]
    qc = QuantumCircuit(QuantumRegister(n, "q"))
    qc.x(0)
    for k, angle in enumerate(angles):
        qc.append(step.to_gate(parameter_map={theta: angle}), [k, k + 1])
    qc.assign_parameters({a: 2 * math.acos(math.sqrt(1 / (n - k))) for k, a in enumerate(angles)}, inplace=True)
    return _measured(qc)


def w_state_custom_gates_4() -> QuantumCircuit:
    """W state on 4 qubits built from two custom gates, one defined in terms of the other (nested
    definitions): `split(θ)` and `w4`."""
    theta = Parameter("theta")
    split = QuantumCircuit(2, name="split")
    split.ry(theta / 2, 1)
    split.cx(0, 1)
    split.ry(-theta / 2, 1)
    split.cx(0, 1)
    split.cx(1, 0)
    angles = [Parameter(f"t{k}") for k in range(3)]
    w4 = QuantumCircuit(4, name="w4")
    w4.x(0)
    for k, angle in enumerate(angles):
        w4.append(split.to_gate(parameter_map={theta: angle}), [k, k + 1])
    w4.assign_parameters({a: 2 * math.acos(math.sqrt(1 / (4 - k))) for k, a in enumerate(angles)}, inplace=True)
    qc = QuantumCircuit(QuantumRegister(4, "q"))
    qc.append(w4.to_gate(), qc.qubits)
    return _measured(qc)


def hidden_linear_function_6() -> QuantumCircuit:
    """Hidden linear function (Bravyi-Gosset-König) for a fixed 6-vertex graph."""
    adjacency = [
        [1, 1, 0, 0, 0, 1],
        [1, 0, 1, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 0, 1, 0, 1, 1],
        [0, 0, 0, 1, 1, 0],
        [1, 0, 0, 1, 0, 0],
    ]
    return _measured(hidden_linear_function(adjacency))


def iqp_5() -> QuantumCircuit:
    """Instantaneous quantum polynomial circuit for a fixed symmetric interaction matrix."""
    interactions = [
        [6, 5, 1, 0, 3],
        [5, 4, 3, 2, 0],
        [1, 3, 7, 1, 2],
        [0, 2, 1, 1, 5],
        [3, 0, 2, 5, 3],
    ]
    return _measured(iqp(interactions))


def random_iqp_6() -> QuantumCircuit:
    """random_iqp, 6 qubits, seed 3, appended as one gate."""
    return _wrapped(random_iqp(6, seed=3), name="iqp6")


def efficient_su2_4() -> QuantumCircuit:
    """EfficientSU2 (RY, RZ layers, reverse-linear CX), 4 qubits, 2 reps, seeded random angles."""
    return _measured(_bound(efficient_su2(4, reps=2), seed=101))


def real_amplitudes_5() -> QuantumCircuit:
    """RealAmplitudes, 5 qubits, circular entanglement, 2 reps, seeded angles, appended as one gate."""
    return _wrapped(_bound(real_amplitudes(5, entanglement="circular", reps=2), seed=202), name="ansatz")


def n_local_rzz_4() -> QuantumCircuit:
    """n_local with RX rotations and RZZ entanglers (full entanglement), 2 reps, seeded angles."""
    return _measured(_bound(n_local(4, "rx", "rzz", entanglement="full", reps=2), seed=303))


def mcx_4_controls() -> QuantumCircuit:
    """MCXGate with 4 controls (no ancilla) on a superposition: the `mcx` gate with no standard OpenQASM
    definition."""
    qc = QuantumCircuit(QuantumRegister(5, "q"))
    qc.h([0, 1])
    qc.x([2, 3])
    qc.append(MCXGate(4), qc.qubits)
    return _measured(qc)


def mcx_3_controls_open() -> QuantumCircuit:
    """MCXGate with 3 controls and ctrl_state 101 (open control on the middle qubit)."""
    qc = QuantumCircuit(QuantumRegister(4, "q"))
    qc.h([0, 1, 2])
    qc.append(MCXGate(3, ctrl_state="101"), qc.qubits)
    return _measured(qc)


def mcx_vchain_dirty_5() -> QuantumCircuit:
    """MCX with 5 controls synthesised with 3 dirty ancillas (Iten et al. v-chain), wrapped as one gate; the
    ancillas start in superposition, since dirty ancillas may hold anything."""
    body = synth_mcx_n_dirty_i15(5)  # 5 controls, 1 target, 3 ancillas = 9 qubits

    def prep(qc: QuantumCircuit) -> None:
        qc.h([0, 1, 2, 6, 7, 8])
        qc.x([3, 4])

    return _wrapped(body, prep=prep, name="mcx_vchain")


def mcx_gray_code_4() -> QuantumCircuit:
    """MCX with 4 controls by Gray-code synthesis, composed flat (multi-controlled phase gates inside)."""
    body = synth_mcx_gray_code(4)
    qc = QuantumCircuit(QuantumRegister(body.num_qubits, "q"))
    qc.h([0, 1, 2, 3])
    qc.compose(body, qc.qubits, inplace=True)
    return _measured(qc)


def mcx_noaux_v24_6() -> QuantumCircuit:
    """MCX with 6 controls and no ancilla (Vale et al. 2024 synthesis), wrapped as one gate."""
    body = synth_mcx_noaux_v24(6)

    def prep(qc: QuantumCircuit) -> None:
        qc.h([0, 1])
        qc.x([2, 3, 4, 5])

    return _wrapped(body, prep=prep, name="mcx_noaux")


def mcmt_x_2_2() -> QuantumCircuit:
    """MCMTGate: X on 2 targets controlled by 2 qubits."""
    qc = QuantumCircuit(QuantumRegister(4, "q"))
    qc.h([0, 1])
    qc.x(3)
    qc.append(MCMTGate(XGate(), 2, 2), qc.qubits)
    return _measured(qc)


def repetition_code_syndromes() -> QuantumCircuit:
    """Three-qubit bit-flip repetition code: encode a superposition, a small coherent X error, two rounds of
    syndrome extraction with mid-circuit measurement and reset of the ancillas, then read the data."""
    data = QuantumRegister(3, "data")
    anc = QuantumRegister(2, "anc")
    round1 = ClassicalRegister(2, "round1")
    round2 = ClassicalRegister(2, "round2")
    out = ClassicalRegister(3, "out")
    qc = QuantumCircuit(data, anc, round1, round2, out)
    qc.ry(0.9, data[0])
    qc.cx(data[0], data[1])
    qc.cx(data[0], data[2])
    qc.rx(0.7, data[1])  # the error: a partial flip of the middle qubit
    for creg in (round1, round2):
        qc.cx(data[0], anc[0])
        qc.cx(data[1], anc[0])
        qc.cx(data[1], anc[1])
        qc.cx(data[2], anc[1])
        qc.measure(anc, creg)
        qc.reset(anc)
        qc.rx(0.4, data[2])  # a new error between rounds, so the rounds disagree sometimes
    qc.measure(data, out)
    return qc


def teleport_feed_forward() -> QuantumCircuit:
    """Teleportation of RY(1.1)|0> with classical feed-forward (if_test on measured bits): OpenQASM 3 only."""
    q = QuantumRegister(3, "q")
    m0 = ClassicalRegister(1, "m0")
    m1 = ClassicalRegister(1, "m1")
    res = ClassicalRegister(1, "res")
    qc = QuantumCircuit(q, m0, m1, res)
    qc.ry(1.1, q[0])
    qc.h(q[1])
    qc.cx(q[1], q[2])
    qc.cx(q[0], q[1])
    qc.h(q[0])
    qc.measure(q[0], m0[0])
    qc.measure(q[1], m1[0])
    with qc.if_test((m1[0], 1)):
        qc.x(q[2])
    with qc.if_test((m0[0], 1)):
        qc.z(q[2])
    qc.measure(q[2], res[0])
    return qc


def teleport_register_condition() -> QuantumCircuit:
    """Teleportation again, the corrections conditioned on whole one-bit registers (`if (m1 == 1)`): the one
    form of feed-forward OpenQASM 2 can write (`if(m1==1) x q[2];`)."""
    q = QuantumRegister(3, "q")
    m0 = ClassicalRegister(1, "m0")
    m1 = ClassicalRegister(1, "m1")
    res = ClassicalRegister(1, "res")
    qc = QuantumCircuit(q, m0, m1, res)
    qc.ry(2.3, q[0])
    qc.h(q[1])
    qc.cx(q[1], q[2])
    qc.cx(q[0], q[1])
    qc.h(q[0])
    qc.measure(q[0], m0[0])
    qc.measure(q[1], m1[0])
    with qc.if_test((m1, 1)):
        qc.x(q[2])
    with qc.if_test((m0, 1)):
        qc.z(q[2])
    qc.measure(q[2], res[0])
    return qc


def active_reset_feed_forward() -> QuantumCircuit:
    """Measure-and-correct with an if/else on a whole register: a conditional X resets each of 2 qubits, then
    a conditional branch on the register value picks H or X on a third: OpenQASM 3 only."""
    q = QuantumRegister(3, "q")
    flags = ClassicalRegister(2, "flags")
    out = ClassicalRegister(3, "out")
    qc = QuantumCircuit(q, flags, out)
    qc.h(q[0])
    qc.ry(2.0, q[1])
    qc.measure(q[0], flags[0])
    qc.measure(q[1], flags[1])
    with qc.if_test((flags, 3)) as else_:
        qc.x(q[2])
    with else_:
        qc.h(q[2])
    with qc.if_test((flags[0], 1)):
        qc.x(q[0])
    with qc.if_test((flags[1], 1)):
        qc.x(q[1])
    qc.measure(q, out)
    return qc


def parity_feed_forward() -> QuantumCircuit:
    """Feed-forward on classical expressions of measured bits (Qiskit's `expr`: the parity `syn[0] ^ syn[1]`
    and `syn[0] && syn[1]`), the form dynamic-circuit decoders take: OpenQASM 3 only."""
    q = QuantumRegister(4, "q")
    syn = ClassicalRegister(2, "syn")
    out = ClassicalRegister(3, "out")
    qc = QuantumCircuit(q, syn, out)
    qc.ry(0.8, q[0])
    qc.ry(1.9, q[1])
    qc.measure(q[0], syn[0])
    qc.measure(q[1], syn[1])
    with qc.if_test(expr.bit_xor(syn[0], syn[1])):
        qc.x(q[2])
    with qc.if_test(expr.logic_and(syn[0], syn[1])):
        qc.x(q[3])
    qc.measure([q[2], q[3], q[0]], out)
    return qc


def builders() -> dict[str, Callable[[], QuantumCircuit]]:
    """Every circuit builder, by name (the corpus order)."""
    return {f.__name__: f for f in (
        qft_5, qft_then_inverse_6, inverse_qft_fourier_state_4,
        adder_cdkm_3, adder_vbe_2, adder_draper_qft_4,
        qpe_phase_exact_4, qpe_phase_inexact_5,
        grover_3q_101, grover_4q_two_marked,
        quantum_volume_5, quantum_volume_wrapped_4,
        ghz_8, w_state_5, w_state_custom_gates_4,
        hidden_linear_function_6, iqp_5, random_iqp_6,
        efficient_su2_4, real_amplitudes_5, n_local_rzz_4,
        mcx_4_controls, mcx_3_controls_open, mcx_vchain_dirty_5, mcx_gray_code_4, mcx_noaux_v24_6, mcmt_x_2_2,
        repetition_code_syndromes,
        teleport_feed_forward, teleport_register_condition, active_reset_feed_forward, parity_feed_forward,
    )}


# --- MQT Bench -------------------------------------------------------------------------------------------------

#: (benchmark, size, keyword arguments) taken at `BenchmarkLevel.ALG`, in corpus order. Sizes are the smallest
#: interesting ones each benchmark accepts (some want even sizes, multiples of 4, or 3k + 1).
MQT_ALG: tuple[tuple[str, int, dict[str, Any]], ...] = (
    ("ghz", 5, {}),
    ("graphstate", 6, {"seed": 7}),
    ("qft", 5, {}),
    ("qftentangled", 5, {}),
    ("qpeexact", 5, {}),
    ("qpeinexact", 5, {}),
    ("wstate", 5, {}),
    ("grover", 4, {}),
    ("ae", 4, {}),
    ("dj", 5, {}),
    ("bv", 6, {}),
    ("bv", 5, {"dynamic": True}),
    ("vqe_real_amp", 4, {}),
    ("vqe_su2", 4, {}),
    ("vqe_two_local", 4, {}),
    ("qaoa", 5, {}),
    ("randomcircuit", 5, {}),
    ("qnn", 4, {}),
    ("bmw_quark_cardinality", 4, {}),
    ("bmw_quark_copula", 4, {}),
    ("half_adder", 5, {}),
    ("full_adder", 4, {}),
    ("multiplier", 4, {}),
    ("cdkm_ripple_carry_adder", 6, {}),
    ("vbe_ripple_carry_adder", 7, {}),
    ("draper_qft_adder", 6, {}),
    ("modular_adder", 6, {}),
    ("rg_qft_multiplier", 8, {}),
    ("hrs_cumulative_multiplier", 5, {}),
    ("hhl", 3, {}),
    ("qwalk", 4, {}),
    ("ghz_dynamic", 5, {}),
    ("dynamic_qft", 4, {}),
    ("iqpe", 4, {}),
)
#: The few taken at `BenchmarkLevel.INDEP` as well (MQT Bench transpiles them, optimisation level 2, seed 10):
#: ones whose INDEP form differs from their ALG form (ghz, grover, qaoa... come out the same).
MQT_INDEP: tuple[tuple[str, int, dict[str, Any]], ...] = (
    ("multiplier", 4, {}),
    ("qft", 5, {}),
    ("half_adder", 5, {}),
    ("full_adder", 4, {}),
    ("modular_adder", 6, {}),
    ("qpeinexact", 5, {}),
    ("randomcircuit", 5, {}),
    ("qwalk", 4, {}),
)
#: MQT Bench benchmarks in neither list, and why.
MQT_LEFT_OUT: dict[str, str] = {
    "shor": "its smallest instance (circuit_size 18) has 18 qubits; MAX_QUBITS is 12",
    "seven_qubit_steane_code": "its smallest instance has 13 qubits; MAX_QUBITS is 12",
    "shors_nine_qubit_code": "its smallest instance has 17 qubits; MAX_QUBITS is 12",
}


def _mqt_name(level: str, benchmark: str, size: int, kwargs: dict[str, Any]) -> str:
    flags = "".join(f"_{key}" if value is True else f"_{key}{value}" for key, value in kwargs.items())
    return f"mqt_{level}_{benchmark}{flags}_{size}"


@cache
def mqt_circuits() -> dict[str, QuantumCircuit]:
    """The MQT Bench circuits, by name (`mqt_alg_ghz_5`, `mqt_indep_multiplier_4`...). Benchmarks that measure
    nothing (qaoa) are given `measure_all()`, as a user submitting them would."""
    from mqt.bench import BenchmarkLevel, get_benchmark
    from mqt.bench.benchmarks import get_available_benchmark_names

    chosen = {benchmark for benchmark, _, _ in MQT_ALG + MQT_INDEP}
    undecided = set(get_available_benchmark_names()) - chosen - set(MQT_LEFT_OUT)
    assert not undecided, f"MQT Bench benchmarks neither in the corpus nor left out with a reason: {undecided}"
    out: dict[str, QuantumCircuit] = {}
    for level, label, selection in ((BenchmarkLevel.ALG, "alg", MQT_ALG), (BenchmarkLevel.INDEP, "indep", MQT_INDEP)):
        for benchmark, size, kwargs in selection:
            qc = get_benchmark(benchmark, level, size, **kwargs)
            if "measure" not in qc.count_ops():
                qc.measure_all()
            out[_mqt_name(label, benchmark, size, kwargs)] = qc
    return out


# --- the whole corpus ------------------------------------------------------------------------------------------


@cache
def _handwritten() -> dict[str, tuple[str, QuantumCircuit]]:
    from tests.corpus_qasm3 import programs

    return {f"oq3_{name}": program for name, program in programs().items()}


@cache
def circuits() -> dict[str, QuantumCircuit]:
    """Every circuit, built once, by name: the library's, MQT Bench's, and the references of the hand-written
    programs. Callers must not mutate them."""
    out = {name: build() for name, build in builders().items()}
    out.update(mqt_circuits())
    out.update({name: reference for name, (_, reference) in _handwritten().items()})
    for name, qc in out.items():
        assert qc.num_qubits <= MAX_QUBITS, f"{name} has {qc.num_qubits} qubits"
        assert qc.count_ops().get("measure", 0) > 0, f"{name} measures nothing"
    return out


def origin(name: str) -> str:
    """Where the circuit of this name comes from: "qiskit", "mqt" or "handwritten"."""
    if name.startswith("mqt_"):
        return "mqt"
    return "handwritten" if name.startswith("oq3_") else "qiskit"


#: The OpenQASM 2 exporter tells apart different gates of one name by appending the Python object id
#: (`unitary_140117669783440`), which changes from run to run.
_OBJECT_ID_SUFFIX = re.compile(r"\b([A-Za-z]\w*?)_(\d{9,})\b")
#: Sub-circuits built without a name are named from a process-wide counter (`circuit-42`, written `circuit_42`,
#: `_ccircuit_45` once controlled): the number depends on how many circuits the process made before.
_COUNTER_NAME = re.compile(r"\b(_?c*circuit)_(\d+)(?=\b|_dg\b)")


def _stable(source: str) -> str:
    """The source with object-id gate-name suffixes renumbered in order of appearance (`unitary_id1`, ...), and
    counter-numbered sub-circuit names likewise (`circuit_n1`, ...), so the same circuit is the same text in
    every run."""
    numbers: dict[str, int] = {}

    def rename(match: re.Match[str]) -> str:
        number = numbers.setdefault(match[2], len(numbers) + 1)
        return f"{match[1]}_id{number}"

    renamed = _OBJECT_ID_SUFFIX.sub(rename, source)
    assert renamed == source or not any(f"_id{n}" in source for n in numbers.values()), "renaming collides"
    counters: dict[str, int] = {}

    def renumber(match: re.Match[str]) -> str:
        number = counters.setdefault(match[2], len(counters) + 1)
        return f"{match[1]}_n{number}"

    stable = _COUNTER_NAME.sub(renumber, renamed)
    assert stable == renamed or not re.search(r"\bc*circuit_n\d", renamed), "renumbering collides"
    return stable


#: What the exporters raise for a circuit they cannot write. Both also fail with a TypeError on a gate whose
#: parameter is a matrix (MQT Bench's amplitude estimation appends controlled `UnitaryGate`s, `c-unitary`).
_EXPORT_ERRORS = (qasm2.QASM2ExportError, qasm3.QASM3ExporterError, TypeError)


@cache
def _exports() -> tuple[tuple[CorpusCircuit, ...], tuple[tuple[str, str, str], ...]]:
    items: list[CorpusCircuit] = []
    skips: list[tuple[str, str, str]] = [(f"mqt_{benchmark}", "any", f"left out: {why}")
                                         for benchmark, why in MQT_LEFT_OUT.items()]
    handwritten = _handwritten()
    for name, qc in circuits().items():
        if name in handwritten:
            items.append(CorpusCircuit(name=name, circuit=qc, format="qasm3", source=handwritten[name][0],
                                       origin="handwritten"))
            continue
        for fmt, dumps in (("qasm2", qasm2.dumps), ("qasm3", qasm3.dumps)):
            try:
                source = _stable(dumps(qc))
            except _EXPORT_ERRORS as exc:  # why it has no such form
                skips.append((name, fmt, f"{type(exc).__name__}: {exc}"))
                continue
            items.append(CorpusCircuit(name=name, circuit=qc, format=fmt, source=source, origin=origin(name)))
    return tuple(items), tuple(skips)


def corpus() -> list[CorpusCircuit]:
    """Every (circuit, format) item, in a fixed order; the same text on every call and every run."""
    return list(_exports()[0])


def skipped() -> list[tuple[str, str, str]]:
    """(name, format, the exporter's reason) for each form that cannot be written."""
    return list(_exports()[1])


if __name__ == "__main__":
    for item in corpus():
        qc = item.circuit
        print(f"{item.id:50} {item.origin:12} {qc.num_qubits:2} qubits  {len(item.source):6} chars")
    for name, fmt, why in skipped():
        print(f"{name + '-' + fmt:50} skipped: {why}")
