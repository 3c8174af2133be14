"""Test harness on a real PostgreSQL, never a mock.

The server is, in order of preference: the URL in QQUEUE_TEST_DATABASE_URL; a testcontainers PostgreSQL when a
Docker daemon answers; otherwise the embedded PostgreSQL. The schema is migrated once into a template database
and every test gets its own clone (CREATE DATABASE … TEMPLATE), so each starts clean and NOTIFY/claim races are
real (rolled-back transactions would never deliver a notification).
"""

from __future__ import annotations

import collections
import gc
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from qqueue.store import db, migrate

REPO = Path(__file__).resolve().parent.parent


def _docker_postgres() -> Iterator[str] | None:
    with warnings.catch_warnings():
        # A failed probe leaves docker's half-open socket to the garbage collector, whose ResourceWarning would
        # otherwise surface in whichever test happens to run a collection, and fail it (warnings are errors).
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            docker.from_env(timeout=2).ping()
        except Exception:  # no client, no daemon, no permission: all mean "not here"
            return None
        finally:
            gc.collect()
    from testcontainers.postgres import PostgresContainer

    def gen() -> Iterator[str]:
        with PostgresContainer("postgres:17-alpine", driver=None) as pg:
            yield pg.get_connection_url()

    return gen()


def _embedded_postgres() -> Iterator[str]:
    from qqueue import embedded

    with tempfile.TemporaryDirectory(prefix="qqueue-test-pg-") as tmp:
        os.chmod(tmp, 0o755)  # as root, the server runs as another user that must reach the data folder
        yield embedded.start(tmp, keep_running=False)
        # Stop it while its folder still exists; the library's own atexit hook would run too late.
        embedded.stop(tmp)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of the PostgreSQL server the whole session uses."""
    if url := os.environ.get("QQUEUE_TEST_DATABASE_URL"):
        yield url
        return
    source = _docker_postgres() or _embedded_postgres()
    yield from source


def _with_db(url: str, dbname: str) -> str:
    return make_conninfo(url, dbname=dbname)


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    """A database holding the migrated schema, cloned by every test."""
    name = f"qqueue_tpl_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"'.encode())
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    with db.connection(_with_db(server_url, name)) as conn:
        migrate.migrate(conn)
    yield name
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"'.encode())


@pytest.fixture
def db_url(server_url: str, template_db: str) -> Iterator[str]:
    """URL of a fresh database with the current schema, dropped after the test."""
    name = f"qqueue_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'.encode())
    yield _with_db(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as admin:
        # Processes a test left behind must not keep the database alive.
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"'.encode())


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test's database."""
    with db.connection(db_url) as c:
        yield c


def wait_until(condition: Callable[[], Any], timeout_s: float = 30.0, interval_s: float = 0.02) -> Any:
    """Poll `condition` until it returns something truthy; fail the test at the deadline. Never a bare sleep."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s: {condition}")
        time.sleep(interval_s)


class WorkerProcess:
    """A real `qqueue worker` subprocess."""

    def __init__(self, db_url: str, *args: str, env: dict[str, str] | None = None) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        env.pop("QQUEUE_DATABASE_URL", None)
        # A file, not a pipe: a chatty worker must never block on a full pipe nobody reads.
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qqueue", "worker", "--database-url", db_url, "--import", "tests.kinds", *args],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The supervisor's process id."""
        return self.proc.pid

    def signal(self, sig: int) -> None:
        """Send `sig` to the supervisor only."""
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 60.0) -> int:
        """Wait for exit; return the exit code."""
        return self.proc.wait(timeout_s)

    def output(self) -> str:
        """Everything it printed so far."""
        self.log.seek(0)
        return self.log.read()

    def kill_all(self) -> None:
        """SIGKILL the supervisor and its slots (its whole process group)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


@contextmanager
def serving_worker(db_url: str, conn: psycopg.Connection[Any], *args: str,
                   env: dict[str, str] | None = None) -> Iterator[WorkerProcess]:
    """A worker that has registered (so is taking tasks) for the block; killed after it, its output printed."""
    proc = WorkerProcess(db_url, *args, env=env)
    wait_until(lambda: live_workers(conn) >= 1, timeout_s=60)
    yield proc
    proc.kill_all()
    print(f"--- worker {proc.pid} output ---\n{proc.output()}")
    proc.log.close()


@pytest.fixture
def start_worker(db_url: str) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `qqueue worker` subprocesses on the test database; all are stopped after the test."""
    started: list[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        worker = WorkerProcess(db_url, *args)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.kill_all()
        # Captured by pytest and shown only when the test failed.
        print(f"--- worker {worker.pid} output ---\n{worker.output()}")
        worker.log.close()


def live_workers(conn: psycopg.Connection[Any]) -> int:
    """How many workers have registered and not stopped."""
    return conn.execute("SELECT count(*) FROM qqueue.live_workers").fetchone()[0]


def status_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Tasks by status."""
    return dict(conn.execute("SELECT status::text, count(*) FROM qqueue.tasks GROUP BY 1").fetchall())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test an id of its own: schemathesis names its per-operation tests in `name` only, leaving them
    one node id, and the parallel runner, which sends tests to its processes by id, would run only the first."""
    from _pytest.nodes import NodeId  # pytest keeps a node's id in a NodeId since 9.2, with no public setter

    ids = collections.Counter(item.nodeid for item in items)
    for item in items:
        if ids[item.nodeid] > 1 and item.name.endswith("]"):
            item._id = NodeId.parse(f"{item.nodeid.rpartition('::')[0]}::{item.name}")


#: The user property under which a test leaves a line for the run's summary (see `pytest_terminal_summary`).
SUMMARY_LINE = "summary_line"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the lines tests left for the reader (the chaos figures, the screenshots' folder) once, at the end.

    A test's own output is not shown when the suite runs in several processes; the reports' user properties
    travel back to the process that prints the summary, so the lines ride on them.
    """
    lines: dict[str, None] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, value in getattr(report, "user_properties", ()):
                if name == SUMMARY_LINE:
                    lines[str(value)] = None
    if lines:
        terminalreporter.section("figures and files")
        for line in lines:
            terminalreporter.write_line(line)
