"""`qqueue dev`: the whole system on one machine with no set-up.

An embedded PostgreSQL (data kept in the data folder), migrations, a worker in its own process, and the HTTP
API in this one, on 127.0.0.1 only. Ctrl-C (or SIGTERM) stops the API, then the worker (which hands back what
it has not finished), then PostgreSQL: no process is left behind.

Not even when `qqueue dev` is killed with SIGKILL (or by the OOM killer) and its own clean-up never runs: the
worker gets SIGTERM from the kernel when this process dies (PR_SET_PDEATHSIG), and a small watchdog process
(`python -m qqueue.dev --watch`, which notices when its stdin pipe from us closes) waits for the worker to hand
back its tasks and then lets go of PostgreSQL on our behalf, which stops it unless another process uses it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress

import msgspec

from qqueue import embedded
from qqueue.config import Settings
from qqueue.errors import QQueueError

log = logging.getLogger("qqueue.dev")

HOST = "127.0.0.1"
#: How long the watchdog waits for a worker beyond its grace period before killing it.
WORKER_MARGIN_S = 10.0


def run(settings: Settings, *, port: int) -> int:
    """Start everything and serve until interrupted; returns the exit code."""
    # Imported here, not above: the watchdog runs this module too and needs none of it.
    from qqueue.api.serve import serve
    from qqueue.store import db, migrate

    server = embedded.attach(settings.data_dir, create=True)
    with db.connection(server.url) as conn:
        migrate.migrate(conn)
    watchdog = Watchdog(settings.data_dir, grace_s=settings.grace_s)
    env = {k: v for k, v in os.environ.items() if k != "QQUEUE_DATABASE_URL"}
    armed, preexec = _sigterm_with_parent()
    try:
        worker = subprocess.Popen(
            [sys.executable, "-m", "qqueue", "worker", "--database-url", server.url,
             "--concurrency", str(settings.effective_concurrency()), "--log-level", settings.log_level],
            env=env, preexec_fn=preexec,
        )
    except BaseException:
        watchdog.release()
        raise
    watchdog.watch(worker.pid, signalled=armed)
    base = f"http://{HOST}:{port}"
    fate = "keeps running after qqueue dev" if server.keeps_running else "stops with qqueue dev"
    print(f"qqueue dev: API        {base}  (docs {base}/schema)\n"
          f"            dashboard  {base}/ui\n"
          f"            PostgreSQL {server.url}  ({fate})\n"
          f"            worker     {settings.effective_concurrency()} slots\n"
          f"            try:       curl -s {base}/tasks -H 'content-type: application/json' "
          """-d '{"qc": "OPENQASM 2.0; include \\"qelib1.inc\\"; qreg q[2]; creg c[2]; h q[0]; """
          """cx q[0],q[1]; measure q -> c;", "shots": 100}'\n"""
          "            Ctrl-C stops everything", file=sys.stderr, flush=True)
    # The test kinds (noop, sleep, fail) are closed on a production API; on a developer's own machine they are
    # how the queue is tried without a circuit.
    if not settings.api_raw_kinds:
        settings = msgspec.structs.replace(settings, api_raw_kinds=["noop", "sleep", "fail"])
    try:
        serve(settings, server.url, HOST, port)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(settings.grace_s + WORKER_MARGIN_S)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        embedded.stop(settings.data_dir)
        watchdog.release()  # the last user now: it stops PostgreSQL (unless kept running) before we return
    return 0


class Watchdog:
    """The parent's side of the watchdog: a process, in a session of its own (so Ctrl-C and a closed terminal
    reach only us), that is a user of the embedded server as we are, and cleans up after us when our end of
    its stdin pipe closes without a word: that is, when this process died."""

    def __init__(self, data_dir: str, *, grace_s: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qqueue.dev", "--watch", data_dir, str(grace_s), str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        # Wait until it holds the server: were we to let go first, we would stop it under the watchdog's feet.
        answer = self.proc.stdout.readline()
        self.proc.stdout.close()
        if answer != b"ready\n":
            self.proc.wait()
            raise QQueueError(f"the qqueue dev watchdog did not start (exit code {self.proc.returncode})")

    def watch(self, pid: int, *, signalled: bool) -> None:
        """Have it wait for process `pid` (SIGTERMed by it unless `signalled`: the kernel does that already)."""
        self._say(f"worker {pid} {int(signalled)}")

    def release(self) -> None:
        """We cleaned up ourselves: it only lets go of the server, and exits."""
        self._say("stopped")
        assert self.proc.stdin is not None
        with suppress(BrokenPipeError):  # it died: what we wrote is still buffered
            self.proc.stdin.close()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _say(self, line: str) -> None:
        assert self.proc.stdin is not None
        with suppress(BrokenPipeError):  # it died; our own clean-up still runs
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()


def watch(data_dir: str, grace_s: float, parent: int) -> int:
    """The watchdog process: hold the server, wait for the parent to go, then clean up after it."""
    from qqueue.logs import setup_logging

    setup_logging()
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        embedded.attach(data_dir)  # never makes one: the parent did
    except QQueueError as exc:
        log.error("qqueue dev watchdog: %s", exc.message)
        return 1
    sys.stdout.write("ready\n")
    sys.stdout.close()  # the parent reads nothing more from us
    workers, clean = _listen(parent)
    if not clean:
        log.warning("qqueue dev died without cleaning up; its watchdog stops the worker, then PostgreSQL",
                    extra={"pid": parent})
        _stop_workers(workers, timeout_s=grace_s + WORKER_MARGIN_S)
    embedded.stop(data_dir)
    return 0


def _listen(parent: int) -> tuple[dict[int, bool], bool]:
    """Read the parent's lines until its pipe closes: (worker pid -> already signalled, whether it said 'stopped')."""
    workers: dict[int, bool] = {}
    clean = False
    pending = b""
    while True:
        # Also look at our parent now and then: a child of the parent that inherited the pipe's write end
        # would otherwise hold it open after the parent died.
        ready, _, _ = select.select([0], [], [], 1.0)
        if not ready:
            if os.getppid() != parent:
                return workers, clean
            continue
        chunk = os.read(0, 4096)
        if not chunk:
            return workers, clean
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            words = line.decode().split()
            if words[:1] == ["worker"]:
                workers[int(words[1])] = words[2] == "1"
            elif words == ["stopped"]:
                clean = True


def _stop_workers(workers: dict[int, bool], *, timeout_s: float) -> None:
    """SIGTERM those the kernel did not, wait for all (they hand back their tasks), SIGKILL at the deadline."""
    for pid, signalled in workers.items():
        if not signalled:
            _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while (left := [pid for pid in workers if embedded.alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, sig)


def _sigterm_with_parent() -> tuple[bool, Callable[[], None] | None]:
    """(armed, preexec_fn) making a child get SIGTERM when this process dies, as `qqueue.forkserver.detach` does
    for slots; (False, None) where Linux's prctl is not available."""
    if sys.platform != "linux":
        return False, None
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)  # loaded here: the child runs as little as possible
    except OSError:
        return False, None
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # we died before the line above: nobody will send it
            os.kill(os.getpid(), signal.SIGTERM)

    return True, preexec


if __name__ == "__main__" and sys.argv[1:2] == ["--watch"]:
    sys.exit(watch(sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
