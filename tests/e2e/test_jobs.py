"""Jobs and the primitives end to end: a real API, two real workers, the Python client's SamplerV2 and
EstimatorV2, and checks in SQL. A job of many PUBs runs on both workers and assembles in order, exactly as Aer's
local primitives answer; cancel, a failing PUB, idempotency and bad input behave; a variational loop converges."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2 as AerEstimator
from qiskit_aer.primitives import SamplerV2 as AerSampler
from scipy.optimize import minimize

from qqueue.client import Client, EstimatorV2, SamplerV2
from qqueue.client.primitives import circuit_source
from qqueue.store import queue as q
from qqueue.store.invariants import check
from tests.conftest import WorkerProcess, live_workers, wait_until
from tests.e2e.api_support import ApiServer
from tests.e2e.test_api import api, assert_error, idle_queue, module_db, sql  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

ANSATZ = 'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float a;\ninput float b;\nqubit[2] q;\nry(a) q[0];\n' \
         'rx(b) q[1];\ncx q[0], q[1];\n'


@pytest.fixture(scope="module")
def workers(module_db: str, sql: psycopg.Connection[Any]) -> Iterator[list[WorkerProcess]]:  # noqa: F811
    """Two single-slot workers on the default queue."""
    procs = [WorkerProcess(module_db, "--concurrency", "1") for _ in range(2)]
    wait_until(lambda: live_workers(sql) >= 2, timeout_s=90)
    yield procs
    for proc in procs:
        proc.kill_all()
        print(f"--- worker {proc.pid} output ---\n{proc.output()}")
        proc.log.close()


@pytest.fixture(scope="module")
def client(api: ApiServer) -> Iterator[Client]:  # noqa: F811
    with Client(api.url) as c:
        yield c


def hea(qubits: int, layers: int) -> QuantumCircuit:
    theta = ParameterVector("θ", qubits * layers)
    qc = QuantumCircuit(qubits)
    for layer in range(layers):
        for i in range(qubits):
            qc.ry(theta[layer * qubits + i], i)
        for i in range(qubits - 1):
            qc.cx(i, i + 1)
    return qc


def rows(sql: psycopg.Connection[Any]) -> tuple[int, int]:  # noqa: F811
    return sql.execute("SELECT (SELECT count(*) FROM qqueue.jobs), (SELECT count(*) FROM qqueue.tasks)").fetchone()


def test_a_job_of_many_pubs_runs_on_both_workers_and_assembles_in_order(api, client, workers, sql):  # noqa: F811
    circuit = hea(10, 3)
    rng = np.random.default_rng(2)
    pubs = [(circuit, SparsePauliOp.from_list([("Z" * 10, 1.0), ("X" + "I" * 9, -0.5)]),
             rng.uniform(-np.pi, np.pi, size=(60, circuit.num_parameters))),
            (circuit, [["Z" + "I" * 9], ["I" * 9 + "Z"]],
             rng.uniform(-np.pi, np.pi, size=(1, 40, circuit.num_parameters)))]
    job = EstimatorV2(client=client, chunk_size=10).run(pubs)
    result = job.result()
    local = AerEstimator().run(pubs).result()
    for ours, theirs in zip(result, local, strict=True):
        assert ours.data.evs.shape == theirs.data.evs.shape
        np.testing.assert_allclose(ours.data.evs, theirs.data.evs, atol=1e-9, rtol=0)
    detail = client.get_job(job.job_id())
    assert detail.status == "completed" and detail.progress.tasks_done == detail.progress.tasks_total == 14
    parts = [(t.pub, t.part, t.start, t.stop) for t in detail.tasks]
    assert parts[:7] == [(0, i, 10 * i, 10 * i + 10) for i in range(6)] + [(1, 0, 0, 10)]
    assert len({t.worker_id for t in detail.tasks}) == 2, "both workers ran parts of the job"
    stats = sql.execute("SELECT status, tasks_done, tasks_total FROM qqueue.job_stats WHERE id = %s",
                        (uuid.UUID(job.job_id()),)).fetchone()
    assert stats == ("completed", 14, 14)
    assert check(sql).ok, check(sql).violations


@pytest.mark.parametrize("shape", [(), (3,), (2, 2)])
def test_seeded_sampler_results_are_identical_to_aers(client, workers, shape):
    circuit = hea(3, 2)
    circuit.measure_all()
    extra = QuantumCircuit(2, 2)
    extra.h(0)
    extra.cx(0, 1)
    extra.measure([0, 1], [0, 1])
    values = np.random.default_rng(4).uniform(0, np.pi, size=(*shape, circuit.num_parameters))
    pubs = [(circuit, values, 300), (extra, None, 50)]
    ours = SamplerV2(client=client, seed=9).run(pubs).result()
    theirs = AerSampler(seed=9).run(pubs).result()
    assert ours[0].data.meas.shape == theirs[0].data.meas.shape == shape
    assert np.array_equal(ours[0].data.meas.array, theirs[0].data.meas.array)
    assert ours[1].data.c.get_counts() == theirs[1].data.c.get_counts()


def test_unseeded_samples_agree_with_the_exact_distribution(client, workers):
    circuit = QuantumCircuit(1)
    circuit.ry(2 * np.arccos(np.sqrt(0.8)), 0)  # P(0) = 0.8
    circuit.measure_all()
    counts = SamplerV2(client=client).run([(circuit, None, 4000)]).result()[0].data.meas.get_counts()
    assert abs(counts.get("0", 0) / 4000 - 0.8) < 0.03  # 5 standard deviations


def test_cancelling_a_job_mid_run_stops_what_is_unfinished_and_keeps_the_rest(api, client, sql):  # noqa: F811
    queue = idle_queue()
    answer = client.submit_job({"kind": "estimate", "queue": queue, "chunk_size": 2, "pubs": [
        {"qc": ANSATZ, "parameter_values": [[0.1 * i, 0.2] for i in range(6)], "observables": "ZZ"}]})
    # A worker of that queue holds the first part.
    holder = uuid.uuid4()
    [claimed] = q.claim(sql, worker_id=holder, queues=[queue], limit=1, lease_s=60)
    cancel = client.cancel_job(answer.job_id)
    assert (cancel.cancelled, cancel.cancel_requested) == (2, 1)
    assert client.get_job(answer.job_id).status == "running"  # the held part has not stopped yet
    q.finish_cancelled_many(sql, worker_id=holder, held=[(claimed.id, claimed.attempt)])
    detail = client.get_job(answer.job_id, wait=5)
    assert detail.status == "cancelled" and detail.cancel_requested_at is not None
    assert sorted((f.part, f.status) for f in detail.failures) == [(0, "cancelled"), (1, "cancelled"), (2, "cancelled")]
    again = client.cancel_job(answer.job_id)
    assert (again.cancelled, again.cancel_requested) == (0, 0) and "already finished" in again.message
    assert check(sql).ok, check(sql).violations


def test_a_failing_pub_is_reported_and_the_others_results_are_kept(api, client, sql, module_db):  # noqa: F811
    queue = idle_queue()
    answer = client.submit_job({"kind": "estimate", "queue": queue, "max_attempts": 1, "pubs": [
        {"qc": ANSATZ, "parameter_values": [0.1, 0.2], "observables": "ZZ"},
        {"qc": ANSATZ, "parameter_values": [[0.3, 0.4], [0.5, 0.6]], "observables": ["ZZ", "XX"]}]})
    holder = uuid.uuid4()
    [first] = q.claim(sql, worker_id=holder, queues=[queue], limit=1, lease_s=60)
    q.fail_many(sql, worker_id=holder, failed=[q.Failure(id=first.id, attempt=first.attempt, retry_delay_s=None,
                                                          error={"type": "SimulationError", "message": "it broke",
                                                                 "retryable": False})])
    worker = WorkerProcess(module_db, "--concurrency", "1", "--queue", queue)
    try:
        detail = client.wait_job(answer.job_id, timeout=120)
    finally:
        worker.kill_all()
        worker.log.close()
    assert detail.status == "failed" and "1 of 2 tasks failed" in detail.message
    assert [(f.pub, f.error["message"]) for f in detail.failures] == [(0, "it broke")]
    assert detail.results is not None and detail.results[0] is None
    assert detail.results[1].shape == [2] and len(detail.results[1].data["evs"]) == 2
    assert check(sql).ok, check(sql).violations


def test_a_job_resubmitted_with_its_idempotency_key_is_the_same_job(api, client, sql):  # noqa: F811
    body = {"kind": "estimate", "queue": idle_queue(), "pubs": [{"qc": ANSATZ, "parameter_values": [1, 2],
                                                                  "observables": "ZZ"}]}
    key = f"job-{uuid.uuid4()}"
    first = api.client.post("/jobs", json=body, headers={"Idempotency-Key": key})
    before = rows(sql)
    again = api.client.post("/jobs", json=body, headers={"Idempotency-Key": key})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["job_id"] == again.json()["job_id"]
    other = api.client.post("/jobs", json={**body, "precision": 0.1}, headers={"Idempotency-Key": key})
    assert_error(other, 409, contains="Idempotency-Key")
    assert rows(sql) == before
    # The client sends a key of its own with every job: a retried submit is answered from it.
    made = client.submit_job(body, idempotency_key=key)
    assert str(made.job_id) == first.json()["job_id"]


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"kind": "nope", "pubs": [{"qc": ANSATZ}]}, 400, "kind"),
    ({"kind": "estimate", "pubs": []}, 400, "pubs"),
    ({"kind": "estimate", "pubs": [{"qc": ANSATZ, "parameter_values": [1, 2]}]}, 422,
     "pubs[0]: estimate needs observables"),
    ({"kind": "estimate", "pubs": [{"qc": ANSATZ, "parameter_values": [1, 2], "observables": "ZZ"},
                                   {"qc": ANSATZ, "parameter_values": [1], "observables": "ZZ"}]}, 422,
     "pubs[1]: the last axis of parameter_values has 1 values, but the circuit has 2 parameters"),
    ({"kind": "estimate", "pubs": [{"qc": ANSATZ, "parameter_values": {"a": 1, "b": 2, "theta": 3},
                                    "observables": "ZZ"}]}, 422, "no parameter theta"),
    ({"kind": "estimate", "pubs": [{"qc": ANSATZ, "parameter_values": [1, 2], "observables": "ZZZ"}]}, 422,
     "acts on 3 qubits, but the circuit has 2"),
    ({"kind": "estimate", "pubs": [{"qc": ANSATZ, "parameter_values": [1, 2], "observables": {"ZA": 1}}]}, 422,
     "not a Pauli string"),
    # 1e999 is valid JSON but no double: refused by intake, which decodes a PUB's inputs.
    ('{"kind": "estimate", "pubs": [{"qc": "qubit q;", "parameter_values": [1, 1e999], "observables": "Z"}]}', 422,
     "Number out of range"),
    # NaN has no JSON spelling; clients that encode it write null.
    ({"kind": "estimate", "pubs": [{"qc": ANSATZ, "parameter_values": [1, None], "observables": "ZZ"}]}, 422,
     "numbers only"),
    ({"kind": "estimate", "pubs": [{"qc": ANSATZ, "parameter_values": [[1, 2]] * 200_001, "observables": "ZZ"}]},
     422, "parameter sets in one PUB"),
    ({"kind": "estimate", "chunk_size": 1, "pubs": [{"qc": ANSATZ, "parameter_values": [[1, 2]] * 10_001,
                                                     "observables": "ZZ"}]}, 422, "the limit is 10000"),
    ({"kind": "sample", "pubs": [{"qc": ANSATZ + "bit[2] c;\nc = measure q;\n", "parameter_values": [1, 2],
                                  "precision": 0.1}]}, 422, "does not take precision"),
    ({"kind": "estimate", "pubs": [{"qc": ANSATZ, "parameter_values": [1, 2], "observables": "ZZ", "shots": 5}]},
     422, "pubs[0]: an estimate PUB takes a precision, not shots"),
    ({"kind": "sample", "pubs": [{"qc": ANSATZ, "parameter_values": [1, 2]}]}, 422, "measures nothing"),
    ({"kind": "estimate", "shots": 5, "pubs": [{"qc": ANSATZ, "parameter_values": [1, 2], "observables": "ZZ"}]},
     422, "an estimate job takes a precision, not shots"),
    ({"kind": "sample", "precision": 0.1, "pubs": [{"qc": ANSATZ + "bit[2] c;\nc = measure q;\n",
                                                    "parameter_values": [1, 2]}]}, 422, "takes shots, not a precision"),
    # Each PUB's results fit (about 60 MiB of counts and per-shot bitstrings), five of them together do not.
    ({"kind": "sample", "shots": 10_000, "options": {"memory": True}, "pubs": [
        {"qc": 'OPENQASM 3.0; include "stdgates.inc"; input float a; qubit[10] q; bit[10] c; rx(a) q[0]; '
               'c = measure q;', "parameter_values": [[0.1]] * 400}] * 5}, 422, "the job's results could reach"),
])
def test_bad_jobs_are_refused_precisely_and_write_nothing(api, sql, body, status, words):  # noqa: F811
    before = rows(sql)
    if isinstance(body, str):
        response = api.client.post("/jobs", content=body, headers={"content-type": "application/json"})
    else:
        response = api.client.post("/jobs", json=body)
    error = assert_error(response, status)
    assert words in error["message"], error
    assert rows(sql) == before


def test_jobs_are_listed_with_filters_and_paged(api, client):  # noqa: F811
    tag = f"tag-{uuid.uuid4().hex[:8]}"
    made = [client.submit_job({"kind": "estimate", "queue": idle_queue(), "tags": [tag], "pubs": [
        {"qc": ANSATZ, "parameter_values": [1, 2], "observables": "ZZ"}]}).job_id for _ in range(3)]
    first = client.list_jobs(tags=[tag], limit=2)
    rest = client.list_jobs(tags=[tag], limit=2, cursor=first.next_cursor)
    assert [j.job_id for j in first.items + rest.items] == made[::-1] and rest.next_cursor is None
    assert {j.status for j in first.items} == {"pending"}
    assert client.list_jobs(tags=[tag], status=["completed"]).items == []
    missing = api.client.get(f"/jobs/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json() == {"status": "error", "message": "Job not found."}


def test_simulate_sweeps_and_exact_outputs_over_http(api, client, workers, sql):  # noqa: F811
    measured = ANSATZ + "bit[2] c;\nc = measure q;\n"
    sweep = client.submit(measured, shots=100, parameter_values=[[0, 0], [np.pi, 0]], options={"seed": 3})
    exact = client.submit(measured, shots=0, outputs=["probabilities"], parameter_values={"a": np.pi / 2, "b": 0})
    swept = client.wait(sweep.task_id, timeout=60).result
    assert swept["shape"] == [2] and swept["counts"] == [{"00": 100}, {"11": 100}]
    probabilities = client.wait(exact.task_id, timeout=60).result["probabilities"]
    assert probabilities == pytest.approx({"00": 0.5, "11": 0.5})
    assert check(sql).ok, check(sql).violations


def test_a_variational_loop_reaches_the_ground_state_energy(client, workers):
    hamiltonian = SparsePauliOp.from_list([("ZZ", 1.0), ("XI", 0.4), ("IX", 0.4), ("YY", -0.3)])
    exact = float(np.linalg.eigvalsh(hamiltonian.to_matrix()).min())
    circuit = hea(2, 2)
    estimator = EstimatorV2(client=client)

    def energy(x: np.ndarray) -> float:
        return float(estimator.run([(circuit, hamiltonian, x)]).result()[0].data.evs)

    found = minimize(energy, np.full(circuit.num_parameters, 0.3), method="COBYLA",
                     options={"maxiter": 300, "rhobeg": 0.5, "tol": 1e-6})
    assert abs(found.fun - exact) < 1e-3, (found.fun, exact, found.nfev)


def test_the_circuit_travels_as_openqasm_3_with_custom_gates(client, workers):
    inner = QuantumCircuit(2, name="entangle")
    inner.h(0)
    inner.cx(0, 1)
    circuit = QuantumCircuit(2)
    circuit.append(inner.to_gate(), [0, 1])
    assert "gate entangle" in circuit_source(circuit)
    evs = EstimatorV2(client=client).run([(circuit, ["ZZ", "XX", "ZI"])]).result()[0].data.evs
    np.testing.assert_allclose(evs, [1.0, 1.0, 0.0], atol=1e-12)


def test_numpy_values_travel_as_they_are(client, workers):
    task = client.submit(ANSATZ + "bit[2] c;\nc = measure q;\n", shots=20, parameter_values=np.array([[np.pi, 0.0]]),
                         options={"seed": np.int64(4)})
    assert client.wait(task.task_id, timeout=60).result["counts"] == [{"11": 20}]
