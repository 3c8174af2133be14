"""The event reader behind GET /events: one task per API process reads the status history forward and hands
each new row to every open stream that wants it; streams never query on their own once they are live.

Event ids are qqueue.task_events ids, so `Last-Event-ID` resumes from the history itself. Those ids come from
an identity column, drawn when a row is inserted, not when its transaction commits: a transaction that drew id
41 may commit after one that drew 42, and a reader that sent 42 and then resumed "after 42" would lose 41 for
good. Re-reading a window before the resume point cannot know which rows of the window a client already had,
and no window is long enough for every transaction. So the reader only ever sends ids it knows to be final:

- each read also returns the transactions its snapshot saw in progress (`pg_current_snapshot()`, less those
  known to belong to another database) and the highest id that snapshot sees;
- a row invisible to that snapshot with a smaller id can only belong to a transaction that was in progress in
  it (its `xip` list): history rows are written in the statement that changes their task, after that change,
  so their transaction holds its xid before it draws an id, and a transaction that gets its xid later draws a
  later id (the identity keeps the default cache of 1);
- once every one of those transactions has ended (none is in the xip list of a later read), every id up to
  that highest id is either visible or will never exist: the reader sends up to there (`Horizon`).

A row therefore reaches streams one or two polls after its commit; an open writing transaction anywhere on
the server holds the horizon back until it ends (qqueue's own sessions are bounded by statement and idle
timeouts, and a stall of more than a few seconds is logged).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg

from qqueue.errors import DatabaseUnavailableError, EventStreamsFullError
from qqueue.store.event_reads import EventBatch, EventFilter, EventRow

log = logging.getLogger("qqueue.api.events")

__all__ = ["EventHub", "Horizon", "Subscription"]

#: History rows one poll reads at most; a longer backlog is read in consecutive polls without pause.
READ_BATCH = 1000
#: Polls whose snapshots are remembered while waiting for their transactions to end.
_REMEMBERED = 256
#: A horizon held back longer than this is logged (once per stall).
_STALL_WARNING_S = 10.0

Read = Callable[[int, int], Awaitable[EventBatch]]


class Horizon:
    """The highest history id below which no row can appear any more (`safe`), from successive reads."""

    def __init__(self) -> None:
        self.safe: int | None = None
        self._pending: deque[tuple[int, frozenset[int]]] = deque(maxlen=_REMEMBERED)
        self._held_since: float | None = None

    def advance(self, last_id: int, running: frozenset[int]) -> int | None:
        """Record a read that saw ids up to `last_id` while `running` were in progress; return `safe`.

        Each earlier read is settled once none of the transactions it saw running still runs: then every id up
        to what it saw is final. The latest settled read wins; the reads before it are forgotten."""
        self._pending.append((last_id, running))
        settled = [seen for seen, then in self._pending if not then & running]
        if settled:
            newest = max(settled)
            self.safe = newest if self.safe is None else max(self.safe, newest)
            self._pending = deque(((seen, then) for seen, then in self._pending if seen > self.safe),
                                  maxlen=_REMEMBERED)
        self._note_stall(running)
        return self.safe

    def _note_stall(self, running: frozenset[int]) -> None:
        if not self._pending:
            self._held_since = None
            return
        now = time.monotonic()
        if self._held_since is None:
            self._held_since = now
        elif now - self._held_since > _STALL_WARNING_S:
            oldest = self._pending[0][1] & running
            log.warning("event streams held back for %.0f s by open writing transactions (xids %s)",
                        now - self._held_since, ", ".join(str(x) for x in sorted(oldest)[:5]))
            self._held_since = now


class Subscription:
    """One open stream: what it wants, the history id it starts after, and the rows handed to it."""

    def __init__(self, where: EventFilter, start: int, max_queued: int) -> None:
        self.where = where
        #: Every matching row with a larger id reaches this stream through `next`; smaller ones it reads itself.
        self.start = start
        self._max_queued = max_queued
        self._queue: asyncio.Queue[list[EventRow] | None] = asyncio.Queue()
        self.ended = False

    def offer(self, rows: list[EventRow]) -> None:
        """Queue the rows this stream wants. A stream too slow to keep up is ended rather than buffered without
        bound: its client reconnects with Last-Event-ID and reads what it missed from the database."""
        if self.ended:
            return
        wanted = [row for row in rows if self.where.matches(row)]
        if not wanted:
            return
        if self._queue.qsize() >= self._max_queued:
            log.info("event stream ended: its client reads slower than events arrive")
            self.end()
            return
        self._queue.put_nowait(wanted)

    def end(self) -> None:
        """End the stream after what is queued."""
        if not self.ended:
            self.ended = True
            self._queue.put_nowait(None)

    async def next(self, timeout_s: float) -> list[EventRow] | None:
        """The next rows; [] when none came within `timeout_s`; None once the stream is ended."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout_s)
        except TimeoutError:
            return []


