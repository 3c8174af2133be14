"""Who starts and stops the embedded PostgreSQL: the last process using it stops it, even when another user died
uncleanly, unless it is marked to keep running; a folder without a cluster is refused, never filled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from qqueue import embedded


def test_stop_is_not_held_back_by_a_process_that_died_without_letting_go():
    with tempfile.TemporaryDirectory(prefix="qqueue-embedded-") as tmp:
        os.chmod(tmp, 0o755)  # as root, the server runs as another user that must reach the data folder
        url = embedded.start(tmp)
        # As `qqueue serve` killed by a signal leaves it: listed as a user of the server, but gone.
        gone = subprocess.Popen(["true"])
        gone.wait()
        users = Path(tmp) / "pgdata" / ".handle_pids.json"
        users.write_text(json.dumps([*json.loads(users.read_text()), gone.pid]))
        try:
            embedded.stop(tmp)
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(url, connect_timeout=2).close()
        finally:
            # Should it still run, stop it here: it must not outlive its deleted folder.
            subprocess.run(["pkill", "-f", f"postgres -D {Path(tmp).resolve()}/pgdata"], check=False)


def test_attaching_to_a_folder_without_a_cluster_raises_and_creates_nothing(tmp_path):
    typo = tmp_path / "typo"
    with pytest.raises(embedded.NoClusterError, match=f"no embedded PostgreSQL in {typo} .*--database-url"):
        embedded.attach(typo)
    with pytest.raises(embedded.NoClusterError):
        embedded.status(typo)
    assert not typo.exists()


def test_a_server_marked_to_keep_running_outlives_its_last_user_until_shut_down():
    with tempfile.TemporaryDirectory(prefix="qqueue-embedded-") as tmp:
        os.chmod(tmp, 0o755)
        try:
            held = embedded.attach(tmp, create=True, keep_running=True)
            assert held.created and held.started and held.keeps_running
            embedded.stop(tmp)  # the last user lets go
            now = embedded.status(tmp)
            assert now.running and now.url == held.url and now.users == []
            assert embedded.shutdown(tmp) is True
            assert not embedded.status(tmp).running
            assert embedded.shutdown(tmp) is False  # idempotent
        finally:
            pid = embedded.status(tmp).pid
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
