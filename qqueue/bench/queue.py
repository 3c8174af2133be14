"""`qqueue bench queue`: enqueue and drain no-op tasks through real worker processes.

Figures, all measured in one run on a queue of its own (removed afterwards):
- enqueue tasks/s: batched `enqueue_many` of 1,000 tasks per statement;
- drain tasks/s: tasks / (last finish - first start) as the database recorded them, so worker start-up
  is not counted;
- pickup latency p50/p95: single tasks enqueued one at a time on an idle queue, from the row's created_at
  to the moment a slot started running it.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from datetime import datetime
from typing import Any

from qqueue import db, migrate
from qqueue import queue as q
from qqueue.bench import harness
from qqueue.tasks import TaskSpec

ENQUEUE_CHUNK = 1000


def run_queue_bench(url: str, *, tasks: int, workers: int, concurrency: int, pickups: int,
                    finished_rows: int = 0) -> dict[str, Any]:
    """Run the benchmark and return its figures (see the module docstring).

    With `finished_rows`, that many completed tasks of another queue are written first (and removed after),
    to compare drain rates of a table full of history with an empty one.
    """
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    history = f"{queue}-history"
    figures: dict[str, Any] = {"tasks": tasks, "workers": workers, "concurrency": concurrency,
                               "finished_rows": finished_rows}
    with db.connection(url) as conn, tempfile.TemporaryFile() as log:
        migrate.check_current(conn)
        try:
            if finished_rows:
                with db.connection(url, statement_timeout_s=3600) as filler:
                    db.run(filler, "bench_fill_finished", queue=history, count=finished_rows)
                    filler.execute("ANALYZE qqueue.tasks")
            specs = [TaskSpec(kind="noop", queue=queue) for _ in range(tasks)]
            started = time.perf_counter()
            for i in range(0, tasks, ENQUEUE_CHUNK):
                q.enqueue_many(conn, specs[i : i + ENQUEUE_CHUNK])
            figures["enqueue_tasks_per_s"] = round(tasks / (time.perf_counter() - started))

            procs = harness.start_workers(url, queue, count=workers, concurrency=concurrency, log=log)
            try:
                figures["drain_tasks_per_s"] = round(harness.drain_rate(conn, queue, tasks=tasks, procs=procs))
                figures.update(_pickup_latency(conn, queue, pickups))
            finally:
                harness.stop(procs)
        finally:
            with db.connection(url, statement_timeout_s=3600) as cleaner:
                for name in (queue, history):
                    db.run(cleaner, "bench_delete_queue", queue=name)
    return figures


def _pickup_latency(conn: Any, queue: str, samples: int) -> dict[str, float]:
    latencies = []
    for _ in range(samples):
        task_id = q.enqueue(conn, TaskSpec(kind="noop", queue=queue)).id
        harness.wait_for(lambda: q.get(conn, task_id)["status"] == "completed", timeout_s=30, what="a single task")
        row = q.get(conn, task_id)
        slot_start = datetime.fromisoformat(row["timings"]["slot_started_at"])
        latencies.append((slot_start - row["created_at"]).total_seconds() * 1000)
        time.sleep(0.01)  # the queue is idle again before the next sample
    return {
        "pickup_p50_ms": round(harness.quantile(latencies, 0.5), 2),
        "pickup_p95_ms": round(harness.quantile(latencies, 0.95), 2),
    }
