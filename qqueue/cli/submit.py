"""`qqueue submit`: read circuit files, queue them in one batch on the database or through --api-url, and with
--wait show how each task ended."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qqueue.cli.common import as_row, fail, guard, note, print_json, wire
from qqueue.cli.connect import Database, api, connected, still_running, talking, url
from qqueue.cli.options import EXIT_STILL_RUNNING, WaitSeconds, with_options
from qqueue.cli.tasks import task_detail
from qqueue.config import Settings
from qqueue.errors import QQueueError

if TYPE_CHECKING:
    from qqueue.api.schemas import TaskDetail
    from qqueue.client import Client

#: One file's fate at submit: its task id or why it was refused, and what --json prints for it.
Submitted = tuple[str, Any, str | None, Any]


@with_options
def submit(
    ctx: typer.Context,
    files: Annotated[list[str], typer.Argument(help="OpenQASM 2 or 3 files, queued together; - for standard input.")],
    shots: Annotated[int, typer.Option(help="Shots (1-100,000).")] = 1024,
    kind: Annotated[str, typer.Option(help="simulate, transpile or convert.")] = "simulate",
    queue: Annotated[str, typer.Option(help="Queue to put it on.")] = "default",
    priority: Annotated[int, typer.Option(min=-100, max=100, help="Higher runs first.")] = 0,
    seed: Annotated[int | None, typer.Option(help="Simulator seed, for reproducible counts.")] = None,
    method: Annotated[str | None, typer.Option(help="Aer method, e.g. statevector or stabilizer.")] = None,
    backend: Annotated[str | None, typer.Option(help="Fake IBM device to run with noise, e.g. fake_manila.")] = None,
    target: Annotated[str | None, typer.Option(help="For convert: qasm2, qasm3 or qir.")] = None,
    measure_all: Annotated[bool, typer.Option("--measure-all", help="Measure every qubit at the end.")] = False,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag the tasks; repeat for several.")] = None,
    metadata: Annotated[
        str | None, typer.Option(help="A JSON object kept with each task, e.g. '{\"run\": 7}'.")
    ] = None,
    delay: Annotated[float | None, typer.Option(min=0, help="Start no sooner than this many seconds from now.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Time limit of each attempt, in seconds (default: the "
                                                       "worker's).")] = None,
    max_attempts: Annotated[int, typer.Option(min=1, max=100, help="Tries before a task fails for good.")] = 3,
    idempotency_key: Annotated[str | None, typer.Option(
        help="Submitting again with this key queues nothing new (several files: KEY/0, KEY/1, …).")] = None,
    callback_url: Annotated[str | None, typer.Option(
        help="POST a signed notice here when each task ends (see the README, \"Webhooks\").")] = None,
    wait: WaitSeconds = None,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="With --wait, for convert and transpile: write the program it returns here.")] = None,
    *,
    database: Database,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (an array for several files).")
    ] = False,
) -> None:
    """Submit circuits, one task each, in one batch; with --wait, show each one's counts as a histogram when done.

    Prints one task id a line, in the order of the files. A file that is refused is named on stderr while the
    others are queued. Exits 1 when a file was refused or a task failed or was cancelled, else 3 when --wait
    ran out before every task ended. With --api-url, goes through the HTTP API instead of the database.

    Example: qqueue submit bell.qasm ghz.qasm --shots 1000 --tag nightly --wait 30
    """
    if output is not None and (wait is None or len(files) != 1):
        fail("--output writes the result of one task: give one file and --wait")
    if output is not None and kind not in ("convert", "transpile"):
        fail("--output writes the program a convert or transpile task returns; for other results use --json")
    if timeout is not None and timeout <= 0:
        fail("--timeout must be more than 0 seconds")
    sources = _read_sources(files)
    options = {"seed": seed, "method": method, "backend": backend, "target": target, "measure_all": measure_all}
    # What every task of the command shares, named as both TaskSubmission and TaskSpec name it.
    common: dict[str, Any] = {"queue": queue, "priority": priority, "tags": tag or [], "delay_s": delay,
                              "timeout_s": timeout, "max_attempts": max_attempts}
    if metadata is not None:
        common["metadata"] = _metadata(metadata)
    if callback_url is not None:
        common["callback_url"] = callback_url
    client = api(ctx)
    if client is not None:
        with talking(client):
            done = _submit_remote(client, files, sources, kind, shots, options, common, idempotency_key)
            _report_submitted(ctx, done, wait, _remote_look(client), output, as_json)
        return
    done, database_url = _submit_local(database.settings(), files, sources, kind, shots, options, common,
                                       idempotency_key)
    _report_submitted(ctx, done, wait, _local_look(database_url), output, as_json)


def _read_sources(files: list[str]) -> list[bytes]:
    """Each file's bytes; a file over the source limit (or an endless pipe) is refused, never read whole."""
    from qqueue.intake.model import IntakeLimits

    if files.count("-") > 1:
        fail("standard input (-) can be read only once")
    limit = IntakeLimits().max_source_bytes
    sources = []
    for file in files:
        try:
            with (open(file, "rb") if file != "-" else open(sys.stdin.fileno(), "rb", closefd=False)) as stream:
                source = stream.read(limit + 1)
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror}")
        if len(source) > limit:
            fail(f"{file} is larger than {limit} bytes, the limit for a circuit's source")
        sources.append(source)
    return sources