class EventHub:
    """Reads the history forward on a timer and fans each row out to the open streams.

    Parameters
    ----------
    read
        `read(after, limit)`: history rows after an id (at most `limit`, every tenant's), with the snapshot.
    poll_s
        Time between reads while nothing is behind.
    max_streams
        Streams this process serves at once; one more is refused (`EventStreamsFullError`).
    """

    def __init__(self, read: Read, *, poll_s: float, max_streams: int, max_queued: int = 64) -> None:
        self._read = read
        self._poll_s = poll_s
        self.max_streams = max_streams
        self._max_queued = max_queued
        self._horizon = Horizon()
        #: Every row up to this id has been handed to the streams (or skipped while there were none).
        self._sent: int | None = None
        self._streams: set[Subscription] = set()
        self._opening = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._ready = asyncio.Event()

    @property
    def streams(self) -> int:
        """Streams open now."""
        return len(self._streams)

    def start(self) -> None:
        """Start reading in the background (call from the running event loop)."""
        self._task = asyncio.create_task(self._run(), name="qqueue-api-events")

    def close(self) -> None:
        """End every stream and refuse new ones: the server is stopping, and open streams must not hold it up."""
        self._closing = True
        for stream in list(self._streams):
            stream.end()

    async def stop(self) -> None:
        """End every stream and stop reading."""
        self.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def open(self, where: EventFilter, *, ready_timeout_s: float) -> Subscription:
        """A new stream's subscription; raises `EventStreamsFullError` when every stream is taken or the server
        is stopping, `DatabaseUnavailableError` when the reader has not read the history yet. The caller must
        `release` it (`tie` does so when the stream's generator goes away)."""
        if self._closing:
            raise EventStreamsFullError("The server is stopping; reconnect to another.", retry_after_s=1)
        if len(self._streams) + self._opening >= self.max_streams:
            raise EventStreamsFullError(f"This server already serves {self.max_streams} event streams, its "
                                        "most; retry shortly.", retry_after_s=5)
        # Counted while it waits, so that concurrent requests cannot overrun the limit together.
        self._opening += 1
        try:
            await asyncio.wait_for(self._ready.wait(), ready_timeout_s)
        except TimeoutError:
            raise DatabaseUnavailableError("the event reader has not read the history yet") from None
        finally:
            self._opening -= 1
        if self._closing:
            raise EventStreamsFullError("The server is stopping; reconnect to another.", retry_after_s=1)
        assert self._sent is not None  # set before ready
        stream = Subscription(where, self._sent, self._max_queued)
        self._streams.add(stream)
        return stream

    def release(self, stream: Subscription) -> None:
        """Forget a stream (idempotent)."""
        stream.ended = True
        self._streams.discard(stream)

    def tie(self, stream: Subscription, body: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """`body`, with `stream` released once it is collected, even should it never be iterated."""
        weakref.finalize(body, self.release, stream)
        return body

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                behind = await self._poll()
                failing = False
            except (DatabaseUnavailableError, psycopg.Error) as exc:
                if not failing:
                    log.warning("cannot read the status history for event streams (retrying): %s", exc)
                failing, behind = True, False
            except Exception as exc:  # a bug here must not end every stream for good: log, pause, go on
                log.error("event reader failed; restarting it", exc_info=exc)
                behind = False
            if not behind:
                await asyncio.sleep(self._poll_s)

    async def _poll(self) -> bool:
        """One read; True when more rows are waiting (read again at once)."""
        limit = READ_BATCH if self._streams else 0
        batch = await self._read(self._sent if self._sent is not None else 0, limit)
        safe = self._horizon.advance(batch.last_id, batch.running)
        if safe is None:
            return False
        if self._sent is None or limit == 0:
            # No stream was listening: nothing to hand out. A stream that opened during the read starts from the
            # old position, and gets these rows from the next read.
            if not self._streams:
                self._sent = safe
                self._ready.set()
            return False
        rows = [row for row in batch.rows if row.id <= safe]
        # A full read that stopped short of the horizon leaves settled rows behind it: read on at once.
        more = len(batch.rows) >= limit and batch.rows[-1].id < safe
        for stream in list(self._streams):
            stream.offer(rows)
        self._sent = rows[-1].id if more else safe
        return more
