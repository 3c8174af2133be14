"""The commands that run and look after a qqueue installation: `migrate`, `worker`, `serve`, `dev`, `purge` and
`check`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from qqueue.cli.common import guard, parse_age, settings
from qqueue.cli.connect import Database, connected, url
from qqueue.cli.options import AsJson, Concurrency, DataDir, LogLevel, Queues, with_options


@with_options
def migrate(database: Database) -> None:
    """Apply pending schema migrations (safe to run twice, or from two places at once).

    Example: qqueue migrate --database-url postgresql://qqueue@db/qqueue
    """
    from qqueue.store import migrate as migrations

    where = url(database.settings(), create=True, migrate=False)  # migrated below, saying what it applied
    applied = connected(where, migrations.migrate)
    if applied:
        for m in applied:
            typer.echo(f"applied {m.version:04d}_{m.name}")
    else:
        typer.echo("schema is up to date")


@with_options
def worker(
    concurrency: Concurrency = None,
    queue: Queues = None,
    *,
    database: Database,
    lease_s: Annotated[float | None, typer.Option(help="Lease length; a dead worker's tasks return after it.")] = None,
    poll_interval_s: Annotated[float | None, typer.Option(help="Backstop poll when no notification comes.")] = None,
    grace_s: Annotated[float | None, typer.Option(help="On SIGTERM, how long running tasks may finish.")] = None,
    import_: Annotated[list[str] | None, typer.Option("--import", help="Module registering more task kinds.")] = None,
    retention: Annotated[str | None, typer.Option(help="Purge finished tasks older than this, e.g. 7d.")] = None,
    burst: Annotated[bool, typer.Option("--burst", help="Exit once nothing is due (drain and stop).")] = False,
    log_level: LogLevel = None,
) -> None:
    """Run a worker: one supervisor doing all database work and N slot processes running tasks.

    Example: qqueue worker --concurrency 4 --queue default --queue bulk
    """
    from qqueue.logs import setup_logging
    from qqueue.worker.supervisor import Supervisor

    config = database.settings(concurrency=concurrency, queues=queue, lease_s=lease_s,
                               poll_interval_s=poll_interval_s, grace_s=grace_s, imports=import_, log_level=log_level,
                               retention_s=guard(lambda: parse_age(retention)) if retention else None)
    setup_logging(config.log_level)
    # A service others may share (`qqueue serve` in one terminal, workers in others): it leaves the server running.
    where = url(config, keep_running=True)
    code = guard(lambda: Supervisor(config, where, burst=burst).run())
    raise typer.Exit(code)


@with_options
def serve(
    host: Annotated[str, typer.Option(envvar="QQUEUE_HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="QQUEUE_PORT", min=0, max=65535, help="TCP port.")] = 8000,
    *,
    database: Database,
    log_level: LogLevel = None,
    auth: Annotated[bool | None, typer.Option(
        "--auth/--no-auth", help="Require API keys (`qqueue keys create`) on every endpoint but /health; "
                                 "each tenant sees only its own tasks. Default: QQUEUE_API_AUTH, else off.")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /schema).

    Example: qqueue serve --host 0.0.0.0 --port 8000 --auth
    """
    from qqueue.api.serve import serve as serve_api

    config = database.settings(log_level=log_level, api_auth=auth)
    where = url(config, keep_running=True)
    guard(lambda: serve_api(config, where, host, port))


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
    config = settings(data_dir=data_dir, concurrency=concurrency, database_url=None, api_auth=False)
    setup_logging(config.log_level)
    raise typer.Exit(guard(lambda: local.run(config, port=port)))


@with_options
def purge(
    older_than: Annotated[str, typer.Option("--older-than", help="Age such as 7d, 12h, 30m or 3600 (seconds).")],
    database: Database,
) -> None:
    """Delete finished tasks (completed, failed, cancelled) older than an age, with their history.

    Example: qqueue purge --older-than 7d
    """
    from qqueue.store import queue as q

    seconds = guard(lambda: parse_age(older_than))
    purged = database.run(lambda conn: q.purge_finished(conn, older_than_s=seconds))
    typer.echo(f"purged {purged} finished tasks older than {older_than}")


@with_options
def check(database: Database, as_json: AsJson = False) -> None:
    """Prove the queue's invariants on the database: each task ends once, one completion per completed task,
    counts sum to shots, no older attempt overwrote a newer one. Exits 1 when any is broken.

    Example: qqueue check --json
    """
    import msgspec

    from qqueue.store.invariants import check as run_check

    report: Any = database.run(run_check)
    if as_json:
        typer.echo(msgspec.json.encode({"ok": report.ok, **msgspec.structs.asdict(report)}).decode())
    else:
        for v in report.violations:
            typer.echo(f"{v['task_id'] or 'job ' + str(v['job_id'])}  {v['violation']}")
        typer.echo(f"{'OK' if report.ok else 'BROKEN'}: {len(report.violations)} violations, "
                   f"{report.unfinished} tasks still pending or running")
    raise typer.Exit(0 if report.ok else 1)
