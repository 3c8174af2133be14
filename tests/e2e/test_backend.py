"""GET /backends and `QQueueBackend`, the Qiskit BackendV2 over the HTTP API: a real API process, a real worker,
real PostgreSQL, and Qiskit's own tools (transpile, BackendSamplerV2, BackendEstimatorV2) unmodified.

Results are compared with Aer run here with the same seeds: a run of n circuits seeded s gives circuit i the seed
Aer gives it (s + 2113 i), so seeded counts and per-shot memory must be equal, not merely close.
"""

from __future__ import annotations

import re
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, qasm3, transpile
from qiskit.circuit import Clbit, Gate, Parameter
from qiskit.primitives import BackendEstimatorV2, BackendSamplerV2
from qiskit.providers import JobStatus
from qiskit.providers.exceptions import JobError
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_aer import AerSimulator

from qqueue.client import ApiError, Client
from qqueue.client.backend import AER_SEED_STEP, CircuitRejectedError, QQueueBackend
from qqueue.execution.backends import available_backends, device
from qqueue.intake.model import IntakeLimits
from tests.conftest import WorkerProcess
from tests.e2e.api_support import ApiServer
from tests.e2e.test_api import api, module_db, sql, worker  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


# --- fixtures: one API, one worker, one database for the module (starting them is most of the cost) -------------


@pytest.fixture(scope="module")
def client(api: ApiServer) -> Iterator[Client]:
    # The first GET /backends reads the list from the installed libraries: seconds, once per API process.
    with Client(api.url, timeout=120) as qq:
        yield qq


@pytest.fixture(scope="module")
def ideal(client: Client, worker: WorkerProcess) -> QQueueBackend:
    return QQueueBackend(client.url, client=client)


# --- circuits --------------------------------------------------------------------------------------------------


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def ghz_two_registers() -> QuantumCircuit:
    """Three qubits into registers of 1 and 2 bits, one flipped, so that register order and bit order show."""
    q = QuantumRegister(3, "q")
    low, high = ClassicalRegister(1, "low"), ClassicalRegister(2, "high")
    qc = QuantumCircuit(q, low, high, name="ghz")
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.x(2)
    qc.ry(0.4, 1)
    qc.measure(0, low[0])
    qc.measure([1, 2], high)
    return qc


def custom_gate() -> QuantumCircuit:
    """A user-defined gate (written out as an OpenQASM 3 `gate` definition) applied twice."""
    inner = QuantumCircuit(2, name="entangle")
    inner.h(0)
    inner.cx(0, 1)
    inner.rz(0.3, 1)
    inner.sx(0)
    entangle = Gate("entangle", 2, [])
    entangle.definition = inner
    qc = QuantumCircuit(3, 3, name="custom")
    qc.append(entangle, [0, 1])
    qc.append(entangle, [1, 2])
    qc.measure([0, 1, 2], [0, 1, 2])
    return qc


def parameterized() -> tuple[QuantumCircuit, list[list[float]]]:
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2, name="ansatz")
    qc.ry(a, 0)
    qc.cx(0, 1)
    qc.rx(b, 1)
    return qc, [[0.3, 1.1], [1.7, -0.4], [np.pi / 2, 2.5]]


# --- GET /backends ---------------------------------------------------------------------------------------------