def _metadata(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        fail(f"--metadata is not JSON: {exc}")
    if not isinstance(value, dict):
        fail("--metadata must be a JSON object, e.g. '{\"run\": 7}'")
    return value


def _item_key(key: str | None, index: int, count: int) -> str | None:
    """Item `index`'s Idempotency-Key, as POST /tasks/batch derives them, so both paths key a batch alike."""
    return key if key is None or count == 1 else f"{key}/{index}"


def _submit_remote(client: Client, files: list[str], sources: list[bytes], kind: str, shots: int,
                   options: dict[str, Any], common: dict[str, Any], key: str | None) -> list[Submitted]:
    from qqueue.api.schemas import SimulationOptions, TaskSubmission

    texts = []
    for file, source in zip(files, sources, strict=True):
        try:
            texts.append(source.decode("utf-8"))
        except UnicodeDecodeError as exc:
            fail(f"{file} is not UTF-8 text ({exc.reason} at byte {exc.start})")
    opts = SimulationOptions(**options)
    if len(files) == 1:
        answer = client.submit(texts[0], kind=kind, shots=shots, options=opts, idempotency_key=key, **common)
        return [(files[0], answer.task_id, None, wire(answer))]
    batch = client.submit_many([TaskSubmission(qc=text, kind=kind, shots=shots, options=opts, **common)
                             for text in texts], idempotency_key=key)
    done: list[Submitted] = []
    for file, item in zip(files, batch.items, strict=True):
        error = None
        if item.error is not None:
            where = f" (line {item.error.line}, column {item.error.column})" if item.error.line is not None else ""
            error = item.error.message + where
        done.append((file, item.task_id, error, {"file": file, **wire(item)}))
    return done


def _submit_local(settings: Settings, files: list[str], sources: list[bytes], kind: str, shots: int,
                  options: dict[str, Any], common: dict[str, Any], key: str | None) -> tuple[list[Submitted], str]:
    """Prepare each file here and queue those that pass in one statement, as POST /tasks/batch does."""
    from qqueue.errors import IntakeError
    from qqueue.intake import prepare
    from qqueue.store import queue as q
    from qqueue.tasks import TaskSpec

    limit_s = common["timeout_s"] or settings.default_timeout_s
    if common.get("callback_url") is not None:
        _check_callback(common["callback_url"], settings)
    specs: dict[int, TaskSpec] = {}
    refused: dict[int, str] = {}
    for index, source in enumerate(sources):
        if len(files) == 1:  # one file: its refusal is the command's error, as it always was
            prepared = guard(partial(prepare, source, kind=kind, shots=shots, options=options, timeout_s=limit_s))
        else:
            try:
                prepared = prepare(source, kind=kind, shots=shots, options=options, timeout_s=limit_s)
            except IntakeError as exc:
                where = f" (line {exc.line}, column {exc.column})" if exc.line is not None else ""
                refused[index] = exc.message + where
                continue
            except QQueueError as exc:
                fail(exc.message)
        specs[index] = TaskSpec(kind=kind, payload=prepared.payload, profile=prepared.profile,
                                cache_key=prepared.cache_key, idempotency_key=_item_key(key, index, len(files)),
                                **common)
    database_url = url(settings)
    queued = connected(database_url, lambda conn: q.enqueue_many(conn, list(specs.values()))) if specs else []
    ids = dict(zip(specs, (t.id for t in queued), strict=True))
    done: list[Submitted] = []
    for index, file in enumerate(files):
        value: dict[str, Any] = {"task_id": ids[index], "status": "pending"} if index in ids else {
            "error": refused[index]}
        done.append((file, ids.get(index), refused.get(index), value if len(files) == 1 else {"file": file, **value}))
    return done, database_url


def _check_callback(url: str, settings: Settings) -> None:
    """What the API checks of a callback URL, here: its form, and every address its host resolves to."""
    from qqueue.webhooks import targets

    try:
        targets.checked(targets.allow_list(tuple(settings.webhook_allow)), targets.parse(url))
    except targets.TargetRefused as exc:
        fail(exc.message)


#: Waits for one task up to some seconds; answers its row for the terminal and its value for --json.
Look = Callable[[Any, float], tuple[dict[str, Any], Any]]


def _remote_look(client: Client) -> Look:
    def look(task_id: Any, seconds: float) -> tuple[dict[str, Any], Any]:
        from qqueue.client import WaitTimeoutError

        try:
            detail = client.wait(task_id, timeout=seconds)
        except WaitTimeoutError as exc:
            detail = exc.last
        return as_row(detail), wire(detail)

    return look


def _local_look(database_url: str) -> Look:
    from qqueue.store import queue as q

    def look(task_id: Any, seconds: float) -> tuple[dict[str, Any], Any]:
        def until_done(conn: Any) -> TaskDetail:
            q.wait_finished(conn, task_id, timeout_s=seconds)
            return task_detail(conn, task_id)

        detail = connected(database_url, until_done)
        return as_row(detail), wire(detail)

    return look


def _report_submitted(ctx: typer.Context, done: list[Submitted], wait: float | None, look: Look,
                      output: str | None, as_json: bool) -> None:
    """Print what `submit` queued (with --wait, how each task ended) and exit with the command's status."""
    import time

    for file, _, error, _ in done:
        if error is not None:
            typer.secho(f"error: {file}: {error}", err=True, fg=typer.colors.RED)
    code = 1 if any(error is not None for _, _, error, _ in done) else 0
    values = [value for *_, value in done]
    if wait is None:
        if as_json:
            print_json(values[0] if len(done) == 1 else values)
        else:
            for _, task_id, _, _ in done:
                if task_id is not None:
                    typer.echo(task_id)
        raise typer.Exit(code)
    from qqueue.console import console, task_details

    deadline = time.monotonic() + wait
    for position, (_, task_id, _, _) in enumerate(done):
        if task_id is None:
            continue
        with console.status(f"waiting for {task_id}…"):
            task, values[position] = look(task_id, max(0.0, deadline - time.monotonic()))
        if not as_json:
            task_details(task)
        status = str(task["status"])
        if status in ("failed", "cancelled"):
            code = 1
        elif status != "completed":
            still_running(ctx, "task", task_id, status, wait)
            code = code or EXIT_STILL_RUNNING
        elif output is not None:
            _write_output(output, task)
    if as_json:
        print_json(values[0] if len(done) == 1 else values)
    raise typer.Exit(code)


def _write_output(path: str, task: dict[str, Any]) -> None:
    """The program text a convert (`source`) or transpile (`qasm3`) result holds, written to `path`."""
    result = task.get("result")
    text = (result.get("source") or result.get("qasm3")) if isinstance(result, dict) else None
    if not isinstance(text, str):
        fail(f"the result of task {task['id']} holds no program text to write to {path}")
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")
    note(f"wrote the {task['kind']} result of {task['id']} to {path}")
