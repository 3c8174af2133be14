"""`qqueue bench queue|circuits|sweep|http|growth`: measurements on this machine, each on a database of its own
unless told which, printed as aligned figures or one JSON object."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import Annotated, Any

import typer

from qqueue.cli.common import guard, note, parse_age
from qqueue.cli.connect import Database, connected, exit_on_sigterm, url
from qqueue.cli.options import AsJson, with_options

app = typer.Typer(help="Measure qqueue on this machine.", no_args_is_help=True)

#: A benchmark bound to all its options but the database URL; answers its figures.
Measurement = Callable[[str], dict[str, Any]]


@app.command("queue")
@with_options
def bench_queue(
    tasks: Annotated[int, typer.Option(min=100, help="No-op tasks to enqueue and drain.")] = 20_000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    concurrency: Annotated[int, typer.Option(min=1, help="Slots per worker.")] = 1,
    pickups: Annotated[int, typer.Option(min=5, help="Single tasks timed on an idle queue.")] = 100,
    finished_rows: Annotated[int, typer.Option(
        min=0, help="Also drain before and after writing this many finished tasks into the table; report both.")] = 0,
    rounds: Annotated[int, typer.Option(min=1, help="Drains per table state with --finished-rows (median).")] = 3,
    *,
    database: Database,
    as_json: AsJson = False,
) -> None:
    """Enqueue and drain no-op tasks through real workers; print enqueue/s, drain/s and pickup latency.

    Example: qqueue bench queue --tasks 20000 --workers 2 --json
    """
    from qqueue.bench.queue import run_queue_bench

    _measure(database, as_json, partial(run_queue_bench, tasks=tasks, workers=workers, concurrency=concurrency,
                                        pickups=pickups, finished_rows=finished_rows, rounds=rounds))


@app.command("circuits")
@with_options
def bench_circuits(
    tasks: Annotated[int, typer.Option(min=10, help="Bell tasks to drain end to end.")] = 3000,
    concurrency: Annotated[int, typer.Option(min=1, help="Slots of the one worker.")] = 2,
    shots: Annotated[int, typer.Option(min=1, max=100_000, help="Shots per circuit.")] = 1024,
    *,
    database: Database,
    as_json: AsJson = False,
) -> None:
    """Bell circuits: in-process cost per circuit (the limit) and end-to-end tasks/s through the queue.

    Example: qqueue bench circuits --tasks 3000 --concurrency 2 --json
    """
    from qqueue.bench.circuits import run_circuits_bench

    _measure(database, as_json, partial(run_circuits_bench, tasks=tasks, concurrency=concurrency, shots=shots))


@app.command("sweep")
@with_options
def bench_sweep(
    sets: Annotated[int, typer.Option(min=10, max=100_000, help="Parameter sets of the one PUB.")] = 1000,
    qubits: Annotated[int, typer.Option(min=2, max=20, help="Qubits of the ansatz.")] = 8,
    layers: Annotated[int, typer.Option(min=1, max=20, help="Layers of the ansatz (2 x qubits parameters each).")] = 3,
    chunk_size: Annotated[int, typer.Option(min=1, help="Parameter sets per task.")] = 250,
    rounds: Annotated[int, typer.Option(min=1, max=20, help="Interleaved rounds; medians are reported.")] = 3,
    *,
    database: Database,
    as_json: AsJson = False,
) -> None:
    """An estimator sweep: sets/s of Aer's EstimatorV2 in-process (the limit) and through qqueue with one and
    with two workers, side by side.

    Example: qqueue bench sweep --sets 1000 --chunk-size 250 --json
    """
    from qqueue.bench.sweep import run_sweep_bench

    _measure(database, as_json, partial(run_sweep_bench, sets=sets, qubits=qubits, layers=layers,
                                        chunk_size=chunk_size, rounds=rounds))


@app.command("http")
@with_options
def bench_http(
    tasks: Annotated[int, typer.Option(min=10, help="Bell circuits to submit and wait for.")] = 2000,
    concurrency: Annotated[int, typer.Option(min=1, help="Client loops submitting at once.")] = 16,
    rate: Annotated[float | None, typer.Option(min=1, help="Open-loop submit rate (requests/s).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one slot each) to start.")] = 2,
    qasm: Annotated[int, typer.Option(min=2, max=3, help="OpenQASM version of the Bell circuit submitted.")] = 3,
    hostile: Annotated[float | None, typer.Option(min=0.1, help="Hostile requests per second sent beside the load "
                                                              "(definition bombs, huge registers, …).")] = None,
    url: Annotated[str | None, typer.Option(help="A running API to load instead of starting one.")] = None,
    *,
    database: Database,
    as_json: AsJson = False,
) -> None:
    """Bell circuits over HTTP: submit req/s, POST latency, completed tasks/s, end-to-end latency.

    Example: qqueue bench http --tasks 2000 --concurrency 16 --json
             qqueue bench http --tasks 1000 --concurrency 8 --rate 100 --hostile 2
    """
    from qqueue.bench.http import run_http_bench

    run = partial(run_http_bench, tasks=tasks, concurrency=concurrency, rate=rate, workers=workers, qasm=qasm,
                  hostile=hostile)
    if url is not None:  # the API's own database is its business
        _print_figures(guard(lambda: run(None, url=url)), as_json)
    else:
        _measure(database, as_json, partial(run, url=None))


@app.command("growth")
@with_options
def bench_growth(
    minutes: Annotated[float, typer.Option(min=0.5, help="How long to run the steady load.")] = 5.0,
    rate: Annotated[float, typer.Option(min=1, help="No-op tasks enqueued per second.")] = 500.0,
    retention: Annotated[str, typer.Option(help="Workers purge finished tasks older than this.")] = "60s",
    *,
    database: Database,
    as_json: AsJson = False,
) -> None:
    """Steady load with retention: table size sampled over time, to show it stays flat. Purges every
    finished task past the retention, so use a database of its own (the default: a temporary one).

    Example: qqueue bench growth --minutes 5 --rate 500 --retention 60s
    """
    from qqueue.bench.growth import run_growth_bench

    retention_s = guard(lambda: parse_age(retention))
    _measure(database, as_json, partial(run_growth_bench, minutes=minutes, rate=rate, retention_s=retention_s))


def _measure(database: Database, as_json: bool, measurement: Measurement) -> None:
    """Run `measurement` on the benchmark's database (see `_bench_database`) and print its figures."""
    with _bench_database(database) as where:
        figures = guard(lambda: measurement(where))
    _print_figures(figures, as_json)


@contextmanager
def _bench_database(database: Database) -> Iterator[str]:
    """The database a benchmark runs on: --database-url; else the embedded one of a --data-dir given (which must
    exist); else a temporary embedded PostgreSQL made for this run and deleted after it. Benchmarks fill tables
    with their tasks (and `bench growth` purges finished ones): they must not do so to `qqueue dev`'s data
    just because no database was named."""
    settings = database.settings()
    if settings.database_url or database.data_dir is not None:
        yield url(settings)
        return
    from qqueue import embedded
    from qqueue.store import migrate as migrations

    exit_on_sigterm()
    with ExitStack() as stack:
        folder, where = guard(lambda: stack.enter_context(embedded.temporary(prefix="qqueue-bench-pg-")))
        note(f"no --database-url or --data-dir: measuring on a temporary embedded PostgreSQL in {folder}, "
             "stopped and deleted when this command ends")
        connected(where, migrations.migrate)
        yield where


def _print_figures(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        for key, value in figures.items():
            typer.echo(f"{key:>28}: {value}")
