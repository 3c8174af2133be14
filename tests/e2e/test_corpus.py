"""The corpus (tests/corpus.py): circuits from Qiskit's circuit library and MQT Bench exported as OpenQASM 2 and 3,
and hand-written OpenQASM 3 programs (tests/corpus_qasm3.py), submitted over HTTP to a real API process and run
by a real worker, each compared with Aer run directly on the original QuantumCircuit (for a hand-written program:
its reference, built with Qiskit's Python API).

One API, one worker and one database serve the module; the whole corpus goes in one `POST /tasks/batch`. Every
item must either complete with counts that match Aer's, or be refused at submit (422) with a documented message
(`REFUSED_AT_SUBMIT`): no item may be accepted and then fail in the worker.

Counts are compared by total variation distance under a bound derived from the shot counts (`tvd_bound`), never
by equality: the service's run and the direct run are independent samples (different seeds). The comparison
itself is checked first, without the service: Aer against Aer passes, and Aer against Aer with a bit flipped is
caught; and each hand-written program's reference is checked against the program as Qiskit's own importer reads
it, wherever that importer can.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

import pytest
from qiskit import ClassicalRegister, QuantumCircuit, qasm3
from qiskit.circuit import ControlFlowOp
from qiskit.quantum_info import Operator
from qiskit.transpiler import StagedPassManager, generate_preset_pass_manager
from qiskit_aer import AerSimulator

from qqueue.store import db
from tests.conftest import WorkerProcess, live_workers, wait_until
from tests.corpus import CorpusCircuit, circuits, corpus
from tests.e2e.api_support import ApiServer
from tests.e2e.test_api import module_db  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

SHOTS = 4000
#: Chance that one item's comparison fails although both samples come from the same distribution.
FALSE_ALARM = 1e-6
FINISHED = {"completed", "failed", "cancelled"}
#: Aer seeds shot i of a run seeded s with s + i wherever it simulates shot by shot (mid-circuit measurement,
#: feed-forward), so runs seeded 1 and 2 share all but one shot. Seeds this far apart share none.
SEED_STRIDE = 2**20

#: Items the service refuses at submit, by design, with (part of) the message it must give. Anything refused
#: that is not listed here, or listed and not refused, fails the test.
REFUSED_AT_SUBMIT: dict[str, str] = {
    # Valid OpenQASM 3 that Aer runs when built in Python, but that neither OpenQASM 3 importer (Qiskit's,
    # pyqasm) can read: exclusive or of two bits in a condition.
    "parity_feed_forward-qasm3": "the OpenQASM 3 importer cannot evaluate this operator here",
    # The same, as MQT Bench's dynamic GHZ writes it: `if ((m[0] ^ m[1]) == true)`. Qiskit's importer says
    # "unsupported binary operation '^'"; pyqasm fails on the expression ("'BinaryExpression' object has no
    # attribute 'index'").
    "mqt_alg_ghz_dynamic_5-qasm3": "unsupported binary operation '^'",
    # A subroutine returning a measurement (`def xmeasure(qubit a) -> bit { ...; return measure a; }`, after the
    # specification's own example): Qiskit's importer reads no `def`, and pyqasm cannot unroll `return measure`.
    "oq3_subroutine_returning_a_measurement-qasm3": "Unsupported expression type",
}

ITEMS = corpus()


# --- the comparison --------------------------------------------------------------------------------------------


def tvd(a: Mapping[str, int], b: Mapping[str, int]) -> float:
    """Total variation distance between two count dictionaries (as empirical distributions)."""
    na, nb = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a.get(k, 0) / na - b.get(k, 0) / nb) for k in a.keys() | b.keys())


def tvd_bound(a: Mapping[str, int], b: Mapping[str, int], false_alarm: float = FALSE_ALARM) -> float:
    """The largest TVD two samples of one distribution reach, except with probability `false_alarm`.

    With n_a and n_b shots from one distribution p, each outcome's frequency difference has variance
    p_i(1-p_i)(1/n_a + 1/n_b), so (Jensen) E[TVD] ≤ ½ Σ sqrt(p_i(1-p_i)(1/n_a + 1/n_b)); p is estimated by the
    pooled counts. Changing one shot moves the TVD by at most 1/n_a (or 1/n_b), so by McDiarmid's inequality
    P(TVD ≥ E[TVD] + t) ≤ exp(-2t² / (1/n_a + 1/n_b)). For 4000 shots each the deviation term is 0.059; the
    mean term is 0.02 for a fair coin and grows with the number of likely outcomes (0.1 for 32 equally likely).
    """
    na, nb = sum(a.values()), sum(b.values())
    spread = 1 / na + 1 / nb
    pooled = [(a.get(k, 0) + b.get(k, 0)) / (na + nb) for k in a.keys() | b.keys()]
    mean = 0.5 * sum(math.sqrt(p * (1 - p) * spread) for p in pooled)
    return mean + math.sqrt(spread * math.log(1 / false_alarm) / 2)


def same_distribution(a: Mapping[str, int], b: Mapping[str, int]) -> tuple[bool, str]:
    """Whether the samples agree within `tvd_bound`, and a line saying by how much."""
    distance, bound = tvd(a, b), tvd_bound(a, b)
    return distance < bound, f"TVD {distance:.4f} (bound {bound:.4f})"


@cache
def _simulator() -> AerSimulator:
    return AerSimulator()


@cache
def _pass_manager() -> StagedPassManager:
    # Built once: building one reads the simulator's target, which costs more than transpiling these circuits.
    return generate_preset_pass_manager(optimization_level=0, backend=_simulator())


@cache
def _transpiled(name: str) -> QuantumCircuit:
    # Aer runs no library gates (qft, mcx, unitary...) itself: expand them for it first.
    return _pass_manager().run(circuits()[name])


def direct_counts(name: str, seed: int, shots: int = SHOTS) -> dict[str, int]:
    """Counts of the original circuit run on Aer here, without the service."""
    result = _simulator().run(_transpiled(name), shots=shots, seed_simulator=seed).result()
    return dict(result.get_counts(0))


def seed_of(item: CorpusCircuit) -> int:
    """The seed sent with the item: fixed, and different per item (so the qasm2 and qasm3 forms of a circuit
    are not answered from each other's cached result)."""
    return zlib.crc32(item.id.encode()) % 2**30


def flip_clbit0(counts: Mapping[str, int]) -> dict[str, int]:
    """The counts with classical bit 0 (the key's last character) inverted."""
    out: dict[str, int] = {}
    for key, n in counts.items():
        flipped = key[:-1] + ("1" if key[-1] == "0" else "0")
        out[flipped] = out.get(flipped, 0) + n
    return out


def test_the_comparison_accepts_aer_against_aer_and_catches_a_flipped_bit():
    """The bound is neither so tight that two honest samples fail, nor so loose that a wrong answer passes."""
    caught = 0
    for name in circuits():
        first, second = direct_counts(name, seed=1), direct_counts(name, seed=1 + SEED_STRIDE)
        ok, how = same_distribution(first, second)
        assert ok, f"{name}: two Aer runs of one circuit disagree: {how}"
        # Where a third sample shows the flipped distribution far from the true one (well past the bound, so
        # not by chance), the comparison must reject it.
        third = direct_counts(name, seed=1 + 2 * SEED_STRIDE)
        if tvd(third, flip_clbit0(third)) > 3 * tvd_bound(first, second):
            ok, how = same_distribution(first, flip_clbit0(second))
            assert not ok, f"{name}: a flipped bit went unnoticed: {how}"
            caught += 1
    assert caught >= len(circuits()) // 2, "too few circuits exercise the rejection"


# --- the hand-written programs' references ---------------------------------------------------------------------


def _registered(circuit: QuantumCircuit) -> QuantumCircuit:
    """The circuit with each bit that is in no register (Qiskit's importer makes `bit b;` one) given a one-bit
    register of its own, in bit order: Aer leaves such bits out of the counts, and the references count every
    declared bit."""
    if all(circuit.find_bit(bit).registers for bit in circuit.clbits):
        return circuit
    out = QuantumCircuit(*circuit.qregs, global_phase=circuit.global_phase)
    for index, bit in enumerate(circuit.clbits):
        registers = circuit.find_bit(bit).registers
        if not registers:
            out.add_register(ClassicalRegister(bits=[bit], name=f"lone{index}"))
        elif registers[0][1] == 0:
            out.add_register(registers[0][0])
    for instruction in circuit.data:
        out.append(instruction)
    return out


def _final_measurements_only(circuit: QuantumCircuit) -> bool:
    """Whether the circuit is unitary gates followed by measurements (barriers anywhere)."""
    measured = False
    for instruction in circuit.data:
        name = instruction.operation.name
        if name == "measure":
            measured = True
        elif name != "barrier" and (measured or name == "reset" or isinstance(instruction.operation, ControlFlowOp)):
            return False
    return True


def _split(circuit: QuantumCircuit) -> tuple[QuantumCircuit, list[tuple[int, int]]]:
    """The unitary part, and the (qubit, clbit) pairs measured."""
    unitary = circuit.copy_empty_like()
    pairs = []
    for instruction in circuit.data:
        if instruction.operation.name == "measure":
            pairs.append((circuit.find_bit(instruction.qubits[0]).index, circuit.find_bit(instruction.clbits[0]).index))
        elif instruction.operation.name != "barrier":
            unitary.append(instruction)
    return unitary, sorted(pairs)


def test_each_handwritten_reference_is_its_program_as_qiskit_reads_it():
    """Where Qiskit's importer reads a hand-written program, the reference is the same circuit: the same classical
    registers, and the same operator and measurements (or, with mid-circuit measurement, the same counts). The
    rest (loops, subroutines, `const`, targetless measurement) that importer refuses; their references were
    checked by hand."""
    checked = []
    for item in (item for item in ITEMS if item.origin == "handwritten"):
        try:
            with warnings.catch_warnings():
                # The importer applies `ctrl @` with Gate.control()'s deprecated default: its noise, not ours.
                warnings.simplefilter("ignore", DeprecationWarning)
                imported = _registered(qasm3.loads(item.source))
        except qasm3.QASM3ImporterError:  # a construct this importer refuses
            continue
        reference = item.circuit
        layout = ([r.size for r in reference.cregs], reference.num_qubits, reference.num_clbits)
        assert layout == ([r.size for r in imported.cregs], imported.num_qubits, imported.num_clbits), item.name
        if _final_measurements_only(reference) and _final_measurements_only(imported):
            (ours, our_pairs), (theirs, their_pairs) = _split(reference), _split(imported)
            assert our_pairs == their_pairs, f"{item.name}: measurements differ"
            # Operator, not Aer: Aer would run a program's own `ccz` as its CCZ, by name.
            assert Operator(ours).equiv(Operator(theirs)), f"{item.name}: the operators differ"
        else:
            imported_counts = _simulator().run(_pass_manager().run(imported), shots=SHOTS, seed_simulator=7).result()
            ok, how = same_distribution(direct_counts(item.name, seed=7 + SEED_STRIDE),
                                        imported_counts.get_counts(0))
            assert ok, f"{item.name}: the reference's counts differ from the imported program's: {how}"
        checked.append(item.name)
    assert len(checked) >= 10, f"Qiskit's importer read only {checked}"


# --- the service -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(module_db: str) -> Iterator[ApiServer]:  # noqa: F811
    server = ApiServer(module_db)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(module_db: str) -> Iterator[WorkerProcess]:  # noqa: F811
    proc = WorkerProcess(module_db, "--concurrency", "2")
    try:  # stopped even when it never came up
        with db.connection(module_db) as conn:
            wait_until(lambda: live_workers(conn) >= 1, timeout_s=60)
        yield proc
    finally:
        proc.kill_all()
        print(f"--- worker {proc.pid} output ---\n{proc.output()}")
        proc.log.close()


def _body(item: CorpusCircuit) -> dict[str, Any]:
    return {"qc": item.source, "shots": SHOTS, "options": {"seed": seed_of(item)}}


@pytest.fixture(scope="module")
def outcomes(api: ApiServer, worker: WorkerProcess) -> dict[str, dict[str, Any]]:
    """Each item's fate by id: {"refused": error} from the batch, or {"task": the finished task}."""
    response = api.client.post("/tasks/batch", json={"tasks": [_body(item) for item in ITEMS]})
    assert response.status_code in (201, 422), response.text
    answer = response.json()
    assert [entry["index"] for entry in answer["items"]] == list(range(len(ITEMS)))
    out: dict[str, dict[str, Any]] = {}
    for item, entry in zip(ITEMS, answer["items"], strict=True):
        out[item.id] = {"refused": entry["error"]} if "task_id" not in entry else {"task_id": entry["task_id"]}
    for fate in out.values():
        if "task_id" in fate:
            fate["task"] = wait_until(lambda f=fate: _finished(api, f["task_id"]), timeout_s=120, interval_s=0)
    return out


def _finished(api: ApiServer, task_id: str) -> dict[str, Any] | None:
    response = api.client.get(f"/tasks/{task_id}", params={"wait": 30})
    assert response.status_code == 200, response.text
    task = response.json()
    return task if task["status"] in FINISHED else None


@pytest.mark.parametrize("item", ITEMS, ids=[item.id for item in ITEMS])
def test_a_corpus_circuit_runs_as_aer_runs_it_or_is_refused_at_submit(item, api, outcomes):
    fate = outcomes[item.id]
    if item.id in REFUSED_AT_SUBMIT:
        assert "refused" in fate, f"expected a refusal at submit, but it was queued: {fate.get('task')}"
        # Alone, the same submission is a 422 with the documented message.
        response = api.client.post("/tasks", json=_body(item))
        assert response.status_code == 422, response.text
        assert REFUSED_AT_SUBMIT[item.id] in response.json()["message"], response.json()
        return
    assert "refused" not in fate, f"refused at submit: {fate['refused']}"
    task = fate["task"]
    assert task["status"] == "completed", f"failed late ({task['status']}): {task['error']}"
    counts = task["result"]["counts"]
    assert sum(counts.values()) == SHOTS
    ok, how = same_distribution(counts, direct_counts(item.name, seed=seed_of(item) + SEED_STRIDE))
    print(f"{item.id}: {how}")
    assert ok, f"the service's counts differ from Aer's: {how}"
