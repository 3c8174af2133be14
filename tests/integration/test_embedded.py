"""The embedded PostgreSQL is stopped by the last process using it, even when another user died uncleanly."""

from __future__ import annotations

import json
import os
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
