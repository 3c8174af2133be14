"""The commands that look at tasks and queues, on the database or through --api-url: `get`, `ls`, `cancel`,
`retry` and `stats`. Both ways print the API's shapes."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qqueue.cli.common import as_row, check_statuses, fail, parse_id, print_json, wire
from qqueue.cli.connect import Database, api, talking
from qqueue.cli.options import AsJson, AsJsonArray, TaskFilters, TaskId, TaskListing, with_options

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
    """Show a task: status, history, error, its webhooks, and its counts as a histogram.

    Example: qqueue get 01a2f3c4-0000-7000-8000-000000000000
    """
    tid = parse_id(task_id)
    client = api(ctx)
    if client is not None:
        with talking(client):
            detail = client.get(tid)
            deliveries = client.webhooks(tid) if detail.callback_url and not as_json else []
    else:
        detail, deliveries = database.run(lambda conn: _with_webhooks(conn, task_detail(conn, tid), as_json))
    task, value = as_row(detail), wire(detail)
    if as_json:
        print_json(value)
    else:
        from qqueue.console import task_details, webhooks

        task_details(task)
        webhooks(detail.callback_url, wire(deliveries))


def _with_webhooks(conn: Any, detail: TaskDetail, as_json: bool) -> tuple[TaskDetail, list[Any]]:
    """The task and, for the terminal, its webhook deliveries when it has a callback."""
    from qqueue.store import reads

    if not detail.callback_url or as_json:
        return detail, []
    return detail, reads.fetch(conn, reads.task_webhooks(detail.task_id))


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
def retry(
    ctx: typer.Context,
    task_ids: Annotated[list[str] | None, typer.Argument(help="Tasks to retry; or select them with the filters.",
                                                         show_default=False)] = None,
    *,
    filters: TaskFilters,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count and list what would be retried; change nothing."
                                          )] = False,
    reason: Annotated[str | None, typer.Option(help="Why, kept in each task's history.")] = None,
    database: Database,
    as_json: AsJson = False,
) -> None:
    """Send failed or cancelled tasks back to pending, with as many attempts again as they were submitted with.

    By id, or every task matching the filters (--status failed by default; failed or cancelled only), oldest
    first, at most 1,000 per run: run it again while it says more match.
    Examples: qqueue retry 01a2f3c4-0000-7000-8000-000000000000; qqueue retry --status failed --tag nightly --dry-run
    """
    if reason is not None and not 1 <= len(reason) <= 200:
        fail("--reason is 1-200 characters")
    selecting = any(v is not None for v in (filters.status, filters.queue, filters.kind, filters.tag))
    if task_ids and selecting:
        fail("give task ids or filters (--status, --queue, --kind, --tag), not both")
    if task_ids:
        if dry_run:
            fail("--dry-run is for filters; a retry by id changes only the tasks named")
        _retry_ids(ctx, [parse_id(t) for t in task_ids], reason, database, as_json)
    elif selecting:
        _retry_matching(ctx, filters, dry_run, reason, database, as_json)
    else:
        fail("give the ids of the tasks to retry, or select them with --status, --queue, --kind or --tag")


def _retry_ids(ctx: typer.Context, ids: list[Any], reason: str | None, database: Database, as_json: bool) -> None:
    """Retry these tasks, each told apart: retried (from which status) or why not; exit 1 if any was not."""
    from qqueue.errors import QQueueError
    from qqueue.store import queue as q
    from qqueue.store.retries import RetryFilter

    outcomes: dict[Any, str | QQueueError] = {}
    client = api(ctx)
    if client is not None:
        from qqueue.client import ApiError

        with talking(client):
            for tid in ids:
                try:
                    outcomes[tid] = client.retry(tid, reason=reason).previous_status
                except ApiError as exc:
                    outcomes[tid] = QQueueError(exc.message)
    else:
        result = database.run(lambda conn: q.retry_many(conn, RetryFilter(ids=ids), note=_local_note(reason)))
        for tid in ids:
            try:
                outcomes[tid] = result.outcome_of(tid)
            except QQueueError as exc:
                outcomes[tid] = exc
    if as_json:
        print_json({str(t): o if isinstance(o, str) else {"error": o.message} for t, o in outcomes.items()})
    for tid, outcome in outcomes.items():
        if isinstance(outcome, str):
            if not as_json:
                typer.echo(f"{tid}: queued again (it was {outcome})")
        else:
            typer.secho(f"error: {tid}: {outcome.message}", err=True, fg=typer.colors.RED)
    if any(not isinstance(o, str) for o in outcomes.values()):
        raise typer.Exit(1)


def _retry_matching(
    ctx: typer.Context, filters: TaskFilters, dry_run: bool, reason: str | None, database: Database, as_json: bool
) -> None:
    """One bounded batch of the tasks matching `filters`, retried (or counted, with `dry_run`)."""
    from qqueue.api.schemas import MAX_RETRY_BATCH, BulkRetryAnswer
    from qqueue.store import queue as q
    from qqueue.store.retries import RetryFilter, bulk_answer

    statuses = filters.status or ["failed"]
    if wrong := [s for s in statuses if s not in ("failed", "cancelled")]:
        fail(f"only failed or cancelled tasks can be retried, not {', '.join(map(repr, wrong))}")
    answer: BulkRetryAnswer
    client = api(ctx)
    if client is not None:
        with talking(client):
            answer = client.retry_many(status=statuses, queue=filters.queue, kind=filters.kind, tags=filters.tag,
                                       dry_run=dry_run, reason=reason)
    else:
        where = RetryFilter(statuses=statuses, queue=filters.queue, kind=filters.kind, tags=filters.tag)
        answer = bulk_answer(database.run(lambda conn: q.retry_many(
            conn, where, note=_local_note(reason), dry_run=dry_run, limit=MAX_RETRY_BATCH)), MAX_RETRY_BATCH)
    if as_json:
        print_json(wire(answer))
        return
    typer.echo(answer.message)
    for tid in answer.task_ids:
        typer.echo(str(tid))


def _local_note(reason: str | None) -> str:
    """The history note of a retry made on the database itself: who ran the command, and why."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        user = "an unnamed user"
    note = f"retried with `qqueue retry` by {user}"
    return f"{note}: {reason}" if reason else note


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
