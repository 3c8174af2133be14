"""Database access: the named queries from sql/queries, connections with safe session settings,
and the one place psycopg errors become qqueue errors."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import msgspec
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads

from qqueue.errors import DatabaseUnavailableError

Fetch = Literal["one", "many", "exec"]

# msgspec is several times faster than the json module on the payloads and results we move in bulk.
set_json_loads(msgspec.json.decode)
set_json_dumps(msgspec.json.encode)

_HEADER = re.compile(r"^-- name: (?P<name>[a-z_]+) :(?P<fetch>one|many|exec)\s*$", re.MULTILINE)


def sql_dir() -> Path:
    """Where the sql/ folder is: inside an installed wheel, or at the top of a checkout."""
    package = Path(__file__).parent.parent
    packaged = package / "_sql"
    return packaged if packaged.is_dir() else package.parent / "sql"


@dataclass(frozen=True, slots=True)
class Query:
    """One named SQL statement and how its rows are fetched."""

    name: str
    fetch: Fetch
    sql: str


def parse_queries(text: str) -> dict[str, Query]:
    """Split a queries file on its `-- name: NAME :FETCH` headers."""
    queries: dict[str, Query] = {}
    matches = list(_HEADER.finditer(text))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        body = text[match.end() : following.start() if following else len(text)].strip()
        name = match["name"]
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = Query(name, match["fetch"], body)  # type: ignore[arg-type]
    return queries


@cache
def queries() -> dict[str, Query]:
    """All named queries of sql/queries/*.sql, loaded once."""
    found: dict[str, Query] = {}
    for path in sorted((sql_dir() / "queries").glob("*.sql")):
        for name, query in parse_queries(path.read_text()).items():
            if name in found:
                raise ValueError(f"query {name!r} is defined in two files")
            found[name] = query
    return found


def run(conn: psycopg.Connection[Any], query_name: str, /, **params: Any) -> Any:
    """Execute the named query; return one row (or None), all rows, or None, as its header says.

    Connection-level failures are raised as `DatabaseUnavailableError` so callers can reconnect.
    """
    query = queries()[query_name]
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query.sql.encode(), params or None)
            if query.fetch == "one":
                return cur.fetchone()
            if query.fetch == "many":
                return cur.fetchall()
            return None
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(f"database error: {exc}".strip()) from exc


async def run_async(conn: psycopg.AsyncConnection[Any], query_name: str, /, **params: Any) -> Any:
    """The async twin of `run`, for the HTTP API."""
    query = queries()[query_name]
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query.sql.encode(), params or None)
            if query.fetch == "one":
                return await cur.fetchone()
            if query.fetch == "many":
                return await cur.fetchall()
            return None
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(f"database error: {exc}".strip()) from exc


def session_options(statement_timeout_s: float, idle_in_transaction_timeout_s: float, *,
                    generic_plans: bool = False) -> str:
    """libpq `options` that bound every session: no statement runs, and no transaction idles, forever.

    `generic_plans`: prepared statements keep one plan (`plan_cache_mode`), for sessions that run the same few
    statements thousands of times (a worker's). PostgreSQL otherwise goes on planning the claim afresh at every
    execution, since its generic plan's estimate (an array and a limit of unknown size) never beats a custom
    one: that planning was about half of a claim's time on an idle queue.
    """
    options = (
        f"-c statement_timeout={int(statement_timeout_s * 1000)} "
        f"-c idle_in_transaction_session_timeout={int(idle_in_transaction_timeout_s * 1000)}"
    )
    return f"{options} -c plan_cache_mode=force_generic_plan" if generic_plans else options


def connect(
    url: str,
    *,
    application_name: str = "qqueue",
    statement_timeout_s: float = 30.0,
    idle_in_transaction_timeout_s: float = 60.0,
    connect_timeout_s: int = 10,
    generic_plans: bool = False,
) -> psycopg.Connection[Any]:
    """Open an autocommit connection: every named query is one statement, hence its own transaction.
    `generic_plans` as in `session_options`."""
    try:
        return psycopg.connect(
            url,
            autocommit=True,
            application_name=f"{application_name}@{socket.gethostname()}"[:63],
            options=session_options(statement_timeout_s, idle_in_transaction_timeout_s, generic_plans=generic_plans),
            connect_timeout=connect_timeout_s,
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(f"cannot connect to the database: {_first_line(exc)}") from exc


@contextmanager
def connection(url: str, **kwargs: Any) -> Iterator[psycopg.Connection[Any]]:
    """`connect` as a context manager that always closes."""
    conn = connect(url, **kwargs)
    try:
        yield conn
    finally:
        conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
