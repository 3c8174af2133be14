"""Pure pieces of the queue core: settings, backoff, ids, the named-query loader."""

from __future__ import annotations

import random

import msgspec
import pytest

from qqueue.config import load_settings
from qqueue.errors import ConfigError
from qqueue.retry import backoff_s
from qqueue.store import db, migrate
from qqueue.tasks import TaskStatus, new_task_id


def test_settings_come_from_env_and_cli_overrides_win():
    s = load_settings({"QQUEUE_LEASE_S": "7", "QQUEUE_QUEUES": "a, b"}, lease_s=9.0, concurrency=None)
    assert (s.lease_s, s.queues) == (9.0, ["a", "b"])


@pytest.mark.parametrize("env", [{"QQUEUE_LEASE_S": "soon"}, {"QQUEUE_CONCURRENCY": "0"}, {"QQUEUE_LEASE_S": "0.1"}])
def test_bad_settings_are_one_clear_error(env):
    with pytest.raises(ConfigError):
        load_settings(env)


def test_backoff_grows_exponentially_with_bounded_jitter_and_a_cap():
    rng = random.Random(1)
    for attempt, nominal in [(1, 1), (2, 2), (3, 4), (10, 300), (500, 300)]:
        delays = [backoff_s(attempt, base_s=1, cap_s=300, rng=rng) for _ in range(200)]
        assert nominal * 0.5 <= min(delays) and max(delays) <= nominal * 1.5
    with pytest.raises(ValueError):
        backoff_s(0)


def test_task_ids_are_version_7_and_sort_in_creation_order():
    ids = [new_task_id() for _ in range(20_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {i.version for i in ids} == {7}


def test_status_enum_matches_the_database_enum():
    sql = (db.sql_dir() / "migrations" / "0001_init.sql").read_text()
    assert "ENUM ('pending', 'running', 'completed', 'failed', 'cancelled')" in sql
    assert [s.value for s in TaskStatus] == ["pending", "running", "completed", "failed", "cancelled"]
    assert TaskStatus.CANCELLED.is_terminal and not TaskStatus.RUNNING.is_terminal


def test_query_files_parse_with_sorted_unique_names():
    queries = db.queries()
    assert {"task_claim", "task_complete_many", "task_renew_leases", "migration_lock"} <= set(queries)
    for path in (db.sql_dir() / "queries").glob("*.sql"):
        names = list(db.parse_queries(path.read_text()))
        assert names == sorted(names), path.name
    with pytest.raises(ValueError, match="twice"):
        db.parse_queries("-- name: a :one\nSELECT 1;\n-- name: a :one\nSELECT 2;")


def test_migration_files_are_numbered_in_order():
    versions = [m.version for m in migrate.available()]
    assert versions == sorted(versions) and versions[0] == 1


def test_a_result_postgres_cannot_store_fails_its_task_not_the_worker():
    from qqueue.execution import registry
    from qqueue.worker.slot import run_one

    registry.load(["tests.kinds"])
    ok, body = run_one("echo", {"text": "nul\x00here"})
    assert not ok and b"UnstorableResult" in body
    assert run_one("echo", {"text": "fine"}) == (True, b'{"text":"fine"}')
    ok, body = run_one("nope", {})
    assert not ok and b"unknown task kind" in body


def test_an_idempotency_hash_is_unchanged_by_submission_fields_added_since_and_left_unset():
    from qqueue.api.schemas import TaskSubmission
    from qqueue.api.submit import request_hash

    # The hash this submission had before `callback_url` existed: a key stored then still matches a replay.
    before = "7ba44360ecb89286365b65b0c0ac73f87ef11dec28e8da3c81ee982137973152"
    assert request_hash(TaskSubmission(kind="noop", queue="x")) == before
    assert request_hash(TaskSubmission(kind="noop", queue="x", callback_url="https://example.com/h")) != before


def test_a_jobs_idempotency_hash_is_unchanged_by_its_callback_url_left_unset():
    from qqueue.api.schemas import JobSubmission, PubSubmission
    from qqueue.api.submit import request_hash

    # The hash this job had before jobs took a `callback_url`.
    before = "072e0888df42dffe7317c578eebc8eddb0c957d25bd56f1f2e94a8c046f11374"
    job = JobSubmission(kind="sample", pubs=[PubSubmission(qc="OPENQASM 3.0; qubit q;")], queue="x")
    assert request_hash(job) == before
    assert request_hash(msgspec.structs.replace(job, callback_url="https://example.com/h")) != before
