"""`qqueue bench circuits`: what a Bell circuit costs in-process, and how close the queue comes to it.

- in-process limit: the `simulate` kind called in a loop on one core with the payload intake prepared
  (parse + simulate), as circuits/s; times `concurrency` is what `concurrency` slots could do at best;
- end to end: unseeded Bell tasks (so none is answered from the cache) enqueued, then drained by one real
  worker with `concurrency` slots; tasks / (last finish - first start) from the database's own timestamps;
- ratio: end to end / (in-process limit x concurrency);
- CPU per task of the drain, per process class (supervisor, slots, PostgreSQL backends), beside the simulator
  call's own time, and the share of the simulator's time that everything outside that call costs.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from typing import Any

from qqueue.bench import harness
from qqueue.execution.quantum import simulate
from qqueue.intake import prepare
from qqueue.store import db, migrate
from qqueue.store import queue as q
from qqueue.tasks import TaskSpec

BELL = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n'


def in_process_bell(n: int = 300, shots: int = 1024) -> dict[str, float]:
    """Median cost of one Bell circuit through the `simulate` kind in this process, and its parse share."""
    payload = prepare(BELL, shots=shots).payload
    for _ in range(20):  # warm the simulator and the parser
        simulate(payload)
    costs, parses = [], []
    for _ in range(n):
        started = time.perf_counter()
        result = simulate(payload)
        costs.append(time.perf_counter() - started)
        parses.append(result["timings"]["parse_s"])
    median = harness.quantile(costs, 0.5)
    return {"in_process_ms": round(median * 1000, 3),
            "in_process_parse_ms": round(harness.quantile(parses, 0.5) * 1000, 3),
            "in_process_circuits_per_s": round(1 / median)}


def run_circuits_bench(url: str, *, tasks: int, concurrency: int, shots: int = 1024) -> dict[str, Any]:
    """Run both measurements in one go and return the figures (see the module docstring)."""
    figures: dict[str, Any] = {"tasks": tasks, "concurrency": concurrency, "shots": shots}
    figures.update(in_process_bell(shots=shots))
    queue = f"bench-circuits-{uuid.uuid4().hex[:8]}"
    prepared = prepare(BELL, shots=shots)
    spec = TaskSpec(kind="simulate", queue=queue, payload=prepared.payload, profile=prepared.profile)
    with db.connection(url) as conn, tempfile.TemporaryFile() as log:
        migrate.check_current(conn)
        try:
            for i in range(0, tasks, 1000):
                q.enqueue_many(conn, [spec] * min(1000, tasks - i))
            procs = harness.start_workers(url, queue, count=1, concurrency=concurrency, log=log)
            try:
                end_to_end, cpu = harness.drain_with_cpu(conn, queue, tasks=tasks, procs=procs)
            finally:
                harness.stop(procs)
            simulator_s = float(db.run(conn, "bench_simulator_time", queue=queue)["simulate_s"])
        finally:
            db.run(conn, "bench_delete_queue", queue=queue)
    figures["end_to_end_tasks_per_s"] = round(end_to_end)
    figures["limit_tasks_per_s"] = figures["in_process_circuits_per_s"] * concurrency
    figures["ratio"] = round(end_to_end / figures["limit_tasks_per_s"], 3)
    figures.update(_cpu_outside_simulator(cpu, simulator_s))
    return figures


def _cpu_outside_simulator(cpu_s_per_1000: dict[str, float], simulator_s: float) -> dict[str, Any]:
    """Per task: each class's CPU, the simulator call's own time, and what the rest costs beside it.

    CPU seconds per 1,000 tasks are milliseconds per task. The simulator call's CPU is what the `simulate` kind
    timed in the slot around it; what a slot spends besides (parsing, its loop, the pipe) counts as outside,
    with the supervisor's and PostgreSQL's.
    """
    simulator_ms = simulator_s * 1000
    outside_ms = sum(cpu_s_per_1000.values()) - simulator_ms
    return {"cpu_ms_per_task": cpu_s_per_1000,
            "simulator_ms_per_task": round(simulator_ms, 4),
            "outside_simulator_ms_per_task": round(outside_ms, 4),
            "outside_share_of_simulator": round(outside_ms / simulator_ms, 3) if simulator_ms > 0 else None}
