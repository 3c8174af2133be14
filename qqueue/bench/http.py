"""`qqueue bench http`: Bell circuits submitted over HTTP, then waited for with long-polls.

It starts its own `qqueue serve` and `qqueue worker` on the given database (or uses `--url`), submits `tasks`
Bell circuits (OpenQASM 3 by default, the body of the original contract) from `concurrency` client loops (at
`rate` requests/s when given, as fast as they go otherwise), then waits for every task with
`GET /tasks/{id}?wait=`. With `hostile`, that many requests per second that cost far more than their size
(definition bombs, huge registers, const-bounded loops, deep expressions) are sent beside the load. Figures, in
one run:
- submit requests/s and POST latency p50/p95/p99, as the client saw them;
- completed tasks/s: tasks / (last finished_at - first submitted_at), the server's own timestamps;
- end-to-end latency p50/p95: finished_at - submitted_at per task;
- with `hostile`: how many were sent, their answers by status, and their answer latency p50/max.
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

BELL = {
    2: 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n',
    3: 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\n'
       "c[0] = measure q[0];\nc[1] = measure q[1];",
}
WAITERS = 32
_H3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
#: Requests whose cost is not proportional to their size, sent beside the load with --hostile.
HOSTILE = (
    _H3 + "gate g0 a { x a; }\n" + "".join(
        f"gate g{i} a {{ {' '.join(f'g{i - 1} a;' for _ in range(10))} }}\n" for i in range(1, 9))
    + "qubit q;\nbit c;\ng8 q;\nc = measure q;\n",
    _H3 + "qubit[40000000] q;\n",
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[40000000];\n',
    _H3 + "const int n = 100000000;\nqubit q;\nbit c;\nfor int i in [0:n] { x q; }\nc = measure q;\n",
    _H3 + "qubit q;\nrz(" + "-" * 100_000 + "1) q;\n",
)


def _ms(values: list[float], fraction: float) -> float:
    return round(harness.quantile(values, fraction) * 1000, 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load(base: str, *, tasks: int, concurrency: int, rate: float | None, shots: int, qasm: int,
                hostile: float | None) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency + WAITERS + 8)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        ids: list[str] = []
        post_latency: list[float] = []
        next_slot = iter(range(tasks))
        started = time.perf_counter()
        loading = True
        hostile_answers: list[tuple[int, float]] = []

        async def attacker() -> None:
            """A hostile request every 1/hostile s while the load lasts, each in its own task."""
            async def one(body: str) -> None:
                sent = time.perf_counter()
                response = await client.post("/tasks", json={"qc": body})
                hostile_answers.append((response.status_code, time.perf_counter() - sent))

            sent_ones = []
            index = 0
            while loading:
                sent_ones.append(asyncio.create_task(one(HOSTILE[index % len(HOSTILE)])))
                index += 1
                await asyncio.sleep(1 / hostile)  # type: ignore[operator]
            await asyncio.gather(*sent_ones)

        async def submitter() -> None:
            for index in next_slot:
                if rate:  # open loop: request i leaves at i/rate, whatever the answers take
                    await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
                sent = time.perf_counter()
                response = await client.post("/tasks", json={"qc": BELL[qasm], "shots": shots})
                post_latency.append(time.perf_counter() - sent)
                if response.status_code != 201:
                    raise QQueueError(f"submit answered {response.status_code}: {response.text[:200]}")
                ids.append(response.json()["task_id"])

        attack = asyncio.create_task(attacker()) if hostile else None
        await asyncio.gather(*(submitter() for _ in range(concurrency)))
        submit_s = time.perf_counter() - started
        loading = False
        if attack is not None:
            await attack
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
    e2e = [(f - c).total_seconds() for c, f in zip(created, finished, strict=True)]
    figures: dict[str, Any] = {}
    if hostile:
        statuses: dict[str, int] = {}
        for status, _ in hostile_answers:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        latencies = [took for _, took in hostile_answers]
        figures = {"hostile_sent": len(hostile_answers), "hostile_answers": statuses,
                   "hostile_p50_ms": _ms(latencies, 0.5), "hostile_max_ms": round(max(latencies) * 1000, 2)}
    return {
        **figures,
        "submit_requests_per_s": round(tasks / submit_s),
        "post_p50_ms": _ms(post_latency, 0.5), "post_p95_ms": _ms(post_latency, 0.95),
        "post_p99_ms": _ms(post_latency, 0.99),
        "completed_tasks_per_s": round(tasks / max(window, 1e-9)),
        "end_to_end_p50_ms": _ms(e2e, 0.5), "end_to_end_p95_ms": _ms(e2e, 0.95),
    }


def run_http_bench(database_url: str | None, *, url: str | None, tasks: int, concurrency: int,
                   rate: float | None, workers: int, shots: int = 1024, qasm: int = 3,
                   hostile: float | None = None) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); starts and stops its own server and workers unless
    `url` names a running API."""
    figures: dict[str, Any] = {"tasks": tasks, "concurrency": concurrency, "rate": rate, "shots": shots,
                               "qasm": qasm, "hostile_per_s": hostile}
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
            _warm_up(url, workers, BELL[qasm])
            figures.update(asyncio.run(_load(url, tasks=tasks, concurrency=concurrency, rate=rate, shots=shots,
                                             qasm=qasm, hostile=hostile)))
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
            if body.get("status") == "healthy" and body.get("live_workers", 0) >= len(procs) - 1:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise QQueueError("the API did not become healthy within 60 s")


def _warm_up(url: str, workers: int, circuit: str) -> None:
    """Run a few circuits first, so slot and parser start-up (importing Qiskit) is not counted as latency."""
    with httpx.Client(base_url=url, timeout=60) as client:
        ids = [client.post("/tasks", json={"qc": circuit, "shots": 16}).json()["task_id"] for _ in range(4 * workers)]
        for task_id in ids:
            client.get(f"/tasks/{task_id}", params={"wait": 30})
