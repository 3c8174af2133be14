"""The README's "From Qiskit" examples run as written, against a live API and worker (only the address is
changed to the test server's): what a user copies must work."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.conftest import REPO, WorkerProcess, live_workers, wait_until
from tests.e2e.test_api import api, module_db, sql  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

README_URL = "http://127.0.0.1:8000"


def examples() -> list[str]:
    """The Python blocks of the README's "From Qiskit" section, in order."""
    text = (REPO / "README.md").read_text()
    section = text.split("## From Qiskit", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture(scope="module")
def worker(module_db: str, sql: psycopg.Connection[Any]) -> Iterator[WorkerProcess]:  # noqa: F811
    proc = WorkerProcess(module_db, "--concurrency", "1")
    wait_until(lambda: live_workers(sql) >= 1, timeout_s=60)
    yield proc
    proc.kill_all()
    proc.log.close()


def test_the_readme_has_the_qiskit_examples():
    blocks = examples()
    assert len(blocks) == 2
    assert "EstimatorV2(" in blocks[0] and "SamplerV2(" in blocks[0] and "QQueueBackend(" in blocks[1]


@pytest.mark.parametrize("index", [0, 1])
def test_each_qiskit_example_runs_as_written(api, worker, index):  # noqa: F811
    code = examples()[index]
    assert README_URL in code
    scope: dict[str, Any] = {}
    exec(compile(code.replace(README_URL, api.url), f"README.md example {index}", "exec"), scope)  # noqa: S102
    if index == 0:
        assert scope["evs"].shape == (10,)
        assert sum(scope["counts"].values()) == 1000
    else:
        assert scope["sampler"] is not None
