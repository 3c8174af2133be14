"""`qqueue bench queue`: enqueue and drain no-op tasks through real worker processes.

Figures, all measured in one run on a queue of its own (removed afterwards):
- enqueue tasks/s: batched `enqueue_many` of 1,000 tasks per statement;
- drain tasks/s: tasks / (last finish - first start) as the database recorded them, so worker start-up
  is not counted;
- pickup latency p50/p95: single tasks enqueued one at a time on an idle queue, from the row's created_at
  to the moment a slot started running it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from typing import Any

from qqueue import db, migrate
from qqueue import queue as q
from qqueue.errors import QQueueError
from qqueue.tasks import TaskSpec

ENQUEUE_CHUNK = 1000


def _quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _workers(url: str, queue: str, count: int, concurrency: int, log: Any) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ}
    env.pop("QQUEUE_DATABASE_URL", None)
    return [
        subprocess.Popen(
            [sys.executable, "-m", "qqueue", "worker", "--database-url", url, "--queue", queue,
             "--concurrency", str(concurrency), "--log-level", "WARNING"],
            env=env, stdout=log, stderr=log,
        )
        for _ in range(count)
    ]


def _wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise QQueueError(f"benchmark gave up waiting for {what}")
        time.sleep(0.01)


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

            procs = _workers(url, queue, workers, concurrency, log)
            try:
                _wait_for(lambda: db.run(conn, "bench_unfinished_count", queue=queue)["unfinished"] == 0, 600,
                          "the drain")
                window = db.run(conn, "bench_window", queue=queue)
                if window["completed"] != tasks:
                    raise QQueueError(f"only {window['completed']} of {tasks} tasks completed")
                elapsed = (window["last_finish"] - window["first_start"]).total_seconds()
                figures["drain_tasks_per_s"] = round(tasks / max(elapsed, 1e-9))
                figures.update(_pickup_latency(conn, queue, pickups))
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait(60)
        finally:
            with db.connection(url, statement_timeout_s=3600) as cleaner:
                for name in (queue, history):
                    db.run(cleaner, "bench_delete_queue", queue=name)
    return figures


def _pickup_latency(conn: Any, queue: str, samples: int) -> dict[str, float]:
    latencies = []
    for _ in range(samples):
        task_id = q.enqueue(conn, TaskSpec(kind="noop", queue=queue)).id
        _wait_for(lambda: q.get(conn, task_id)["status"] == "completed", 30, "a single task")
        row = q.get(conn, task_id)
        slot_start = datetime.fromisoformat(row["timings"]["slot_started_at"])
        latencies.append((slot_start - row["created_at"]).total_seconds() * 1000)
        time.sleep(0.01)  # the queue is idle again before the next sample
    return {
        "pickup_p50_ms": round(statistics.median(latencies), 2),
        "pickup_p95_ms": round(_quantile(latencies, 0.95), 2),
    }
