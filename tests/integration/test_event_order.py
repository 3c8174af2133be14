"""The event reader on real PostgreSQL: history ids are drawn at insert, not at commit, so a smaller id may
commit after a larger one; the reader must hold the larger back until the smaller is settled."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from qqueue.api.eventhub import EventHub
from qqueue.store import event_reads, reads
from qqueue.store.event_reads import EventFilter, EventRow


def _insert(conn: psycopg.Connection[Any], queue: str) -> None:
    conn.execute("INSERT INTO qqueue.tasks (kind, queue) VALUES ('noop', %s)", (queue,))


def test_an_id_committed_after_a_larger_one_is_sent_first_and_none_is_lost(db_url: str) -> None:
    slow = psycopg.connect(db_url)  # a transaction left open
    fast = psycopg.connect(db_url, autocommit=True)

    async def scenario() -> tuple[list[EventRow], list[EventRow]]:
        reader = await psycopg.AsyncConnection.connect(db_url, autocommit=True)

        async def read(after: int, limit: int) -> event_reads.EventBatch:
            return await reads.fetch_async(reader, event_reads.event_batch(after, limit))

        hub = EventHub(read, poll_s=0.02, max_streams=2)
        hub.start()
        try:
            stream = await hub.open(EventFilter(), ready_timeout_s=10)
            _insert(slow, "slow")  # draws the smaller id, not committed
            _insert(fast, "fast")  # the larger id, committed at once
            # Several polls see the larger id committed; none may send it while the smaller could still come.
            held: list[EventRow] = []
            for _ in range(10):
                held += await stream.next(0.05) or []
            slow.commit()
            sent: list[EventRow] = []
            while len(sent) < 2:
                rows = await stream.next(10)
                assert rows, "the settled rows never came"
                sent += rows
            return held, sent
        finally:
            await hub.stop()
            await reader.close()

    try:
        held, sent = asyncio.run(scenario())
    finally:
        slow.close()
        fast.close()
    assert held == []
    assert [row.task.queue for row in sent] == ["slow", "fast"]
    assert sent[0].id < sent[1].id
