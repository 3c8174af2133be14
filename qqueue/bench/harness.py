"""What the benchmarks share: worker processes on a private queue, waiting with a deadline, drain rates taken
from the database's own timestamps, percentiles, and the CPU time of each class of process (read from /proc)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from qqueue.errors import QQueueError
from qqueue.store import db


def quantile(values: Sequence[float], fraction: float) -> float:
    """The value at `fraction` (0..1) of the sorted values; the median for 0.5."""
    if fraction == 0.5:
        return statistics.median(values)
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def child_env() -> dict[str, str]:
    """This process's environment for a child given its database explicitly."""
    return {k: v for k, v in os.environ.items() if k != "QQUEUE_DATABASE_URL"}


def start_workers(url: str, queue: str | None, *, count: int, concurrency: int, log: IO[bytes],
                  extra: Sequence[str] = ()) -> list[subprocess.Popen[bytes]]:
    """`count` real `qqueue worker` processes with `concurrency` slots each, on `queue` (default queue: None)."""
    args = ["--database-url", url, "--concurrency", str(concurrency), "--log-level", "WARNING", *extra]
    if queue is not None:
        args += ["--queue", queue]
    return [subprocess.Popen([sys.executable, "-m", "qqueue", "worker", *args], env=child_env(), stdout=log,
                             stderr=log) for _ in range(count)]


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process, then wait for each (workers hand back what they hold)."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(60)


def wait_for(predicate: Callable[[], Any], *, timeout_s: float, what: str, interval_s: float = 0.01) -> None:
    """Poll `predicate` until it is truthy; give up with a clear error at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise QQueueError(f"the benchmark gave up waiting for {what}")
        time.sleep(interval_s)


def drain_rate(conn: Any, queue: str, *, tasks: int, procs: Sequence[subprocess.Popen[bytes]]) -> float:
    """Wait until `queue` is drained; tasks per second between its first start and its last finish."""

    def drained() -> bool:
        if all(p.poll() is not None for p in procs):
            raise QQueueError("every worker exited before the queue was drained")
        return db.run(conn, "bench_unfinished_count", queue=queue)["unfinished"] == 0

    wait_for(drained, timeout_s=600, what="the queue to drain", interval_s=0.05)
    window = db.run(conn, "bench_window", queue=queue)
    if window["completed"] != tasks:
        raise QQueueError(f"only {window['completed']} of {tasks} tasks completed")
    return tasks / max((window["last_finish"] - window["first_start"]).total_seconds(), 1e-9)


def drain_with_cpu(conn: Any, queue: str, *, tasks: int,
                   procs: Sequence[subprocess.Popen[bytes]]) -> tuple[float, dict[str, float]]:
    """`drain_rate`, and the CPU seconds per 1,000 tasks each process class spent on the drain.

    CPU is counted from the first completion of every worker (their start-up, the forkserver's imports above all,
    is not the drain's cost) to the last completion, per task completed in between.
    """
    def every_worker_done() -> bool:
        if int(db.run(conn, "bench_workers_done", queue=queue)["workers"]) >= len(procs):
            return True
        if db.run(conn, "bench_unfinished_count", queue=queue)["unfinished"] == 0:
            # The first workers up drained it all: there is no drain left to count the others' CPU over.
            raise QQueueError(f"all {tasks} tasks were drained before every one of the {len(procs)} workers had "
                              "run one; give more --tasks")
        return False

    wait_for(every_worker_done, timeout_s=120, what="the workers", interval_s=0.05)
    before = cpu_snapshot(conn, procs)
    done_before = int(db.run(conn, "bench_window", queue=queue)["completed"])
    rate = drain_rate(conn, queue, tasks=tasks, procs=procs)
    return rate, cpu_per_1000(before, cpu_snapshot(conn, procs), max(1, tasks - done_before))


#: The process classes CPU time is counted for: the workers' supervisors, their slot processes (and the
#: forkserver they are forked from), and the PostgreSQL backends serving the workers' connections.
CPU_CLASSES = ("supervisor", "slots", "postgres")


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name, in parentheses, may hold spaces: the fields are counted after its end.
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(roots: Sequence[int]) -> list[int]:
    """Every process below `roots` (children, their children, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    out, stack = [], list(roots)
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def cpu_snapshot(conn: Any, procs: Sequence[subprocess.Popen[bytes]]) -> dict[str, dict[int, float]]:
    """CPU seconds so far of every process of each class, by pid. PostgreSQL backends are found by the
    application name workers connect with; the server must run on this machine (/proc is read)."""
    roots = [p.pid for p in procs]
    backends = [r["pid"] for r in db.run(conn, "bench_worker_backends")]
    return {"supervisor": {pid: _cpu_s(pid) for pid in roots},
            "slots": {pid: _cpu_s(pid) for pid in _descendants(roots)},
            "postgres": {pid: _cpu_s(pid) for pid in backends}}


def cpu_per_1000(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]],
                 tasks: int) -> dict[str, float]:
    """CPU seconds each class spent per 1,000 tasks between two snapshots (a process that appeared in
    between counts from 0)."""
    out = {}
    for name in CPU_CLASSES:
        spent = sum(cpu - before[name].get(pid, 0.0) for pid, cpu in after[name].items())
        out[name] = round(spent * 1000 / tasks, 4)
    return out
