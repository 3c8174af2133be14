"""`qqueue jobs ls|get|cancel`: primitive jobs, which only the HTTP API of --api-url serves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from qqueue.cli.common import check_statuses, parse_id, print_json, wire
from qqueue.cli.connect import api, still_running, talking
from qqueue.cli.options import EXIT_STILL_RUNNING, AsJson, AsJsonArray, JobId, JobListing, WaitSeconds, with_options

if TYPE_CHECKING:
    from qqueue.client import Client

app = typer.Typer(help="Primitive jobs (many PUBs under one id), through the HTTP API: needs --api-url.",
                  no_args_is_help=True)


@app.command("ls")
@with_options
def jobs_list(ctx: typer.Context, listing: JobListing, as_json: AsJsonArray = False) -> None:
    """List jobs, newest first.

    Example: qqueue --api-url http://127.0.0.1:8000 jobs ls --status running
    """
    from typing import get_args

    from qqueue.api.schemas import JobStatus

    check_statuses(listing.status, list(get_args(JobStatus)))
    with talking(_jobs_api(ctx, "qqueue jobs ls")) as client:
        page = client.list_jobs(status=listing.status, queue=listing.queue, kind=listing.kind, tags=listing.tag,
                                limit=listing.limit)
    values = [wire(j) for j in page.items]
    if as_json:
        print_json(values)
        return
    from qqueue.console import table

    for row in values:
        row["tasks"] = f"{row['tasks_done']}/{row['tasks_total']}"
    table(values, ["job_id", "status", "kind", "pubs", "tasks", "queue", "created_at", "finished_at"])


@app.command("get")
def jobs_get(ctx: typer.Context, job_id: JobId, wait: WaitSeconds = None, as_json: AsJson = False) -> None:
    """Show a job: status, progress, failures, results and its webhooks; with --wait, once it has ended (exits 1
    when it failed or was cancelled, 3 when the wait ran out first).

    Example: qqueue --api-url http://127.0.0.1:8000 jobs get 01a2f3c4-0000-7000-8000-000000000000 --wait 60
    """
    from qqueue.client import WaitTimeoutError
    from qqueue.tasks import TERMINAL_STATUSES

    jid = parse_id(job_id)
    with talking(_jobs_api(ctx, "qqueue jobs get")) as client:
        try:
            job = client.get_job(jid) if wait is None else client.wait_job(jid, timeout=wait)
        except WaitTimeoutError as exc:
            job = exc.last
        deliveries = client.job_webhooks(jid) if job.callback_url and not as_json else []
    if as_json:
        print_json(wire(job))
    else:
        from qqueue.console import webhooks

        _job_details(job)
        webhooks(job.callback_url, wire(deliveries))
    if wait is not None and job.status not in TERMINAL_STATUSES:
        still_running(ctx, "job", jid, job.status, wait)
        raise typer.Exit(EXIT_STILL_RUNNING)
    raise typer.Exit(1 if wait is not None and job.status != "completed" else 0)


@app.command("cancel")
def jobs_cancel(ctx: typer.Context, job_id: JobId) -> None:
    """Cancel a job: its pending tasks at once, its running ones as soon as their workers hear of it.

    Example: qqueue --api-url http://127.0.0.1:8000 jobs cancel 01a2f3c4-0000-7000-8000-000000000000
    """
    jid = parse_id(job_id)
    with talking(_jobs_api(ctx, "qqueue jobs cancel")) as client:
        answer = client.cancel_job(jid)
    typer.echo(f"cancelled {answer.cancelled} tasks; asked {answer.cancel_requested} running ones to stop")


def _jobs_api(ctx: typer.Context, command: str) -> Client:
    client = api(ctx, only_remote=command)
    assert client is not None
    return client


def _job_details(job: Any) -> None:
    """Print one job: its facts, progress, what failed and the results."""
    from qqueue.console import console, table

    p = job.progress
    console.print(f"[bold]{job.job_id}[/bold]  {job.status}  kind={job.kind} pubs={job.pubs} queue={job.queue} "
                  f"tasks={p.tasks_done}/{p.tasks_total} (pending {p.pending}, running {p.running}, "
                  f"completed {p.completed}, failed {p.failed}, cancelled {p.cancelled})")
    console.print(job.message)
    if job.failures:
        rows = [{**wire(f), "error": (f.error or {}).get("message")} for f in job.failures]
        table(rows, ["pub", "part", "task_id", "status", "error"], title="failures")
    if job.results is not None:
        console.print_json(data=wire(job.results))
