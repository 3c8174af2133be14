"""GET /metrics: Prometheus metrics of the whole fleet, read from the database, and the API's own request latency.

The fleet's figures (tasks by queue and status, the due backlog, workers, completions and failures, queue-wait and
run-time histograms) are the database's, so any number of API processes answer the same and a counter survives a
restart or a purge (sql/migrations/0014_metric_totals.sql keeps the totals). Each scrape first lets the database
roll finished tasks up into those totals, in bounded steps, then reads one snapshot; a process reads it at most
once per `api_metrics_cache_s`, however many scrape it. The exposition is built with prometheus_client's own types:
a collector yields metric families from that one snapshot.

The request histogram is per process, as Prometheus expects of a process's own figures: one series per method,
route template (never the raw path, whose values a client chooses) and status code.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import anyio
from litestar import Request, Response, get
from litestar.exceptions import HTTPException
from litestar.middleware.base import DefineMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from qqueue.api.auth import requires_operator
from qqueue.api.errors import documented
from qqueue.errors import MetricsCatchingUpError
from qqueue.store import metric_reads
from qqueue.store.metric_reads import HistogramCell, MetricsSnapshot

if TYPE_CHECKING:
    from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

    from qqueue.api.context import ApiContext

__all__ = ["METRICS_ACCESS", "FleetMetrics", "fleet_exposition", "fleet_families", "metrics"]

#: Who may read /metrics, in this one place: the figures are the whole fleet's, every tenant's, so with API keys
#: on only an operator's key (a tenant's is answered 403); with keys off, anyone.
METRICS_ACCESS: dict[str, Any] = {"guards": [requires_operator]}

#: How long one scrape may spend rolling up a backlog of finished tasks. A scrape that could not catch up answers
#: 503 rather than add the rest row by row (a cost that grows with the backlog); the next scrapes go on from there.
ROLL_UP_BUDGET_S = 5.0

#: The request histogram's bounds: from a millisecond to a minute-long long-poll (`?wait=60`).
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class FleetMetrics:
    """One API process's reader of the fleet's figures and its own request histogram."""

    def __init__(self, api: ApiContext) -> None:
        self._api = api
        self._lag_s = metric_reads.roll_up_lag_s(api.settings.statement_timeout_s)
        self._lock = asyncio.Lock()
        self._read_at = -float("inf")
        self._snapshot: MetricsSnapshot | None = None
        #: The process's own metrics (not the global registry: two apps in one process stay apart).
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram("qqueue_http_request_duration_seconds",
                                  "Time the API took to answer a request, by method, route template and status.",
                                  ["method", "route", "status"], registry=self.registry, buckets=REQUEST_BUCKETS)

    async def snapshot(self) -> MetricsSnapshot:
        """The fleet's figures, read at most once per `api_metrics_cache_s`; concurrent scrapes share one read."""
        async with self._lock:
            if self._snapshot is None or time.monotonic() - self._read_at >= self._api.settings.api_metrics_cache_s:
                self._snapshot = await self._read()
                self._read_at = time.monotonic()
            return self._snapshot

    async def _read(self) -> MetricsSnapshot:
        deadline = time.monotonic() + ROLL_UP_BUDGET_S
        while (step := await self._api.read(metric_reads.roll_up(self._lag_s))).folded >= metric_reads.ROLL_UP_ROWS:
            if time.monotonic() >= deadline:
                raise MetricsCatchingUpError()
        return await self._api.read(metric_reads.snapshot(step.mark))

    def exposition(self, snapshot: MetricsSnapshot) -> bytes:
        """The text format of the fleet's figures followed by this process's own."""
        return fleet_exposition(snapshot) + generate_latest(self.registry)

    def middleware(self) -> DefineMiddleware:
        """The middleware that times every request, to install outermost."""
        return DefineMiddleware(_RequestTimer, histogram=self.requests)


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        return iter(fleet_families(self._snapshot))


