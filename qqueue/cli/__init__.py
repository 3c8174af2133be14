"""The `qqueue` command line: parses arguments and calls the modules that do the work.

This module makes the typer app, its root options and `main`, and gathers the commands of the modules beside it
(in the order `qqueue --help` lists them). Every error a user can cause ends as one line on stderr and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Annotated

import typer

from qqueue.cli import bench, db, jobs, keys, operating, queues, submit, tasks
from qqueue.cli.connect import Remote
from qqueue.cli.options import ApiKey, ApiUrl
from qqueue.errors import QQueueError

app = typer.Typer(
    name="qqueue",
    help="Run quantum circuits asynchronously on a PostgreSQL-only task queue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(bench.app, name="bench")
app.add_typer(keys.app, name="keys")
app.add_typer(db.app, name="db")
app.add_typer(jobs.app, name="jobs")
app.add_typer(queues.app, name="queue")

app.command()(operating.migrate)
app.command()(operating.worker)
app.command()(operating.serve)
app.command()(operating.dev)
app.command()(operating.purge)
app.command()(operating.check)
app.command()(submit.submit)
app.command()(tasks.get)
app.command("ls")(tasks.list_tasks)
app.command()(tasks.cancel)
app.command()(tasks.stats)


def _show_version(value: bool) -> None:
    if value:
        from qqueue import __version__

        typer.echo(f"qqueue {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    # Options before the command; the commands that can use the API read them from the context.
    ctx.obj = Remote(api_url, api_key) if api_url else None


def main() -> None:
    """Console-script entry point."""
    logging.captureWarnings(True)
    try:
        app()
    except QQueueError as exc:  # commands guard themselves; this is the last net
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        sys.exit(1)
    except Exception as exc:  # a bug: still one line for the user, the details for whoever debugs it
        if os.environ.get("QQUEUE_LOG_LEVEL", "").upper() == "DEBUG":
            traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0]
        typer.secho(f"error: unexpected {type(exc).__name__}: {first} (set QQUEUE_LOG_LEVEL=DEBUG for details)",
                    err=True, fg=typer.colors.RED)
        sys.exit(2)

