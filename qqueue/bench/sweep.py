"""`qqueue bench sweep`: an estimator job of one hardware-efficient ansatz over many parameter sets, in-process
with Aer's EstimatorV2 (the limit) and through qqueue with one worker and with two.

- in-process: `EstimatorV2().run([(ansatz, observable, values)])` on this process, median of a few runs;
- through qqueue: the PUB goes through intake (split into `chunk_size` sets per task), the job and its tasks
  are queued in one transaction, and real workers (one slot each) drain it; sets / (last finish - first start),
  from the database's own timestamps. Both rates are measured in the same run, side by side.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from typing import Any

import numpy as np

from qqueue import jobs
from qqueue.bench import harness
from qqueue.intake import prepare
from qqueue.store import db, migrate
from qqueue.store import queue as q
from qqueue.tasks import TaskSpec, new_task_id


def ansatz(qubits: int, layers: int) -> Any:
    """A hardware-efficient ansatz: RY and RZ on every qubit, then a CX chain, `layers` times."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    theta = ParameterVector("θ", 2 * qubits * layers)
    circuit = QuantumCircuit(qubits)
    k = 0
    for _ in range(layers):
        for i in range(qubits):
            circuit.ry(theta[k], i)
            circuit.rz(theta[k + 1], i)
            k += 2
        for i in range(qubits - 1):
            circuit.cx(i, i + 1)
    return circuit


def observable(qubits: int) -> dict[str, float]:
    """Four Pauli terms on `qubits` qubits."""
    return {"Z" * qubits: 1.0, "X" + "I" * (qubits - 1): 0.5, "I" * (qubits - 2) + "YY": -0.25,
            "ZI" * (qubits // 2) + "Z" * (qubits % 2): 0.125}


def run_sweep_bench(url: str, *, sets: int = 1000, qubits: int = 8, layers: int = 3, chunk_size: int = 250,
                    rounds: int = 3) -> dict[str, Any]:
    """Run the in-process limit and the queue with one and two workers, interleaved `rounds` times; medians."""
    from qiskit_aer.primitives import EstimatorV2

    from qqueue.client.primitives import circuit_source

    circuit = ansatz(qubits, layers)
    obs = observable(qubits)
    values = np.random.default_rng(1).uniform(-np.pi, np.pi, size=(sets, circuit.num_parameters))
    source = circuit_source(circuit)
    figures: dict[str, Any] = {"sets": sets, "qubits": qubits, "parameters": circuit.num_parameters,
                               "terms": len(obs), "chunk_size": chunk_size, "rounds": rounds}
    EstimatorV2().run([(circuit, obs, values[:10])]).result()  # warm Aer
    rates: dict[str, list[float]] = {"in_process": [], "one_worker": [], "two_workers": []}
    with db.connection(url) as conn, tempfile.TemporaryFile() as log:
        migrate.check_current(conn)
        for _ in range(rounds):
            started = time.perf_counter()
            EstimatorV2().run([(circuit, obs, values)]).result()
            rates["in_process"].append(sets / (time.perf_counter() - started))
            for name, workers in (("one_worker", 1), ("two_workers", 2)):
                rates[name].append(_through_queue(conn, url, source, obs, values, chunk_size, workers, log))
    for name, found in rates.items():
        figures[f"{name}_sets_per_s"] = round(statistics.median(found), 1)
        figures[f"{name}_rounds"] = [round(r, 1) for r in found]
    figures["one_worker_ratio"] = round(figures["one_worker_sets_per_s"] / figures["in_process_sets_per_s"], 3)
    figures["two_workers_speedup"] = round(figures["two_workers_sets_per_s"] / figures["one_worker_sets_per_s"], 3)
    return figures


def _through_queue(conn: Any, url: str, source: str, obs: dict[str, float], values: np.ndarray, chunk_size: int,
                   workers: int, log: Any) -> float:
    queue = f"bench-sweep-{uuid.uuid4().hex[:8]}"
    procs = harness.start_workers(url, queue, count=workers, concurrency=1, log=log)
    try:
        # Warm slots, as a running fleet's are: each worker runs one small part of the same circuit first (its
        # first import of the OpenQASM 3 importer and of Aer's primitives is not what a sweep costs).
        warm = _queue_job(conn, queue, source, obs, values[: 2 * workers], 2)
        harness.drain_rate(conn, queue, tasks=warm, procs=procs)
        db.run(conn, "bench_delete_queue", queue=queue)
        tasks = _queue_job(conn, queue, source, obs, values, chunk_size)
        tasks_per_s = harness.drain_rate(conn, queue, tasks=tasks, procs=procs)
    finally:
        harness.stop(procs)
        db.run(conn, "bench_delete_queue", queue=queue)
    return tasks_per_s * len(values) / tasks


def _queue_job(conn: Any, queue: str, source: str, obs: dict[str, float], values: np.ndarray, chunk_size: int) -> int:
    """Intake of the PUB, then its job and tasks in one transaction; the number of tasks."""
    prepared = prepare(source, kind="estimate", parameter_values=values.tolist(), observables=obs,
                       chunk_size=chunk_size)
    plan = jobs.plan(new_task_id(), "estimate", [prepared], TaskSpec(kind="estimate", queue=queue))
    with conn.transaction():
        db.run(conn, "job_insert", **jobs.row(plan, kind="estimate", queue=queue, tenant=None))
        q.enqueue_many(conn, plan.tasks)
    return len(plan.tasks)
