"""The commands that look at tasks and queues, on the database or through --api-url: `get`, `ls`, `cancel` and
`stats`. Both ways print the API's shapes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from qqueue.cli.common import as_row, check_statuses, parse_id, print_json, wire
from qqueue.cli.connect import Database, api, talking
from qqueue.cli.options import AsJson, AsJsonArray, TaskId, TaskListing, with_options

if TYPE_CHECKING:
    from qqueue.api.schemas import TaskDetail


def task_detail(conn: Any, task_id: Any) -> TaskDetail:
    """The task as GET /tasks/{id} answers it, read from the database: the CLI shows one shape either way."""
    import msgspec

    from qqueue.api.schemas import TaskDetail
    from qqueue.store import reads

    # Through JSON, as a client would receive it: the result and history are held as raw JSON text until then.
    return msgspec.json.decode(msgspec.json.encode(reads.fetch(conn, reads.task_detail(task_id))), type=TaskDetail)


@with_options
def get(ctx: typer.Context, task_id: TaskId, database: Database, as_json: AsJson = False) -> None:
    """Show a task: status, history, error, and its counts as a histogram.

    Example: qqueue get 01a2f3c4-0000-7000-8000-000000000000
    """
    tid = parse_id(task_id)
    client = api(ctx)
    if client is not None:
        with talking(client):
            detail = client.get(tid)
    else:
        detail = database.run(lambda conn: task_detail(conn, tid))
    task, value = as_row(detail), wire(detail)
    if as_json:
        print_json(value)
    else:
        from qqueue.console import task_details

        task_details(task)


@with_options
def list_tasks(ctx: typer.Context, listing: TaskListing, database: Database, as_json: AsJsonArray = False) -> None:
    """List tasks, newest first.

    Example: qqueue ls --status failed --limit 50
    """
    from qqueue.store import reads
    from qqueue.tasks import TaskStatus

    check_statuses(listing.status, [s.value for s in TaskStatus])
    client = api(ctx)
    if client is not None:
        with talking(client):
            page = client.list(status=listing.status, queue=listing.queue, kind=listing.kind, tags=listing.tag,
                               limit=listing.limit)
    else:
        where = reads.ListFilter(statuses=listing.status, queue=listing.queue, kind=listing.kind, tags=listing.tag,
                                 limit=listing.limit)
        page = database.run(lambda conn: reads.fetch(conn, reads.task_page(where)))
    rows, values = [as_row(t) for t in page.items], [wire(t) for t in page.items]
    if as_json:
        print_json(values)
    else:
        from qqueue.console import table

        table(rows, ["id", "status", "kind", "queue", "attempt", "created_at", "finished_at"])


@with_options
def cancel(ctx: typer.Context, task_id: TaskId, database: Database) -> None:
    """Cancel a task: a pending one at once, a running one as soon as its worker hears of it.

    Example: qqueue cancel 01a2f3c4-0000-7000-8000-000000000000
    """
    from qqueue.store import queue as q

    tid = parse_id(task_id)
    client = api(ctx)
    outcome: str
    if client is not None:
        with talking(client):
            outcome = client.cancel(tid).status
    else:
        outcome = database.run(lambda conn: q.cancel(conn, tid))
    typer.echo("cancelled" if outcome == "cancelled" else "cancel requested; its worker will stop it")


@with_options
def stats(database: Database, as_json: AsJson = False) -> None:
    """Show every queue's counts and the live workers.

    Example: qqueue stats
    """
    from qqueue.store import reads

    queues, workers = database.run(lambda conn: ([wire(q) for q in reads.fetch(conn, reads.queue_stats())],
                                                 [wire(w) for w in reads.fetch(conn, reads.live_workers())]))
    if as_json:
        print_json({"queues": queues, "workers": workers})
        return
    from qqueue.console import table

    table(queues, ["queue", "pending", "due", "running", "completed", "failed", "cancelled", "oldest_due_age_s",
                   "completed_last_minute", "paused", "max_running"], title="queues")
    table(workers, ["hostname", "pid", "queues", "concurrency", "running_tasks", "heartbeat_age_s"],
          title="live workers")
