"""Circuit tasks through the real queue and a real worker: each kind completes with the right result, the
profile and result are readable in SQL, and a seeded repeat is answered from the result cache."""

from __future__ import annotations

import pytest

from qqueue.intake import prepare
from qqueue.store import queue as q
from qqueue.tasks import TaskSpec
from tests.conftest import wait_until
from tests.unit.test_intake import BELL2, BELL3

pytestmark = pytest.mark.slow


def submit(conn, source: str, kind: str = "simulate", shots: int = 1000, **options):
    prepared = prepare(source, kind=kind, shots=shots, options=options)
    spec = TaskSpec(kind=kind, payload=prepared.payload, profile=prepared.profile, cache_key=prepared.cache_key)
    return q.enqueue(conn, spec).id


def finished(conn, ids) -> bool:
    return all(q.get(conn, i)["status"] in ("completed", "failed") for i in ids)


def test_every_circuit_kind_completes_through_the_worker(conn, start_worker):
    bell = submit(conn, BELL2, seed=1)
    noisy = submit(conn, BELL3, seed=1, backend="fake_manila")
    transpiled = submit(conn, BELL2, kind="transpile", backend="fake_manila")
    qir = submit(conn, BELL3, kind="convert", target="qir")
    start_worker("--concurrency", "2")
    wait_until(lambda: finished(conn, [bell, noisy, transpiled, qir]), timeout_s=120)
    assert {q.get(conn, i)["status"] for i in (bell, noisy, transpiled, qir)} == {"completed"}
    assert set(q.get(conn, bell)["result"]["counts"]) == {"00", "11"}
    assert sum(q.get(conn, noisy)["result"]["counts"].values()) == 1000
    assert q.get(conn, transpiled)["result"]["qasm3"].startswith("OPENQASM 3")
    assert "__quantum__qis__mz__body" in q.get(conn, qir)["result"]["source"]
    # Result and profile answer plain SQL.
    row = conn.execute(
        "SELECT (profile ->> 'qubits')::int, (result -> 'counts' ->> '00')::int + (result -> 'counts' ->> '11')::int "
        "FROM qqueue.tasks WHERE id = %s", (bell,)).fetchone()
    assert row == (2, 1000)


def test_a_seeded_repeat_is_answered_from_the_cache_without_running(conn, start_worker):
    start_worker("--concurrency", "1")
    first = submit(conn, BELL2, seed=42)
    wait_until(lambda: finished(conn, [first]), timeout_s=120)
    again = submit(conn, BELL3, seed=42)  # the same circuit in the other dialect
    unseeded = submit(conn, BELL2)
    wait_until(lambda: finished(conn, [again, unseeded]), timeout_s=60)
    hit = q.get(conn, again)
    assert hit["cached_from"] == first and hit["cache_key"] == q.get(conn, first)["cache_key"]
    assert hit["result"] == q.get(conn, first)["result"]
    assert hit["timings"] is None  # no slot ran it
    assert q.get(conn, unseeded)["cached_from"] is None