def test_backends_lists_the_ideal_simulator_and_every_fake_device(api: ApiServer, client: Client) -> None:
    answer = api.client.get("/backends", timeout=120)
    assert answer.status_code == 200
    listed = answer.json()
    ideal = listed[0]
    assert ideal["name"] == "aer_simulator" and ideal["coupling_map"] is None
    assert ideal["num_qubits"] == IntakeLimits().max_qubits
    assert ideal["simulator"] is True and ideal["noisy"] is False
    assert {"h", "cx", "ccx", "measure", "reset", "delay", "if_else"} <= set(ideal["basis_gates"])
    assert not any(g.startswith(("save_", "set_")) for g in ideal["basis_gates"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        devices = {name: device(name) for name in available_backends() if hasattr(device(name), "target")}
    assert [b["name"] for b in listed[1:]] == sorted(devices)
    manila = next(b for b in listed if b["name"] == "fake_manila")
    target = devices["fake_manila"].target
    assert manila["num_qubits"] == 5 and manila["noisy"] is True
    assert sorted(map(tuple, manila["coupling_map"])) == sorted(target.build_coupling_map().get_edges())
    assert set(manila["basis_gates"]) == set(target.operation_names)
    assert all(b["coupling_map"] for b in listed[1:] if b["num_qubits"] > 1)
    # The same through the client, and one by one (aliases as options.backend takes them).
    assert [b.name for b in client.backends()] == [b["name"] for b in listed]
    assert api.client.get("/backends/fake_manila").json() == manila
    assert api.client.get("/backends/FakeManilaV2").json() == manila
    assert client.backend("aer_simulator").coupling_map is None


def test_an_unknown_backend_is_a_404_naming_what_there_is(api: ApiServer, client: Client) -> None:
    answer = api.client.get("/backends/fake_nowhere", timeout=120)
    assert answer.status_code == 404
    body = answer.json()
    assert "Unknown backend 'fake_nowhere'" in body["message"] and "GET /backends" in body["message"]
    assert body["error"]["code"] == "unknown_backend" and "fake_manila" in body["error"]["details"]["available"]
    with pytest.raises(ApiError) as raised:
        QQueueBackend(client.url, name="fake_nowhere", client=client)
    assert raised.value.status == 404


def test_the_api_process_never_loads_qiskit(api: ApiServer, client: Client) -> None:
    client.backends()
    with open(f"/proc/{api.proc.pid}/maps") as maps:
        loaded = maps.read()
    assert "qiskit" not in loaded and "qiskit_aer" not in loaded


# --- QQueueBackend.run -----------------------------------------------------------------------------------------


def test_seeded_counts_and_memory_equal_aers(ideal: QQueueBackend) -> None:
    circuits = [bell(), ghz_two_registers(), custom_gate()]
    assert "gate entangle" in qasm3.dumps(circuits[2])
    job = ideal.run(circuits, shots=300, seed_simulator=1234, memory=True)
    result = job.result(timeout=120)
    # Aer knows no user-defined gate: the reference runs its definition inlined, as the server does.
    reference = [*circuits[:2], circuits[2].decompose(gates_to_decompose=["entangle"])]
    expected = AerSimulator().run(reference, shots=300, seed_simulator=1234, memory=True).result()
    assert job.status() is JobStatus.DONE and result.success
    for i, circuit in enumerate(circuits):
        assert result.get_counts(i) == expected.get_counts(i), circuit.name
        assert result.get_memory(i) == expected.get_memory(i), circuit.name
        assert result.results[i].data.counts == expected.results[i].data.counts
        assert result.results[i].data.memory == expected.results[i].data.memory
        assert result.results[i].seed_simulator == 1234 + AER_SEED_STEP * i
        assert result.results[i].header["creg_sizes"] == expected.results[i].header["creg_sizes"]
        assert result.results[i].header["memory_slots"] == expected.results[i].header["memory_slots"]
    assert all(re.fullmatch(r"[01]{2} [01]", key) for key in result.get_counts(1))  # "high low", as Aer spaces them
    assert result.get_counts(circuits[0]) == expected.get_counts(circuits[0])  # looked up by name as Aer's


def test_an_unseeded_run_reports_the_seeds_the_server_drew(ideal: QQueueBackend) -> None:
    job = ideal.run(bell(), shots=200)
    result = job.result(timeout=120)
    seed = result.results[0].seed_simulator
    assert isinstance(seed, int)
    assert result.get_counts() == AerSimulator().run(bell(), shots=200, seed_simulator=seed).result().get_counts()
    assert not hasattr(result.results[0].data, "memory")
    assert len(job.task_ids()) == 1 and job.job_id()


def test_transpile_for_a_fake_device_follows_its_target_and_runs_noisy(client: Client, worker: WorkerProcess) -> None:
    manila = QQueueBackend(client.url, name="fake_manila", client=client)
    assert manila.num_qubits == 5 and manila.target.build_coupling_map() is not None
    qc = ghz_two_registers()
    isa = transpile(qc, backend=manila, optimization_level=1, seed_transpiler=3)
    edges = set(manila.coupling_map.get_edges())
    for item in isa.data:
        assert item.operation.name in manila.operation_names
        if len(item.qubits) == 2:
            assert tuple(isa.find_bit(q).index for q in item.qubits) in edges
    result = manila.run(isa, shots=2000, seed_simulator=5).result(timeout=120)
    counts = result.get_counts()
    ideal = Statevector(qc.remove_final_measurements(inplace=False)).probabilities_dict()
    assert sum(counts.values()) == 2000
    # Noisy, so not exact, but most shots land where the ideal circuit puts them (keys "high low").
    assert sum(n for k, n in counts.items() if ideal.get(k.replace(" ", ""), 0) > 0.01) > 1700
    assert result.results[0].metadata["backend"] == "fake_manila"


# --- Qiskit's primitives, unmodified ---------------------------------------------------------------------------


def test_backend_sampler_v2_matches_aer(ideal: QQueueBackend) -> None:
    ansatz, values = parameterized()
    measured = ansatz.measure_all(inplace=False)
    options = {"default_shots": 4000, "seed_simulator": 99}
    ours = BackendSamplerV2(backend=ideal, options=options).run([(measured, values)]).result()[0]
    aers = BackendSamplerV2(backend=AerSimulator(), options=options).run([(measured, values)]).result()[0]
    assert ours.data.meas.shape == (3,) and ours.data.meas.num_shots == 4000
    for i, row in enumerate(values):
        assert ours.data.meas[i].get_counts() == aers.data.meas[i].get_counts()
        exact = Statevector(ansatz.assign_parameters(row)).probabilities_dict()
        counts = ours.data.meas[i].get_counts()
        tvd = 0.5 * sum(abs(counts.get(k, 0) / 4000 - exact.get(k, 0)) for k in set(counts) | set(exact))
        assert tvd < 0.05, (row, counts, exact)


def test_backend_sampler_v2_reads_named_registers(ideal: QQueueBackend) -> None:
    qc = ghz_two_registers()
    options = {"default_shots": 500, "seed_simulator": 4}
    ours = BackendSamplerV2(backend=ideal, options=options).run([qc]).result()[0]
    aers = BackendSamplerV2(backend=AerSimulator(), options=options).run([qc]).result()[0]
    assert ours.data.low.get_counts() == aers.data.low.get_counts()
    assert ours.data.high.get_counts() == aers.data.high.get_counts()
    assert np.array_equal(ours.data.high.array, aers.data.high.array)


def test_backend_estimator_v2_within_sampling_error_of_exact(ideal: QQueueBackend) -> None:
    ansatz, values = parameterized()
    observables = SparsePauliOp.from_list([("ZZ", 1.0), ("XI", 0.5), ("IY", -0.7)])
    estimator = BackendEstimatorV2(backend=ideal, options={"default_precision": 0.02, "seed_simulator": 8})
    ours = estimator.run([(ansatz, observables, values)]).result()[0]
    aers = BackendEstimatorV2(backend=AerSimulator(), options={"default_precision": 0.02, "seed_simulator": 8}
                              ).run([(ansatz, observables, values)]).result()[0]
    np.testing.assert_allclose(ours.data.evs, aers.data.evs)
    for i, row in enumerate(values):
        exact = Statevector(ansatz.assign_parameters(row)).expectation_value(observables).real
        assert abs(ours.data.evs[i] - exact) < 5 * ours.data.stds[i] + 1e-9, (row, ours.data.evs[i], exact)


# --- jobs: status, cancel, refusals ----------------------------------------------------------------------------


def test_a_queued_job_reports_queued_and_cancels(ideal: QQueueBackend) -> None:
    # A queue no worker consumes: the tasks stay pending as long as the test needs.
    job = ideal.run([bell(), bell()], shots=100, queue="idle-backend-cancel")
    assert job.status() is JobStatus.QUEUED
    assert job.cancel() is True
    assert job.status() is JobStatus.CANCELLED and job.in_final_state()
    with pytest.raises(JobError, match=r"circuit 0 \('bell', task .*\) cancelled"):
        job.result(timeout=10)
    assert job.cancel() is False  # nothing left to cancel


def test_a_refused_circuit_raises_naming_its_index_and_queues_nothing(
    ideal: QQueueBackend, sql: psycopg.Connection[Any]
) -> None:
    unmeasured = QuantumCircuit(1, name="unmeasured")
    unmeasured.h(0)
    marker = bell()
    marker.name = f"bell-{uuid.uuid4().hex[:8]}"
    with pytest.raises(CircuitRejectedError) as raised:
        ideal.run([marker, unmeasured], shots=100, queue="idle-backend-refused")
    assert raised.value.index == 1 and raised.value.code == "no_measurement"
    assert "circuit 1 ('unmeasured') was rejected" in str(raised.value) and "measures nothing" in str(raised.value)
    statuses = sql.execute("SELECT status::text FROM qqueue.tasks WHERE metadata ->> 'circuit_name' = %s",
                           (marker.name,)).fetchall()
    assert statuses == [("cancelled",)]  # the valid sibling was queued with it, and cancelled at once


def test_run_refuses_unbound_parameters_and_unknown_options(ideal: QQueueBackend) -> None:
    ansatz, _ = parameterized()
    with pytest.raises(ValueError, match=r"circuit 0 \('ansatz'\) has unbound parameters \(a, b\)"):
        ideal.run(ansatz.measure_all(inplace=False))
    with pytest.raises(ValueError, match="unknown run options \\['noise_model'\\]"):
        ideal.run(bell(), noise_model=None)


def test_bits_outside_registers_keep_their_places(ideal: QQueueBackend) -> None:
    # Deterministic outcomes, each bit different, so that any bit landing in another place shows. (The server
    # runs the circuit with its bits reordered, registers first, so Aer's random draws would land differently.)
    loose = [Clbit(), Clbit()]
    qc = QuantumCircuit(QuantumRegister(4, "q"), [loose[0]], ClassicalRegister(2, "r"), [loose[1]], name="loose")
    qc.x([0, 2])
    qc.measure([0, 1, 2, 3], [0, 1, 2, 3])
    with qc.if_test((loose[1], 0)):  # a condition on a bit in no register travels too
        qc.x(3)
    qc.measure(3, loose[1])
    result = ideal.run(qc, shots=50, memory=True).result(timeout=120)
    expected = AerSimulator().run(qc, shots=50, memory=True).result()
    assert result.results[0].data.counts == expected.results[0].data.counts == {"0xd": 50}
    assert result.results[0].data.memory == expected.results[0].data.memory
    assert result.get_counts() == expected.get_counts()
