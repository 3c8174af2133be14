"""GET /metrics through a real API process and app instances beside it on the same database: the fleet's figures
are the database's (the same from two APIs, from a restarted one, and after a purge), parsed with
prometheus_client's own parser; the request histogram counts requests by route template; with API keys on it
needs a key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient

from qqueue.api import metrics
from qqueue.api.app import create_app
from qqueue.config import load_settings
from qqueue.store import db, keys, metric_reads, queue
from tests.e2e.api_support import ApiServer
from tests.e2e.test_api import module_db  # noqa: F401 (a fixture)
from tests.metrics_support import (
    FAILURES,
    Samples,
    age_finished_tasks,
    database_says,
    fleet_only,
    parse,
    run_workload,
    value,
)

pytestmark = pytest.mark.slow

Q = "metrics"
#: Every scrape reads the database: the figures compared are the database's at that moment.
NO_CACHE = {"QQUEUE_API_METRICS_CACHE_S": "0"}


@pytest.fixture(scope="module")
def sql(module_db: str) -> Iterator[psycopg.Connection[Any]]:
    with db.connection(module_db) as conn:
        run_workload(conn, Q)
        # Finished a day ago (every time of a task moved together): past any retention the test purges with, and
        # behind the roll-up mark from the first scrape on, so the purge below deletes rows already rolled up.
        # (Rows finished after the mark are covered in tests/integration/test_metric_totals.py.)
        age_finished_tasks(conn)
        yield conn


def scrape(client: Any, **kwargs: Any) -> Samples:
    """GET /metrics of a server (ApiServer) or of an in-process app (its TestClient), parsed."""
    answer = (client.client if isinstance(client, ApiServer) else client).get("/metrics", **kwargs)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


@contextmanager
def app_instance(database_url: str, **settings: Any) -> Iterator[TestClient[Any]]:
    """Another API on the same database, in this process: its own pool, cache and request histogram."""
    with TestClient(create_app(load_settings(api_metrics_cache_s=0, **settings), database_url)) as client:
        yield client


def steady(samples: Samples) -> Samples:
    """The database's figures but the oldest due age, which grows between two reads."""
    return {k: v for k, v in fleet_only(samples).items() if k[0] != "qqueue_oldest_due_age_seconds"}


def test_two_apis_answer_the_database_and_the_same_after_a_restart_and_a_purge(module_db, sql):
    said = database_says(sql, Q)
    server = ApiServer(module_db, env=NO_CACHE)
    try:
        with app_instance(module_db) as other:
            a = scrape(server)
            assert steady(a) == steady(scrape(other)), "another API process answers the same"
        assert value(a, "qqueue_tasks_completed_total", queue=Q, kind="noop") == said["by_status"]["completed"] == 2
        for error_type in set(FAILURES):
            assert value(a, "qqueue_tasks_failed_total", queue=Q, kind="noop", error_type=error_type) == \
                said["failures"][error_type]
        for status, count in said["by_status"].items():
            assert value(a, "qqueue_tasks", queue=Q, status=status) == count
        assert value(a, "qqueue_tasks_due", queue=Q) == said["due"]
        assert value(a, "qqueue_task_run_seconds_count", queue=Q, kind="noop") == said["observed"]
        assert value(a, "qqueue_task_queue_wait_seconds_sum", queue=Q, kind="noop") == \
            pytest.approx(said["wait_s"], abs=1e-6)

        with app_instance(module_db) as restarted:
            assert steady(scrape(restarted)) == steady(a), "a new API process answers the same figures"
            assert queue.purge_batch(sql, older_than_s=3600, limit=1000) == 6
            purged = scrape(server)
            assert steady(scrape(restarted)) == steady(purged)
        for name, labels in (("qqueue_tasks_completed_total", {"kind": "noop"}),
                             ("qqueue_tasks_failed_total", {"kind": "noop", "error_type": "CircuitError"}),
                             ("qqueue_task_run_seconds_count", {"kind": "noop"}),
                             ("qqueue_task_queue_wait_seconds_sum", {"kind": "noop"})):
            assert value(purged, name, queue=Q, **labels) == value(a, name, queue=Q, **labels), name
        assert value(purged, "qqueue_tasks", queue=Q, status="completed") == 0
        assert value(purged, "qqueue_tasks", queue=Q, status="pending") == said["by_status"]["pending"]
    finally:
        server.stop()


def test_request_latency_is_counted_by_route_template_never_by_raw_path(module_db, sql):
    task = sql.execute("SELECT id FROM qqueue.tasks WHERE queue = %s LIMIT 1", (Q,)).fetchone()[0]
    with app_instance(module_db) as api:
        assert api.get(f"/tasks/{task}").status_code == 200
        assert api.get(f"/tasks/{uuid.uuid4()}").status_code == 404
        assert api.get(f"/tasks/{uuid.uuid4()}").status_code == 404
        samples = scrape(api)
    requests = {labels: v for (name, labels), v in samples.items()
                if name == "qqueue_http_request_duration_seconds_count"}
    by_route = {(dict(k)["method"], dict(k)["route"], dict(k)["status"]): v for k, v in requests.items()}
    assert by_route == {("GET", "/tasks/{task_id}", "200"): 1, ("GET", "/tasks/{task_id}", "404"): 2}


def test_with_api_keys_on_metrics_need_an_operator_key(module_db, sql):
    tenant = keys.create(sql, f"t-{uuid.uuid4().hex[:8]}", label="test")
    operator = keys.create(sql, None, label="test", role="operator")
    with app_instance(module_db, api_auth=True) as api:
        assert api.get("/metrics").status_code == 401
        assert api.get("/metrics", headers={"Authorization": f"Bearer {tenant.key}"}).status_code == 403
        samples = scrape(api, headers={"Authorization": f"Bearer {operator.key}"})
    assert value(samples, "qqueue_tasks_completed_total", queue=Q, kind="noop") == 2
    timed = {dict(k)["status"]: v for (n, k), v in samples.items()
             if n == "qqueue_http_request_duration_seconds_count" and dict(k)["route"] == "/metrics"}
    assert timed == {"401": 1, "403": 1}, "refusals are timed too (a scrape is observed once it has answered)"


def test_a_backlog_too_large_for_one_scrape_answers_503_until_rolled_up_then_the_same_figures(
        db_url, conn, monkeypatch):
    run_workload(conn, Q)
    age_finished_tasks(conn)
    with app_instance(db_url) as api:
        expected = steady(scrape(api))
        # As a database migrated with many finished tasks stands before its first scrape.
        conn.execute("UPDATE qqueue.metric_rollup_mark SET upto = '-infinity'")
        conn.execute("TRUNCATE qqueue.metric_task_totals, qqueue.metric_histogram_totals")
        # Steps of one task, and no time for a second step within a scrape: the backlog takes several scrapes.
        monkeypatch.setattr(metric_reads, "ROLL_UP_ROWS", 1)
        monkeypatch.setattr(metrics, "ROLL_UP_BUDGET_S", 0.0)
        refused = api.get("/metrics")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "metrics_catching_up"
        answers = [api.get("/metrics") for _ in range(10)]
        codes = [a.status_code for a in answers]
        assert codes[-1] == 200 and set(codes) <= {200, 503}, codes
        assert steady(parse(answers[-1].text)) == expected
