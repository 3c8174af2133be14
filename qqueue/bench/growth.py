"""`qqueue bench growth`: does the table stay flat under steady load once retention applies?

No-op tasks are enqueued at a steady rate on a private queue while a worker drains them and purges finished
tasks older than `retention_s` (the worker's periodic purge, as in production). The size of qqueue.tasks and
qqueue.task_events (heap, indexes, TOAST) is sampled every `sample_s`. Once the first tasks are older than the
retention, the size should level off: autovacuum lets new rows reuse the space purged rows left.

The purge is the worker's own and so applies to every finished task of the database older than the retention:
run this on a database of its own (the embedded one by default).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from typing import Any

from qqueue.bench import harness
from qqueue.store import db, migrate
from qqueue.store import queue as q
from qqueue.tasks import TaskSpec

BATCH_EVERY_S = 0.1
#: After the retention age: one purge interval plus two autovacuum naptimes.
SETTLE_S = 180.0


def run_growth_bench(url: str, *, minutes: float, rate: float, retention_s: float,
                     sample_s: float = 15.0) -> dict[str, Any]:
    """Run the steady load and return the size samples and the growth after retention began to apply."""
    queue = f"bench-growth-{uuid.uuid4().hex[:8]}"
    per_batch = max(1, round(rate * BATCH_EVERY_S))
    samples: list[dict[str, float]] = []
    with db.connection(url) as conn, tempfile.TemporaryFile() as log:
        migrate.check_current(conn)
        procs = harness.start_workers(url, queue, count=1, concurrency=1, log=log,
                                      extra=["--retention", f"{retention_s:g}"])
        started = time.monotonic()
        next_sample = started
        try:
            while (elapsed := time.monotonic() - started) < minutes * 60:
                q.enqueue_many(conn, [TaskSpec(kind="noop", queue=queue)] * per_batch)
                if time.monotonic() >= next_sample:
                    size = db.run(conn, "bench_table_bytes")
                    samples.append({"at_s": round(elapsed), "tasks_mib": round(size["tasks"] / 2**20, 2),
                                    "events_mib": round(size["events"] / 2**20, 2), "rows": size["rows"]})
                    next_sample += sample_s
                time.sleep(max(0.0, BATCH_EVERY_S - (time.monotonic() - started - elapsed)))
        finally:
            harness.stop(procs)
            db.run(conn, "bench_delete_queue", queue=queue)
    # Retention applies from `retention_s` on; the worker purges once a minute, and autovacuum (one-minute naptime)
    # needs a pass or two before new rows reuse the purged space: the size can settle only after all of that.
    settled = [s for s in samples if s["at_s"] >= retention_s + SETTLE_S]
    total = [s["tasks_mib"] + s["events_mib"] for s in settled]
    return {
        "minutes": minutes, "rate": rate, "retention_s": retention_s, "samples": samples,
        "settled_from_s": retention_s + SETTLE_S,
        "settled_first_mib": round(total[0], 2) if total else None,
        "settled_last_mib": round(total[-1], 2) if total else None,
        "settled_max_mib": round(max(total), 2) if total else None,
        "growth_after_settling": round(total[-1] / total[0] - 1, 3) if total else None,
    }
