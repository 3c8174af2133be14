"""Every connection qqueue opens bounds its statements and its idle transactions, so a stuck query or an
abandoned transaction can never pin rows of the queue (and keep vacuum from reclaiming them) for long."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from qqueue.api.context import ApiContext
from qqueue.config import load_settings
from qqueue.store import db
from qqueue.worker.supervisor import Supervisor


def bounds(conn: psycopg.Connection[Any]) -> tuple[str, str]:
    row = conn.execute("SELECT current_setting('statement_timeout'), "
                       "current_setting('idle_in_transaction_session_timeout')").fetchone()
    return row[0], row[1]


def test_cli_and_library_connections_are_bounded(db_url):
    with db.connection(db_url) as conn:
        assert bounds(conn) == ("30s", "1min")
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SET statement_timeout = '50ms'; SELECT pg_sleep(5)")


def test_worker_connections_are_bounded_by_the_settings(db_url):
    supervisor = Supervisor(load_settings(env={}, statement_timeout_s=7, idle_in_transaction_timeout_s=11), db_url)
    supervisor._connect()
    try:
        assert bounds(supervisor.conn) == bounds(supervisor.listen_conn) == ("7s", "11s")
    finally:
        supervisor.close()


def test_api_pool_and_listen_connections_are_bounded_by_the_settings(db_url):
    context = ApiContext(load_settings(env={}, statement_timeout_s=4, idle_in_transaction_timeout_s=9), db_url)

    async def scenario() -> list[tuple[str, str]]:
        await context.pool.open(wait=True, timeout=30)
        try:
            async with context.connection() as conn:
                cur = await conn.execute("SELECT current_setting('statement_timeout'), "
                                         "current_setting('idle_in_transaction_session_timeout')")
                pooled = await cur.fetchone()
            listen = await context._listen_connection()
            cur = await listen.execute("SELECT current_setting('statement_timeout'), "
                                       "current_setting('idle_in_transaction_session_timeout')")
            listening = await cur.fetchone()
            await listen.close()
            return [pooled, listening]
        finally:
            await context.pool.close()

    assert asyncio.run(scenario()) == [("4s", "9s"), ("4s", "9s")]
