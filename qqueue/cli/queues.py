"""`qqueue queue pause|resume|limit NAME`: an operator's controls of a queue, obeyed by every worker's next claim."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from qqueue.cli.common import fail, print_json, wire
from qqueue.cli.connect import Database, api, talking
from qqueue.cli.options import AsJson, with_options

if TYPE_CHECKING:
    from qqueue.api.schemas import QueueControls

app = typer.Typer(help="Pause, resume and limit queues (every worker obeys from its next claim on).",
                  no_args_is_help=True)

QueueArg = Annotated[str, typer.Argument(help="The queue's name.", show_default=False)]


@app.command("pause")
@with_options
def queue_pause(ctx: typer.Context, name: QueueArg, database: Database, as_json: AsJson = False) -> None:
    """Pause a queue: no worker claims its tasks until it is resumed; running ones finish.

    Example: qqueue queue pause bulk
    """
    _show(_change(ctx, database, name, pause=True), as_json)


@app.command("resume")
@with_options
def queue_resume(ctx: typer.Context, name: QueueArg, database: Database, as_json: AsJson = False) -> None:
    """Resume a paused queue; idle workers are woken at once.

    Example: qqueue queue resume bulk
    """
    _show(_change(ctx, database, name, pause=False), as_json)


@app.command("limit")
@with_options
def queue_limit(
    ctx: typer.Context,
    name: QueueArg,
    max_running: Annotated[int | None, typer.Argument(min=1, show_default=False,
                                                      help="The most of its tasks that may run at once.")] = None,
    *,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the queue's limit.")] = False,
    database: Database,
    as_json: AsJson = False,
) -> None:
    """Let at most N of a queue's tasks run at once, over every worker (or --remove the limit).

    Example: qqueue queue limit gpu 4
    """
    if (max_running is None) == (not remove):
        fail("give either the limit N or --remove")
    _show(_change(ctx, database, name, max_running=max_running), as_json)


def _change(ctx: typer.Context, database: Database, name: str, **change: Any) -> QueueControls:
    import re

    from qqueue.api.schemas import NAME_PATTERN

    if not re.match(NAME_PATTERN, name):
        fail(f"{name!r} is not a queue name (letters, digits, _ . : -, at most 64)")
    if change.get("max_running") is not None:
        _check_limit(change["max_running"])
    client = api(ctx)
    if client is not None:
        with talking(client):
            if "pause" in change:
                return client.pause_queue(name) if change["pause"] else client.resume_queue(name)
            return client.limit_queue(name, change["max_running"])
    from qqueue.store import controls

    statement = controls.change(name, actor="cli", **change)
    return database.run(lambda conn: controls.apply(conn, statement))


def _check_limit(max_running: int) -> None:
    # The API's own body decides what a limit is, so the CLI's bound is the API's, with no second copy of it.
    import msgspec

    from qqueue.api.schemas import MAX_RUNNING, QueueLimit

    try:
        msgspec.convert({"max_running": max_running}, QueueLimit)
    except msgspec.ValidationError:
        fail(f"the limit must be a whole number from 1 to {MAX_RUNNING:,}")


def _show(state: QueueControls, as_json: bool) -> None:
    if as_json:
        print_json(wire(state))
        return
    limit = "unlimited" if state.max_running is None else f"at most {state.max_running} running"
    typer.echo(f"queue {state.queue}: {'paused' if state.paused else 'running'}, {limit}")
