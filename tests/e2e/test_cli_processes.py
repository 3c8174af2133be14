"""Which processes the CLI starts, and that none outlives its purpose: the embedded PostgreSQL of a one-shot
command, of `qqueue db start`, of a benchmark and of `qqueue dev` (even SIGKILLed), and a worker's slots when
its supervisor is SIGKILLed. Every command runs as a real subprocess; every wait polls to a deadline."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from qqueue import embedded
from qqueue.store import queue as q
from qqueue.tasks import TaskSpec
from tests.conftest import REPO, wait_until
from tests.e2e.api_support import BELL, free_port
from tests.e2e.chaos_support import parent_pids

pytestmark = pytest.mark.slow


def cli_env(**extra: str) -> dict[str, str]:
    """This environment without a configured database, so only the flags a test passes count."""
    env = {k: v for k, v in os.environ.items() if k not in ("QQUEUE_DATABASE_URL", "QQUEUE_DATA_DIR")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def qq(*args: str, timeout_s: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m qqueue ARGS` to its end."""
    return subprocess.run([sys.executable, "-m", "qqueue", *args], cwd=REPO, env=cli_env(**env),
                          capture_output=True, text=True, timeout=timeout_s)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, grandchildren, …), from /proc."""
    parents = parent_pids()
    found: list[int] = []
    frontier = [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent == frontier[-1]]
        frontier.pop()
        found += children
        frontier += children
    return found


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def postgres_pids(folder: Path) -> list[int]:
    """Postmasters serving a cluster under `folder`."""
    pgdata = str(embedded.pgdata_of(folder))
    return [pid for pid in parent_pids() if "postgres" in cmdline(pid) and f"-D {pgdata} " in cmdline(pid)]


def kill(pids: list[int]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def folder() -> Iterator[Path]:
    """An empty data folder; any server left running in it is killed afterwards."""
    with tempfile.TemporaryDirectory(prefix="qqueue-cli-") as tmp:
        os.chmod(tmp, 0o755)  # as root, the server runs as another user that must reach the data folder
        try:
            yield Path(tmp)
        finally:
            kill(postgres_pids(Path(tmp)))


@pytest.fixture
def cluster(folder: Path) -> Path:
    """A data folder holding a migrated cluster whose server does not run."""
    made = qq("migrate", "--data-dir", str(folder))
    assert made.returncode == 0, made.stderr
    assert "created a new embedded PostgreSQL" in made.stderr
    assert "applied 0001_" in made.stdout
    assert qq("db", "status", "--data-dir", str(folder)).returncode == 3
    return folder


def test_commands_refuse_a_data_folder_without_a_cluster_instead_of_creating_one(tmp_path):
    typo = tmp_path / "typo"
    bell = tmp_path / "bell.qasm"
    bell.write_text(BELL)
    task = str(uuid.uuid4())
    commands = [["ls"], ["get", task], ["stats"], ["submit", str(bell)], ["cancel", task], ["check"],
                ["purge", "--older-than", "7d"], ["keys", "ls"], ["keys", "revoke", "k123"], ["worker"], ["serve"],
                ["bench", "queue"], ["db", "status"], ["db", "stop"]]
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda args: qq(*args, "--data-dir", str(typo)), commands))
    for args, run in zip(commands, runs, strict=True):
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        # One clear line: the folder, and both ways out.
        assert run.stderr.count("\n") == 1, (args, run.stderr)
        assert run.stderr.startswith(f"error: no embedded PostgreSQL in {typo} "), (args, run.stderr)
        assert "qqueue db start" in run.stderr and "--database-url" in run.stderr, (args, run.stderr)
    assert not typo.exists()


def test_a_one_shot_command_that_starts_the_server_says_so_and_stops_it_when_it_ends(cluster):
    listed = qq("ls", "--json", "--data-dir", str(cluster))
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []  # stdout stays the answer
    assert "started the embedded PostgreSQL" in listed.stderr
    assert "it stops when this command ends" in listed.stderr
    assert qq("db", "status", "--data-dir", str(cluster)).returncode == 3
    assert postgres_pids(cluster) == []


def test_db_start_leaves_the_server_running_and_commands_attach_without_stopping_it(cluster):
    started = qq("db", "start", "--data-dir", str(cluster))
    assert started.returncode == 0, started.stderr
    assert "keeps running after this command" in started.stderr
    url = started.stdout.strip()
    status = qq("db", "status", "--json", "--data-dir", str(cluster))
    assert status.returncode == 0
    running = json.loads(status.stdout)
    assert running["running"] and running["url"] == url and running["keeps_running"]
    assert running["pgdata"] == str(embedded.pgdata_of(cluster)) and postgres_pids(cluster) == [running["pid"]]

    stats = qq("stats", "--json", "--data-dir", str(cluster))
    assert stats.returncode == 0, stats.stderr
    assert "started" not in stats.stderr
    assert json.loads(qq("db", "status", "--json", "--data-dir", str(cluster)).stdout)["pid"] == running["pid"]

    stopped = qq("db", "stop", "--data-dir", str(cluster))
    assert stopped.returncode == 0 and "stopped the embedded PostgreSQL" in stopped.stdout
    again = qq("db", "stop", "--data-dir", str(cluster))
    assert again.returncode == 0 and "was not running" in again.stdout
    assert qq("db", "status", "--data-dir", str(cluster)).returncode == 3
    assert postgres_pids(cluster) == []


def test_a_command_that_only_attached_never_stops_a_server_another_process_uses(cluster):
    # A process holding the server as `qqueue dev` does: listed as its user, stopping it when it lets go last.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from qqueue import embedded; embedded.attach(sys.argv[1]); "
                               "print('ready', flush=True); sys.stdin.read()", str(cluster)],
        cwd=REPO, env=cli_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline() == "ready\n"
        pid = embedded.status(cluster).pid
        for args in (["ls"], ["check"], ["keys", "ls"]):
            run = qq(*args, "--data-dir", str(cluster))
            assert run.returncode == 0, run.stderr
            assert "started" not in run.stderr
        assert embedded.status(cluster).pid == pid

        refused = qq("db", "stop", "--data-dir", str(cluster))
        assert refused.returncode == 1
        assert f"in use by process {holder.pid}" in refused.stderr and "--force" in refused.stderr
        assert embedded.status(cluster).pid == pid

        # The last user to let go stops it.
        holder.stdin.close()
        assert holder.wait(30) == 0
        wait_until(lambda: not embedded.status(cluster).running, timeout_s=30)
        assert postgres_pids(cluster) == []
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_a_benchmark_given_no_database_runs_on_a_temporary_server_and_leaves_nothing_behind(tmp_path):
    home = tmp_path / "data"  # where the default --data-dir would be: it must stay untouched
    run = qq("bench", "queue", "--tasks", "100", "--workers", "1", "--pickups", "5", "--json",
             XDG_DATA_HOME=str(home), timeout_s=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)
    match = re.search(r"measuring on a temporary embedded PostgreSQL in (\S+),", run.stderr)
    assert match, run.stderr
    temporary = match.group(1)
    assert not Path(temporary).exists()
    assert [pid for pid in parent_pids() if temporary in cmdline(pid)] == []
    assert not home.exists()


def test_qqueue_dev_killed_with_sigkill_takes_its_worker_and_postgres_with_it(folder, tmp_path):
    port = free_port()
    log = (tmp_path / "dev.log").open("w+")
    dev = subprocess.Popen(
        [sys.executable, "-m", "qqueue", "dev", "--data-dir", str(folder), "--port", str(port), "--concurrency", "1"],
        cwd=REPO, env=cli_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    leftovers: list[int] = []
    try:
        def healthy() -> bool:
            assert dev.poll() is None, (tmp_path / "dev.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, timeout_s=90, interval_s=0.1)
        wait_until(lambda: "worker started" in (tmp_path / "dev.log").read_text(), timeout_s=60)
        # The dashboard's URL beside the API's, and the page answers there.
        assert f"dashboard  http://127.0.0.1:{port}/ui" in (tmp_path / "dev.log").read_text()
        assert httpx.get(f"http://127.0.0.1:{port}/ui", timeout=10).status_code == 200
        postmaster = embedded.status(folder).pid
        assert postmaster is not None
        # The worker, its forkserver and slots, the watchdog, and PostgreSQL.
        leftovers = [*descendants(dev.pid), postmaster]
        assert any(" qqueue worker " in cmdline(pid) for pid in leftovers)

        dev.send_signal(signal.SIGKILL)
        dev.wait(10)
        wait_until(lambda: not any(embedded.alive(pid) for pid in leftovers), timeout_s=15, interval_s=0.05)
        assert '"worker stopped"' in (tmp_path / "dev.log").read_text()  # the graceful way, on SIGTERM
        assert not embedded.status(folder).running
    finally:
        dev.kill()
        dev.wait()
        kill([pid for pid in leftovers if embedded.alive(pid)])
        log.close()


def test_slots_and_forkserver_of_a_sigkilled_supervisor_die_with_it(conn, start_worker, tmp_path):
    worker = start_worker("--concurrency", "2")
    q.enqueue(conn, TaskSpec(kind="marked_sleep", payload={"dir": str(tmp_path), "seconds": 300}))
    wait_until(lambda: any(tmp_path.iterdir()), timeout_s=60)  # the task runs in a slot
    below = descendants(worker.pid)
    forkservers = [pid for pid in below if "multiprocessing.forkserver" in cmdline(pid)
                   and parent_pids().get(pid) == worker.pid]
    busy = int(next(tmp_path.iterdir()).name.split("-")[0])
    assert len(forkservers) == 1 and busy in below and len(below) >= 4  # tracker, forkserver, two slots

    worker.signal(signal.SIGKILL)
    worker.wait(10)
    try:
        wait_until(lambda: not any(embedded.alive(pid) for pid in below), timeout_s=10, interval_s=0.05)
    finally:
        kill([pid for pid in below if embedded.alive(pid)])
