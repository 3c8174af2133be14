"""`qqueue bench queue`: enqueue and drain no-op tasks through real worker processes.

Figures, all measured in one run on a queue of its own (removed afterwards):
- enqueue tasks/s: batched `enqueue_many` of 1,000 tasks per statement;
- drain tasks/s: tasks / (last finish - first start) as the database recorded them, so worker start-up
  is not counted;
- CPU seconds per 1,000 tasks of the drain, per process class (supervisors, slots, PostgreSQL backends);
- pickup latency p50/p95: single tasks enqueued one at a time on an idle queue, from the row's created_at
  to the moment a slot started running it;
- with `--finished-rows N`: the drain rate on the table as it is, then again after N finished tasks were
  written into it (median of `rounds` drains each, fresh workers and a fresh queue per drain), and their ratio,
  so the claim's indifference to history is measured in one run rather than compared across runs.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from datetime import datetime
from functools import partial
from typing import Any

from qqueue.bench import harness
from qqueue.store import db, migrate
from qqueue.store import queue as q
from qqueue.tasks import TaskSpec

ENQUEUE_CHUNK = 1000


def run_queue_bench(url: str, *, tasks: int, workers: int, concurrency: int, pickups: int,
                    finished_rows: int = 0, rounds: int = 3) -> dict[str, Any]:
    """Run the benchmark and return its figures (see the module docstring)."""
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    history = f"{queue}-history"
    figures: dict[str, Any] = {"tasks": tasks, "workers": workers, "concurrency": concurrency,
                               "finished_rows": finished_rows}
    with db.connection(url) as conn, tempfile.TemporaryFile() as log:
        migrate.check_current(conn)

        def drain(name: str) -> float:
            _enqueue_noops(conn, name, tasks)
            # Every drain starts on a freshly vacuumed table whose statistics count the tasks just queued, as
            # autovacuum would leave it: no round inherits the dead rows of the one before, and no plan is made
            # for a table the statistics still call empty (on a server without autovacuum, both would skew it).
            with db.connection(url, statement_timeout_s=3600) as vacuumer:
                db.run(vacuumer, "bench_vacuum_analyze")
            procs = harness.start_workers(url, name, count=workers, concurrency=concurrency, log=log)
            try:
                return harness.drain_rate(conn, name, tasks=tasks, procs=procs)
            finally:
                harness.stop(procs)
                db.run(conn, "bench_delete_queue", queue=name)

        try:
            if finished_rows:
                drain(f"{queue}-warmup")  # not counted: the first drain pays for cold caches and plans
                empty = [drain(f"{queue}-empty-{r}") for r in range(rounds)]
                with db.connection(url, statement_timeout_s=3600) as filler:
                    db.run(filler, "bench_fill_finished", queue=history, count=finished_rows)
                    db.run(filler, "bench_vacuum_analyze")
                full = [drain(f"{queue}-full-{r}") for r in range(rounds)]
                median_empty, median_full = harness.quantile(empty, 0.5), harness.quantile(full, 0.5)
                figures["drain_empty_tasks_per_s"] = round(median_empty)
                figures["drain_full_tasks_per_s"] = round(median_full)
                figures["drain_rounds"] = {"empty": [round(r) for r in empty], "full": [round(r) for r in full]}
                figures["full_vs_empty"] = round(median_full / median_empty, 3)
            started = time.perf_counter()
            _enqueue_noops(conn, queue, tasks)
            figures["enqueue_tasks_per_s"] = round(tasks / (time.perf_counter() - started))
            # As in `drain`: the dead rows of earlier runs vacuumed away first, as autovacuum would have done
            # (on a server without it, every run would otherwise claim through all the runs before it).
            with db.connection(url, statement_timeout_s=3600) as vacuumer:
                db.run(vacuumer, "bench_vacuum_analyze")

            procs = harness.start_workers(url, queue, count=workers, concurrency=concurrency, log=log)
            try:
                rate, figures["cpu_s_per_1000_tasks"] = harness.drain_with_cpu(conn, queue, tasks=tasks, procs=procs)
                figures["drain_tasks_per_s"] = round(rate)
                # Pickups on an idle queue whose statistics know it is idle again (autovacuum's analyse would).
                with db.connection(url, statement_timeout_s=3600) as vacuumer:
                    db.run(vacuumer, "bench_vacuum_analyze")
                figures.update(_pickup_latency(conn, queue, pickups))
            finally:
                harness.stop(procs)
        finally:
            with db.connection(url, statement_timeout_s=3600) as cleaner:
                for name in (queue, history):
                    db.run(cleaner, "bench_delete_queue", queue=name)
    return figures


def _enqueue_noops(conn: Any, queue: str, count: int) -> None:
    """Queue `count` no-op tasks, `ENQUEUE_CHUNK` per statement."""
    for i in range(0, count, ENQUEUE_CHUNK):
        q.enqueue_many(conn, [TaskSpec(kind="noop", queue=queue)] * min(ENQUEUE_CHUNK, count - i))


def _pickup_latency(conn: Any, queue: str, samples: int) -> dict[str, float]:
    latencies = []
    for _ in range(samples):
        task_id = q.enqueue(conn, TaskSpec(kind="noop", queue=queue)).id
        harness.wait_for(partial(_completed, conn, task_id), timeout_s=30, what="a single task")
        row = q.get(conn, task_id)
        slot_start = datetime.fromisoformat(row["timings"]["slot_started_at"])
        latencies.append((slot_start - row["created_at"]).total_seconds() * 1000)
        time.sleep(0.01)  # the queue is idle again before the next sample
    return {
        "pickup_p50_ms": round(harness.quantile(latencies, 0.5), 2),
        "pickup_p95_ms": round(harness.quantile(latencies, 0.95), 2),
    }


def _completed(conn: Any, task_id: Any) -> bool:
    return bool(q.get(conn, task_id)["status"] == "completed")
