"""The benchmarks' own figures, on a real worker and a real PostgreSQL (what they measure, not how fast)."""

from __future__ import annotations

import pytest

from qqueue.bench.circuits import run_circuits_bench

pytestmark = pytest.mark.slow


def test_the_circuit_benchmark_accounts_for_cpu_inside_and_outside_the_simulator(db_url, conn):
    figures = run_circuits_bench(db_url, tasks=40, concurrency=1, shots=64)
    assert figures["end_to_end_tasks_per_s"] > 0
    assert set(figures["cpu_ms_per_task"]) == {"supervisor", "slots", "postgres"}
    assert all(cpu >= 0 for cpu in figures["cpu_ms_per_task"].values())
    assert figures["simulator_ms_per_task"] > 0
    assert figures["outside_share_of_simulator"] == pytest.approx(
        figures["outside_simulator_ms_per_task"] / figures["simulator_ms_per_task"], abs=0.01)
    # The benchmark leaves nothing behind.
    assert conn.execute("SELECT count(*) FROM qqueue.tasks").fetchone()[0] == 0
