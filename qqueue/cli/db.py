"""`qqueue db start|status|stop`: the embedded PostgreSQL of --data-dir, which every command given no
--database-url uses."""

from __future__ import annotations

from typing import Annotated

import typer

from qqueue.cli.common import guard, note, print_json, settings
from qqueue.cli.connect import embedded_url
from qqueue.cli.options import AsJson, DataDir

app = typer.Typer(help="The embedded PostgreSQL of --data-dir, used by every command given no --database-url.",
                  no_args_is_help=True)


@app.command("start")
def db_start(data_dir: DataDir = None) -> None:
    """Start the embedded PostgreSQL (made if the folder holds none), migrate it and leave it running; print its URL.

    Example: export QQUEUE_DATABASE_URL=$(qqueue db start)
    """
    from qqueue import embedded

    folder = settings(data_dir=data_dir).data_dir
    url = embedded_url(folder, create=True, keep_running=True)
    if not guard(lambda: embedded.status(folder)).keeps_running:
        guard(lambda: embedded.mark_keep_running(folder))
        note("the embedded PostgreSQL was running already; it now keeps running after the processes using it "
             f"exit (stop it with `qqueue db stop --data-dir {folder}`)")
    typer.echo(url)


@app.command("status")
def db_status(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Show whether the embedded PostgreSQL runs: its URL, postmaster pid, data folder and the processes using it.
    Exits 0 when it runs, 3 when it does not, 1 when the folder holds none.

    Example: qqueue db status --json
    """
    import msgspec

    from qqueue import embedded

    folder = settings(data_dir=data_dir).data_dir
    now = guard(lambda: embedded.status(folder))
    if as_json:
        print_json(msgspec.to_builtins(now))
    elif now.running:
        users = ", ".join(map(str, now.users)) or "none"
        typer.echo(f"running      {now.url}\npid          {now.pid}\ndata folder  {now.pgdata}\n"
                   f"used by      {users}\n"
                   f"on exit      {'keeps running' if now.keeps_running else 'stops with its last user'}")
    else:
        typer.echo(f"not running  (data folder {now.pgdata})")
    raise typer.Exit(0 if now.running else 3)


@app.command("stop")
def db_stop(
    data_dir: DataDir = None,
    force: Annotated[bool, typer.Option("--force", help="Stop it even while qqueue processes use it.")] = False,
) -> None:
    """Stop the embedded PostgreSQL (nothing to do if it does not run). Refuses while `qqueue dev` or another
    qqueue process uses it, unless --force.

    Example: qqueue db stop
    """
    from qqueue import embedded

    folder = settings(data_dir=data_dir).data_dir
    stopped = guard(lambda: embedded.shutdown(folder, force=force))
    typer.echo(f"stopped the embedded PostgreSQL in {embedded.pgdata_of(folder)}" if stopped
               else f"the embedded PostgreSQL in {embedded.pgdata_of(folder)} was not running")
