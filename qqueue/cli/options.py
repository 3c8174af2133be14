"""The options and arguments several commands share, each declared once: where the database or the API is, the
`--json` switches, the task and job filters, `--wait`.

A command names its parameter with one of these types (`as_json: AsJson = False`); what the flag is called, its
help and its environment variable live only here.
"""

from __future__ import annotations

from typing import Annotated

import typer

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", envvar="QQUEUE_DATABASE_URL", show_envvar=True,
                 help="PostgreSQL URL. Unset: the embedded PostgreSQL under --data-dir."),
]
DataDir = Annotated[
    str | None,
    typer.Option("--data-dir", envvar="QQUEUE_DATA_DIR", show_envvar=True,
                 help="Data folder of the embedded PostgreSQL (kept across restarts)."),
]
ApiUrl = Annotated[
    str | None,
    typer.Option("--api-url", envvar="QQUEUE_API_URL", show_envvar=True,
                 help="A qqueue HTTP API, e.g. http://127.0.0.1:8000: submit, get, ls, cancel and jobs go through "
                      "it instead of the database."),
]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", envvar="QQUEUE_API_KEY", show_envvar=True,
                 help="API key for --api-url (servers started with --auth)."),
]

AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
AsJsonArray = Annotated[bool, typer.Option("--json", help="Print a JSON array.")]
AsJsonList = Annotated[bool, typer.Option("--json", help="Print JSON.")]

Concurrency = Annotated[
    int | None, typer.Option("--concurrency", "-c", min=1, max=1024, help="Slot processes (default: CPU cores).")
]
Queues = Annotated[list[str] | None, typer.Option("--queue", "-q", help="Queue to consume; repeat for several.")]
LogLevel = Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")]

TaskId = Annotated[str, typer.Argument(help="The task's id.")]
JobId = Annotated[str, typer.Argument(help="The job's id.")]
StatusFilter = Annotated[list[str] | None, typer.Option("--status", help="Only this status; repeat for several.")]
QueueFilter = Annotated[str | None, typer.Option(help="Only this queue.")]
TagFilter = Annotated[list[str] | None, typer.Option("--tag", help="Only those with this tag; repeat: all must match.")]
Limit = Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")]

#: Exit status of `submit --wait` and `jobs get --wait` when the wait ran out before the task (or job) ended.
EXIT_STILL_RUNNING = 3
WaitSeconds = Annotated[
    float | None,
    typer.Option("--wait", min=0,
                 help=f"Wait up to this many seconds for it to end; exits {EXIT_STILL_RUNNING} if it has not."),
]
