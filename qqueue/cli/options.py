"""The options and arguments several commands share, each declared once: where the database or the API is, the
`--json` switches, the task and job filters, `--wait`; and option bundles, several options as one parameter.

A command names its parameter with one of these types (`as_json: AsJson = False`); what the flag is called, its
help and its environment variable live only here. A bundle is a dataclass of such fields, derived from
`OptionBundle`: a command decorated with `with_options` takes one parameter of its type and gets one option per
field, in that place of its help, called with the options gathered into an instance.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast, get_type_hints

import typer

R = TypeVar("R")

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


@dataclasses.dataclass(frozen=True)
class OptionBundle:
    """The base of a dataclass whose fields (each typed with its option and given a default) are options that
    commands share as a group."""


def with_options(command: Callable[..., R]) -> Callable[..., R]:
    """Give `command` the options of each `OptionBundle` its parameters are typed with, where that parameter
    stands, and call it with them gathered into that bundle. The bundle's parameter has no default: where
    parameters with defaults come before it, it follows a `*` (its options then take that kind too)."""
    signature = inspect.signature(command, eval_str=True)
    bundles: dict[str, type[OptionBundle]] = {}
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        bundle = parameter.annotation
        if not (isinstance(bundle, type) and issubclass(bundle, OptionBundle)):
            parameters.append(parameter)
            continue
        bundles[parameter.name] = bundle
        hints = get_type_hints(bundle, include_extras=True)
        parameters.extend(inspect.Parameter(field.name, parameter.kind, default=field.default,
                                            annotation=hints[field.name]) for field in dataclasses.fields(bundle))

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        for name, bundle in bundles.items():
            kwargs[name] = bundle(**{field.name: kwargs.pop(field.name) for field in dataclasses.fields(bundle)})
        return command(*args, **kwargs)

    # typer reads a command's options from its signature, which this one now states.
    cast(Any, wrapper).__signature__ = signature.replace(parameters=parameters)
    return wrapper


@dataclasses.dataclass(frozen=True)
class TaskFilters(OptionBundle):
    """Which tasks: --status, --queue, --kind and --tag (what `ls` and `retry` select by)."""

    status: StatusFilter = None
    queue: QueueFilter = None
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None
    tag: TagFilter = None


@dataclasses.dataclass(frozen=True)
class TaskListing(TaskFilters):
    """What `ls` shows: the filters and --limit."""

    limit: Limit = 20


@dataclasses.dataclass(frozen=True)
class JobListing(TaskListing):
    """What `jobs ls` shows: the same filters, where the kind is a primitive's."""

    kind: Annotated[str | None, typer.Option(help="Only this primitive: sample or estimate.")] = None
