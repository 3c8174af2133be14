"""`qqueue dev`: the whole system on one machine with no set-up.

An embedded PostgreSQL (data kept in the data folder), migrations, a worker in its own process, and the HTTP
API in this one, on 127.0.0.1 only. Ctrl-C (or SIGTERM) stops the API, then the worker (which hands back what
it has not finished), then PostgreSQL: no process is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from qqueue import db, embedded, migrate
from qqueue.api.serve import serve
from qqueue.config import Settings

HOST = "127.0.0.1"


def run(settings: Settings, *, port: int) -> int:
    """Start everything and serve until interrupted; returns the exit code."""
    url = embedded.start(settings.data_dir, keep_running=False)
    with db.connection(url) as conn:
        migrate.migrate(conn)
    env = {k: v for k, v in os.environ.items() if k != "QQUEUE_DATABASE_URL"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "qqueue", "worker", "--database-url", url,
         "--concurrency", str(settings.effective_concurrency()), "--log-level", settings.log_level],
        env=env,
    )
    base = f"http://{HOST}:{port}"
    print(f"qqueue dev: API        {base}  (docs {base}/schema)\n"
          f"            PostgreSQL {url}\n"
          f"            worker     {settings.effective_concurrency()} slots\n"
          f"            try:       curl -s {base}/tasks -H 'content-type: application/json' "
          """-d '{"qc": "OPENQASM 2.0; include \\"qelib1.inc\\"; qreg q[2]; creg c[2]; h q[0]; """
          """cx q[0],q[1]; measure q -> c;", "shots": 100}'\n"""
          "            Ctrl-C stops everything", file=sys.stderr, flush=True)
    try:
        serve(settings, url, HOST, port)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(settings.grace_s + 10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        embedded.stop(settings.data_dir)
    return 0
