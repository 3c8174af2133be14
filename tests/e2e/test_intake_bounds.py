"""Requests that cost far more than their size, against a real API: each is refused with a 4xx within a generous
bound, while a /health probe running beside it is answered every time, the API process stays small, and a normal
circuit submitted afterwards completes.

The classes: huge declarations in both OpenQASM versions (registers, bits, `const` sizes, hardware qubits), gate
definitions that call each other (both versions), loops bounded by `const` expressions, deep expression nesting,
option values naming huge indices. Most are refused by the pre-scan in milliseconds; the last section proves the
second line of defence, the parser processes' deadline and memory ceiling, with an API whose limits are set low
enough for a legitimate but large circuit to reach them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import WorkerProcess, live_workers, wait_until
from tests.e2e.api_support import ApiServer
from tests.e2e.test_api import module_db, sql  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

H2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
H3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
BELL3 = H3 + "qubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n"
#: Each hostile request must be answered within this (generous: it proves "seconds", not a speed).
ANSWER_BOUND_S = 15.0
#: /health must answer within this every time while a hostile request is being refused.
HEALTH_BOUND_S = 1.0
#: The API process's resident memory may not pass this (it holds no parser: those are separate processes).
API_RSS_BOUND_BYTES = 400 * 1024**2


def bomb(version: int, levels: int = 8, fanout: int = 10) -> str:
    """Gate definitions each applying the previous one `fanout` times: fanout^levels operations, < 1 KB."""
    gates = "gate g0 a { x a; }\n" + "".join(
        f"gate g{i} a {{ {' '.join(f'g{i - 1} a;' for _ in range(fanout))} }}\n" for i in range(1, levels + 1))
    if version == 2:
        return H2 + gates + f"qreg q[1];\ncreg c[1];\ng{levels} q[0];\nmeasure q -> c;\n"
    return H3 + gates + f"qubit[1] q;\nbit[1] c;\ng{levels} q[0];\nc = measure q;\n"


@dataclass(frozen=True)
class Costly:
    says: str
    body: dict[str, Any]
    code: str
    status: int = 422
    path: str = "/tasks"
    #: A fragment of the message.
    message: str = ""


COSTLY = [
    Costly("an OpenQASM 2 register of 40,000,000 qubits", {"qc": H2 + "qreg q[40000000];\n"}, "too_many_qubits",
           message="40000000 qubits"),
    Costly("an OpenQASM 3 register of 40,000,000 qubits", {"qc": H3 + "qubit[40000000] q;\n"}, "too_many_qubits"),
    Costly("a register of 3,000,000 qubits without a version line", {"qc": "qubit[3000000] q;\n"}, "too_many_qubits"),
    Costly("400,000,000 classical bits", {"qc": H3 + "qubit q;\nbit[400000000] c;\n"}, "too_many_clbits"),
    Costly("an OpenQASM 2 classical register of 10^9 bits", {"qc": H2 + "qreg q[1];\ncreg c[1000000000];\n"},
           "too_many_clbits"),
    Costly("a register sized by a const expression", {"qc": H3 + "const int n = 2 ** 40;\nqubit[n] q;\n"},
           "too_many_qubits"),
    Costly("a hardware qubit numbered 40,000,000", {"qc": H3 + "h $40000000;\n"}, "too_many_qubits"),
    Costly("a classical integer 10^8 bits wide", {"qc": H3 + "qubit q;\nint[100000000] x;\n"}, "too_many_clbits"),
    Costly("an array of 10^8 elements", {"qc": H3 + "qubit q;\narray[int[32], 10000, 10000] a;\n"},
           "too_many_clbits"),
    Costly("an OpenQASM 2 gate-definition bomb (10^8 operations)", {"qc": bomb(2)}, "too_many_operations",
           message="'g6' expands to"),
    Costly("an OpenQASM 3 gate-definition bomb (10^8 operations)", {"qc": bomb(3)}, "too_many_operations"),
    Costly("a bomb defined but applied inside a loop", {"qc": bomb(3, levels=4).replace(
        "g4 q[0];", "for int i in [0:99] { g4 q[0]; }")}, "too_many_operations"),
    Costly("a loop bounded by a const", {"qc": H3 + "const int n = 100000000;\nqubit q;\nbit c;\n"
                                                  "for int i in [0:n] { x q; }\nc = measure q;\n"},
           "too_many_operations", message="iterations"),
    Costly("nested loops of 10^3 x 10^3", {"qc": H3 + "qubit q;\nbit c;\nfor int i in [0:999] { for int j in "
                                                  "[0:999] { x q; } }\nc = measure q;\n"}, "too_many_operations"),
    Costly("a register broadcast 10^6 times", {"qc": H2 + "qreg q[1000];\ncreg c[1000];\n" + "h q;\n" * 1000
                                               + "measure q -> c;\n"}, "too_many_operations"),
    Costly("100,000 unary minus signs", {"qc": H3 + "qubit q;\nrz(" + "-" * 100_000 + "1) q;\n"},
           "expression_too_long"),
    Costly("a sum of 50,000 terms", {"qc": H3 + "qubit q;\nrz(" + "1+" * 50_000 + "1) q;\n"}, "expression_too_long"),
    Costly("an angle nested 5,000 brackets deep", {"qc": H2 + "qreg q[1];\nrz(" + "(" * 5000 + "1" + ")" * 5000
                                                   + ") q[0];\n"}, "nesting_too_deep"),
    Costly("pow() of a gate on 20 qubits", {"qc": H3 + "gate w " + ", ".join(f"a{i}" for i in range(20))
                                            + " { x a0; }\nqubit[20] q;\npow(0.5) @ w " + ", ".join(
                                                f"q[{i}]" for i in range(20)) + ";\n"}, "too_many_operations"),
    Costly("an index of 2^63", {"qc": H2 + "qreg q[2];\ncreg c[2];\nx q[2^63];\nmeasure q -> c;\n"},
           "index_out_of_range", message="9223372036854775808"),
    Costly("a recursive subroutine", {"qc": H3 + "def f(qubit a) { f(a); }\nqubit q;\nf(q);\n"},
           "unsupported_construct", message="recursion"),
    Costly("a coupling_map naming qubit 99,999,999,999", {"qc": BELL3, "kind": "transpile", "options": {
        "basis_gates": ["cx", "rz", "sx"], "coupling_map": [[0, 99_999_999_999]]}}, "invalid_options",
           message="coupling_map"),
    Costly("a coupling_map narrower than the circuit", {"qc": BELL3, "kind": "transpile", "options": {
        "basis_gates": ["cx", "rz", "sx"], "coupling_map": [[0, 0]]}}, "invalid_options"),
    Costly("unknown basis gates", {"qc": BELL3, "kind": "transpile", "options": {"basis_gates": ["cx", "warp"]}},
           "unknown_basis_gate"),
    # Bodies whose JSON costs more to decode than its size suggests: kept as text by the API, decoded by intake.
    Costly("a job of 10^6 parameter sets (7 MB)", {"kind": "sample", "pubs": [
        {"qc": H3 + "input float t0;\nqubit q;\nbit c;\nrx(t0) q;\nc = measure q;\n",
         "parameter_values": [[0.1]] * 1_000_000}]}, "too_many_parameter_sets", path="/jobs",
           message="1000000 parameter sets"),
    Costly("a job whose parameter values are 9,000,000 empty arrays (27 MB)", {"kind": "sample", "pubs": [
        {"qc": H3 + "input float t0;\nqubit q;\nbit c;\nrx(t0) q;\nc = measure q;\n",
         "parameter_values": [[]] * 9_000_000}]}, "too_many_parameter_sets", path="/jobs", message="arrays"),
    Costly("a job whose metadata is 9,000,000 empty arrays", {"kind": "sample", "pubs": [{"qc": BELL3}],
                                                              "metadata": {"a": [[]] * 9_000_000}},
           "invalid_json", status=400, path="/jobs", message="bytes of JSON arrays and objects"),
    Costly("a batch of 15,000,000 zeros (30 MB)", {"tasks": [0] * 15_000_000}, "invalid_request", status=400,
           path="/tasks/batch", message="length <= 1000"),
    Costly("a batch of one bomb among good circuits", {"tasks": [{"qc": BELL3}, {"qc": bomb(3)}, {"qc": BELL3}]},
           "too_many_operations", status=201, path="/tasks/batch"),
]


@dataclass
class HealthProbe:
    """GET /health every 50 ms on its own connection, recording how long each answer took."""

    url: str
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get("/health").status_code
                    if status != 200:
                        self.failures.append(f"status {status}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.latencies.append(time.monotonic() - started)
                self._stop.wait(0.05)

    def __enter__(self) -> HealthProbe:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        wait_until(lambda: self.latencies, timeout_s=30, interval_s=0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        # One more answer after the request, however fast the refusal was.
        seen = len(self.latencies)
        wait_until(lambda: len(self.latencies) > seen, timeout_s=30, interval_s=0.01)
        self._stop.set()
        self._thread.join(35)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@pytest.fixture(scope="module")
def api(module_db: str) -> Iterator[ApiServer]:  # noqa: F811
    server = ApiServer(module_db)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(module_db: str, sql: psycopg.Connection[Any]) -> Iterator[WorkerProcess]:  # noqa: F811
    proc = WorkerProcess(module_db, "--concurrency", "1")
    wait_until(lambda: live_workers(sql) >= 1, timeout_s=60)
    yield proc
    proc.kill_all()
    proc.log.close()


def written(sql: psycopg.Connection[Any]) -> int:  # noqa: F811
    return sql.execute("SELECT count(*) FROM qqueue.tasks").fetchone()[0]


def completes(api: ApiServer, body: dict[str, Any]) -> dict[str, Any]:
    response = api.client.post("/tasks", json=body)
    assert response.status_code == 201, response.text
    task = api.client.get(f"/tasks/{response.json()['task_id']}", params={"wait": 30}).json()
    assert task["status"] == "completed", task
    return task


@pytest.mark.parametrize("case", COSTLY, ids=[c.says for c in COSTLY])
def test_a_request_costlier_than_its_size_is_refused_fast_while_the_api_keeps_serving(api, worker, sql, case):  # noqa: F811
    before = written(sql)
    with HealthProbe(api.url) as probe:
        started = time.monotonic()
        response = api.client.post(case.path, json=case.body, timeout=60)
        took = time.monotonic() - started
    assert response.status_code == case.status, response.text
    assert took < ANSWER_BOUND_S, took
    body = response.json()
    error = body.get("error") or next(i["error"] for i in body["items"] if "error" in i)
    assert error["code"] == case.code, body
    assert case.message in error["message"], error
    if case.path in ("/tasks", "/jobs") or case.status >= 400:
        assert written(sql) == before
    else:  # the batch: the good items are queued, the bomb alone is refused
        assert [("task_id" in i) for i in body["items"]] == [True, False, True]
        assert written(sql) == before + 2
    assert probe.latencies and not probe.failures, probe.failures
    assert max(probe.latencies) < HEALTH_BOUND_S, max(probe.latencies)
    assert rss_bytes(api.proc.pid) < API_RSS_BOUND_BYTES
    assert sum(completes(api, {"qc": BELL3, "shots": 50})["result"]["counts"].values()) == 50


def test_many_hostile_requests_at_once_leave_health_and_good_circuits_served(api, worker):
    hostile = [c.body for c in COSTLY if c.path == "/tasks"] * 2
    with HealthProbe(api.url) as probe, httpx.Client(base_url=api.url, timeout=60) as client:
        threads = [threading.Thread(target=client.post, args=("/tasks",), kwargs={"json": body}) for body in hostile]
        for thread in threads:
            thread.start()
        good = completes(api, {"qc": BELL3, "shots": 20})
        for thread in threads:
            thread.join(60)
    assert sum(good["result"]["counts"].values()) == 20
    assert not probe.failures and max(probe.latencies) < HEALTH_BOUND_S, (probe.failures, max(probe.latencies))
    assert rss_bytes(api.proc.pid) < API_RSS_BOUND_BYTES


# --- the second line: the parser processes' own limits --------------------------------------------------------


def wide_circuit(operations: int, *, gate: str = "cx") -> str:
    """A legitimate circuit of many written-out operations (under 256 KiB): it passes the pre-scan."""
    defined = "gate g a, b { cx a, b; }\n" if gate == "g" else ""
    return H3 + defined + "qubit[20] q;\nbit[20] c;\n" + "".join(
        f"{gate} q[{i % 20}], q[{(i + 1) % 20}];\n" for i in range(operations)) + "c = measure q;\n"


@pytest.mark.parametrize(("limit", "env", "circuit", "expected"), [
    # 15,000 operations take about a second to check: five times the deadline set here.
    ("time", {"QQUEUE_INTAKE_DEADLINE_S": "0.2"}, wide_circuit(15_000), "took longer than 0.2 s"),
    # OpenQASM 3's full importer needs some 200 MiB for 8,000 calls of a user-defined gate.
    ("memory", {"QQUEUE_INTAKE_MEMORY_BYTES": str(64 * 1024**2), "QQUEUE_INTAKE_DEADLINE_S": "60"},
     wide_circuit(8_000, gate="g"), "more memory than intake allows (64 MiB)"),
], ids=["deadline", "memory"])
def test_a_parse_past_the_parser_processes_limits_is_stopped_and_its_process_replaced(module_db, limit, env,  # noqa: F811
                                                                                      circuit, expected):
    server = ApiServer(module_db, env=env)
    try:
        with HealthProbe(server.url) as probe:
            started = time.monotonic()
            response = server.client.post("/tasks", json={"qc": circuit}, timeout=90)
            took = time.monotonic() - started
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert (error["code"], error["details"]["limit"]) == ("too_complex", limit) and expected in error["message"]
        # The memory case grows a parse to its ceiling, CPU-bound work a busy host slows; well under its 60 s
        # deadline still proves the ceiling, not the clock, stopped it.
        assert took < (ANSWER_BOUND_S if limit == "time" else 45.0), took
        assert not probe.failures and max(probe.latencies) < HEALTH_BOUND_S
        # The stopped process was replaced: the next submissions are served as ever.
        for _ in range(3):
            assert server.client.post("/tasks", json={"qc": BELL3, "queue": "idle-bounds"}).status_code == 201
        assert "Traceback" not in server.output()
    finally:
        server.stop()
