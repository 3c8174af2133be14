"""`qqueue bench http`: Bell circuits submitted over HTTP, then waited for with long-polls.

It starts its own `qqueue serve` and `qqueue worker` on the given database (or uses `--url`), submits `tasks`
Bell circuits from `concurrency` client loops (at `rate` requests/s when given, as fast as they go otherwise),
then waits for every task with `GET /tasks/{id}?wait=`. Figures, in one run:
- submit requests/s and POST latency p50/p95/p99, as the client saw them;
- completed tasks/s: tasks / (last finished_at - first submitted_at), the server's own timestamps;
- end-to-end latency p50/p95: finished_at - submitted_at per task.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from typing import Any

import httpx

from qqueue.bench import harness
from qqueue.errors import QQueueError

BELL = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n'
WAITERS = 32


def _ms(values: list[float], fraction: float) -> float:
    return round(harness.quantile(values, fraction) * 1000, 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load(base: str, *, tasks: int, concurrency: int, rate: float | None, shots: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency + WAITERS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        ids: list[str] = []
        post_latency: list[float] = []
        next_slot = iter(range(tasks))
        started = time.perf_counter()

        async def submitter() -> None:
            for index in next_slot:
                if rate:  # open loop: request i leaves at i/rate, whatever the answers take
                    await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
                sent = time.perf_counter()
                response = await client.post("/tasks", json={"qc": BELL, "shots": shots})
                post_latency.append(time.perf_counter() - sent)
                if response.status_code != 201:
                    raise QQueueError(f"submit answered {response.status_code}: {response.text[:200]}")
                ids.append(response.json()["task_id"])

        await asyncio.gather(*(submitter() for _ in range(concurrency)))
        submit_s = time.perf_counter() - started
        pending = iter(ids)
        done: list[dict[str, Any]] = []

        async def waiter() -> None:
            for task_id in pending:
                while True:
                    body = (await client.get(f"/tasks/{task_id}", params={"wait": 30})).json()
                    if body["status"] in ("completed", "failed", "cancelled"):
                        done.append(body)
                        break

        await asyncio.gather(*(waiter() for _ in range(WAITERS)))
    failed = [t["task_id"] for t in done if t["status"] != "completed"]
    if failed:
        raise QQueueError(f"{len(failed)} tasks did not complete, e.g. {failed[0]}")
    created = [datetime.fromisoformat(t["created_at"]) for t in done]
    finished = [datetime.fromisoformat(t["finished_at"]) for t in done]
    window = (max(finished) - min(created)).total_seconds()
    e2e = [(f - c).total_seconds() for c, f in zip(created, finished)]
    return {
        "submit_requests_per_s": round(tasks / submit_s),
        "post_p50_ms": _ms(post_latency, 0.5), "post_p95_ms": _ms(post_latency, 0.95),
        "post_p99_ms": _ms(post_latency, 0.99),
        "completed_tasks_per_s": round(tasks / max(window, 1e-9)),
        "end_to_end_p50_ms": _ms(e2e, 0.5), "end_to_end_p95_ms": _ms(e2e, 0.95),
    }


def run_http_bench(database_url: str | None, *, url: str | None, tasks: int, concurrency: int,
                   rate: float | None, workers: int, shots: int = 1024) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); starts and stops its own server and workers unless
    `url` names a running API."""
    figures: dict[str, Any] = {"tasks": tasks, "concurrency": concurrency, "rate": rate, "shots": shots}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryFile() as log:
        try:
            if url is None:
                if database_url is None:
                    raise QQueueError("give --url of a running API, or a database to start one on")
                port = _free_port()
                url = f"http://127.0.0.1:{port}"
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "qqueue", "serve", "--port", str(port), "--database-url", database_url,
                     "--log-level", "WARNING"], env=harness.child_env(), stdout=log, stderr=log))
                procs += harness.start_workers(database_url, None, count=workers, concurrency=1, log=log)
                _wait_healthy(url, procs)
                _warm_up(url, workers)
            figures.update(asyncio.run(_load(url, tasks=tasks, concurrency=concurrency, rate=rate, shots=shots)))
        finally:
            harness.stop(procs)
    return figures


def _wait_healthy(url: str, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise QQueueError("the API or a worker exited during start-up")
        try:
            body = httpx.get(f"{url}/health", timeout=2).json()
            if body.get("status") == "ok" and body.get("live_workers", 0) >= len(procs) - 1:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise QQueueError("the API did not become healthy within 60 s")


def _warm_up(url: str, workers: int) -> None:
    """Run a few circuits first, so slot start-up (importing Qiskit) is not counted as latency."""
    with httpx.Client(base_url=url, timeout=60) as client:
        ids = [client.post("/tasks", json={"qc": BELL, "shots": 16}).json()["task_id"] for _ in range(4 * workers)]
        for task_id in ids:
            client.get(f"/tasks/{task_id}", params={"wait": 30})
