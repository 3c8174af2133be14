"""The quantum kinds, run in-process on what intake prepared: correct counts, reproducible, noisy when asked."""

from __future__ import annotations

import math

import msgspec
import pytest
from qiskit import qasm3

from qqueue.errors import PermanentFailure
from qqueue.execution.quantum import convert, simulate, transpile_circuit
from qqueue.intake import prepare
from tests.unit.test_intake import BELL2, BELL3, ghz2, qasm2


def run(source: str, shots: int = 1000, **options):
    return simulate(prepare(source, shots=shots, options=options).payload)


def test_bell_gives_only_00_and_11_about_half_each():
    shots = 4000
    result = run(BELL2, shots=shots, seed=11)
    counts = result["counts"]
    assert set(counts) == {"00", "11"} and sum(counts.values()) == shots
    sigma = math.sqrt(shots * 0.25)
    assert abs(counts["00"] - shots / 2) < 5 * sigma
    assert (result["shots"], result["seed"], result["success"]) == (shots, 11, True)
    assert set(result["versions"]) == {"qiskit", "qiskit_aer"}
    assert result["timings"]["simulate_s"] >= 0


def test_x_gate_gives_all_ones():
    assert run(qasm2(1, "x q[0];\n"), shots=100)["counts"] == {"1": 100}


def test_ghz_on_five_qubits_gives_only_all_zeros_and_all_ones():
    assert set(run(ghz2(5), shots=500)["counts"]) <= {"00000", "11111"}


def test_same_circuit_in_openqasm_2_and_3_with_the_same_seed_gives_identical_counts():
    assert run(BELL2, seed=5)["counts"] == run(BELL3, seed=5)["counts"]


def test_unseeded_runs_report_the_seed_that_reproduces_them():
    first = run(BELL2)
    assert run(BELL2, seed=first["seed"])["counts"] == first["counts"]


def test_bit_order_is_qiskits_rightmost_character_is_clbit_0():
    assert run(qasm2(2, "x q[0];\n"), shots=10)["counts"] == {"01": 10}


def test_a_for_loop_circuit_runs_after_unrolling():
    loop = ('OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[3] q;\nbit[3] c;\n'
            "for int i in [0:2] { x q[i]; }\nc = measure q;\n")
    assert run(loop, shots=50)["counts"] == {"111": 50}


def test_measure_without_target_and_missing_include_are_accepted():
    bare = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nx q[1];\nmeasure q;\n'
    assert run(bare, shots=20)["counts"] == {"10": 20}
    no_include = "OPENQASM 3.0;\nqubit[1] q;\nbit[1] c;\nx q[0];\nc = measure q;\n"
    assert run(no_include, shots=20)["counts"] == {"1": 20}


def test_100_qubit_clifford_ghz_runs_with_stabilizer():
    result = run(ghz2(100), shots=200, method="stabilizer")
    assert set(result["counts"]) <= {"0" * 100, "1" * 100}
    assert result["method"] == "stabilizer"


def test_device_noise_changes_counts_which_still_sum_to_shots():
    shots = 2000
    noisy = run(BELL2, shots=shots, seed=3, backend="fake_manila")["counts"]
    assert sum(noisy.values()) == shots
    assert set(noisy) - {"00", "11"}  # noise puts some shots on 01/10
    assert noisy != run(BELL2, shots=shots, seed=3)["counts"]


def test_per_shot_memory_is_returned_when_asked():
    result = run(BELL2, shots=20, seed=1, memory=True)
    assert len(result["memory"]) == 20 and set(result["memory"]) <= {"00", "11"}


def test_transpile_output_reparses_and_reports_before_and_after():
    result = transpile_circuit(prepare(BELL2, kind="transpile", options={"backend": "fake_manila"}).payload)
    circuit = qasm3.loads(result["qasm3"])
    assert circuit.num_qubits >= 2
    assert result["before"]["gate_counts"]["h"] == 1 and "h" not in result["after"]["gate_counts"]
    basis = transpile_circuit(prepare(BELL2, kind="transpile", options={
        "basis_gates": ["rz", "sx", "cx", "measure"], "coupling_map": [[0, 1]], "optimization_level": 0}).payload)
    assert set(basis["after"]["gate_counts"]) <= {"rz", "sx", "cx", "measure"}


def test_convert_between_openqasm_versions_and_to_qir():
    to3 = convert(prepare(BELL2, kind="convert", options={"target": "qasm3"}).payload)["source"]
    assert to3.startswith("OPENQASM 3")
    to2 = convert(prepare(to3, kind="convert", options={"target": "qasm2"}).payload)["source"]
    assert to2.startswith("OPENQASM 2")
    qir = convert(prepare(BELL3, kind="convert", options={"target": "qir"}).payload)["source"]
    for call in ("__quantum__qis__h__body", "__quantum__qis__cnot__body", "__quantum__qis__mz__body"):
        assert call in qir
    # Named by content, not by a uuid1 of the host and the time: the same circuit converts the same every time.
    assert convert(prepare(BELL3, kind="convert", options={"target": "qir"}).payload)["source"] == qir
    assert "qqueue_" in qir.splitlines()[0]


def test_a_payload_that_does_not_decode_for_its_kind_fails_the_task_permanently():
    from qqueue.worker.slot import run_one

    ok, body = run_one("simulate", {"circuit": "bell", "shots": 10})
    assert not ok
    error = msgspec.json.decode(body)
    assert error["type"] == "InvalidPayload" and error["retryable"] is False
    assert "not a valid simulate payload" in error["message"] and "$.circuit" in error["message"]
    with pytest.raises(PermanentFailure, match="not a valid convert payload"):
        convert({"circuit": {"format": "qasm2", "source": BELL2}})