def fleet_exposition(snapshot: MetricsSnapshot) -> bytes:
    """The fleet's figures in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)


def fleet_families(snap: MetricsSnapshot) -> list[Metric]:
    """The fleet's metric families from one database snapshot."""
    stored: dict[tuple[str, str], int] = defaultdict(int)
    for u in snap.unfinished:
        stored[u.queue, u.status] += u.tasks
    counters = {status: CounterMetricFamily(f"qqueue_tasks_{status}", f"Tasks that ended {status}, ever (purged "
                                            f"ones included).", labels=labels)
                for status, labels in (("completed", ["queue", "kind"]), ("failed", ["queue", "kind", "error_type"]),
                                       ("cancelled", ["queue", "kind"]))}
    for f in sorted(snap.finished, key=lambda f: (f.status, f.queue, f.kind, f.error_type)):
        stored[f.queue, f.status] += f.tasks
        labels = [f.queue, f.kind, f.error_type] if f.status == "failed" else [f.queue, f.kind]
        counters[f.status].add_metric(labels, f.tasks)
    for g in snap.gone:
        stored[g.queue, g.status] -= g.tasks

    tasks = GaugeMetricFamily("qqueue_tasks", "Tasks stored now, by queue and status.", labels=["queue", "status"])
    for (queue, status), value in sorted(stored.items()):
        tasks.add_metric([queue, status], value)
    due = GaugeMetricFamily("qqueue_tasks_due", "Pending tasks whose run_at has come (claimable now).",
                            labels=["queue"])
    oldest = GaugeMetricFamily("qqueue_oldest_due_age_seconds", "How long the oldest due task has been due.",
                               labels=["queue"])
    running = GaugeMetricFamily("qqueue_tasks_running", "Tasks running now.", labels=["queue"])
    for u in sorted(snap.unfinished, key=lambda u: (u.queue, u.status)):
        if u.status == "pending":
            due.add_metric([u.queue], u.due)
            if u.oldest_due_age_s is not None:
                oldest.add_metric([u.queue], u.oldest_due_age_s)
        else:
            running.add_metric([u.queue], u.tasks)
    workers = GaugeMetricFamily("qqueue_workers_live", "Workers that sent a heartbeat within the last minute.",
                                value=snap.live_workers)
    return [tasks, due, oldest, running, workers, *counters.values(), *_histograms(snap)]


def _histograms(snap: MetricsSnapshot) -> list[Metric]:
    helps = {"queue_wait": ("qqueue_task_queue_wait_seconds", "From when a task's last attempt was due (run_at, not "
                            "before submission) to its start, for tasks that ended completed or failed."),
             "run_time": ("qqueue_task_run_seconds", "From the start of a task's last attempt to its end, for tasks "
                          "that ended completed or failed.")}
    bounds = [*snap.buckets, None]
    cells: dict[tuple[str, str, str], dict[float | None, HistogramCell]] = defaultdict(dict)
    for c in snap.histograms:
        cells[c.metric, c.queue, c.kind][c.le] = c
    families = {metric: HistogramMetricFamily(name, text, labels=["queue", "kind"])
                for metric, (name, text) in helps.items()}
    for (metric, queue, kind), by_le in sorted(cells.items(), key=lambda item: item[0]):
        cumulative, total, buckets = 0, 0.0, []
        for le in bounds:
            if (cell := by_le.get(le)) is not None:
                cumulative, total = cumulative + cell.observations, total + cell.seconds
            buckets.append(("+Inf" if le is None else floatToGoString(le), cumulative))
        families[metric].add_metric([queue, kind], buckets, sum_value=total)
    return list(families.values())


class _RequestTimer:
    """ASGI middleware: observes every request's duration under its method, route template and status."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        asked: str = cast("HTTPScope", scope)["method"]
        method = asked if asked in _METHODS else "other"
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except HTTPException as exc:  # answered further out (an auth refusal, for one)
            status = exc.status_code
            raise
        finally:
            # Middleware runs once a route matched, so there is always a template; the raw path never is a label.
            route = scope.get("path_template") or "unknown"
            self.histogram.labels(method, route, str(status)).observe(time.perf_counter() - started)


@get("/metrics", summary="Prometheus metrics", tags=["operations"], cache=False, media_type=CONTENT_TYPE_LATEST,
     responses=documented("401", "403", "503"), **METRICS_ACCESS)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The fleet's figures from the database (the same from every API process) and this process's request
    latency, in Prometheus' text format. Every metric is described in the README."""
    fleet: FleetMetrics = request.app.state["metrics"]
    snap = await fleet.snapshot()
    body = await anyio.to_thread.run_sync(fleet.exposition, snap)
    return Response(body)
