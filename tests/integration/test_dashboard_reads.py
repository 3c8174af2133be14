"""The dashboard's reads on real PostgreSQL: throughput, durations, failure groups and a task's stored payload,
each scoped to the viewer's tenant (None: every tenant)."""

from __future__ import annotations

import uuid

import pytest

from qqueue.errors import TaskNotFoundError
from qqueue.store import queue as q
from qqueue.store import reads
from qqueue.tasks import TaskSpec

WORKER = uuid.uuid4()


def test_dashboard_reads_count_only_the_viewers_tasks(conn):
    for tenant in ("acme", "other"):
        conn.execute("INSERT INTO qqueue.tenants (name) VALUES (%s)", (tenant,))
    done, acme_failed, other_a, other_b = (s.id for s in q.enqueue_many(conn, [
        TaskSpec(kind="noop", tenant="acme", payload={"n": 1}), TaskSpec(kind="noop", tenant="acme"),
        TaskSpec(kind="noop", tenant="other"), TaskSpec(kind="noop", tenant="other")]))
    attempts = {t.id: t.attempt for t in q.claim(conn, worker_id=WORKER, queues=["default"], limit=10, lease_s=30)}
    q.complete_many(conn, worker_id=WORKER, done=[q.Completion(id=done, attempt=attempts[done], result={})])
    q.fail_many(conn, worker_id=WORKER, failed=[
        q.Failure(id=acme_failed, attempt=attempts[acme_failed], error={"type": "Boom", "message": "acme's"},
                  retry_delay_s=None),
        *(q.Failure(id=i, attempt=attempts[i], retry_delay_s=None,
                    error={"type": "IntakeError", "code": "too_deep", "message": "theirs"})
          for i in (other_a, other_b))])

    everyone = reads.fetch(conn, reads.throughput())
    assert len(everyone) == 60 and everyone == sorted(everyone, key=lambda m: m.minute)
    assert (sum(m.completed for m in everyone), sum(m.failed for m in everyone)) == (1, 3)
    acme = reads.fetch(conn, reads.throughput("acme"))
    assert (sum(m.completed for m in acme), sum(m.failed for m in acme)) == (1, 1)

    assert [(g.code, g.message, g.tasks) for g in reads.fetch(conn, reads.failure_groups())] == [
        ("too_deep", "theirs", 2), ("Boom", "acme's", 1)]
    [group] = reads.fetch(conn, reads.failure_groups("acme"))
    assert (group.code, group.newest_ids) == ("Boom", [acme_failed])
    assert len(reads.fetch(conn, reads.failure_groups(examples=1))[0].newest_ids) == 1

    durations = reads.fetch(conn, reads.durations("acme"))
    assert sum(durations.wait.tasks) == sum(durations.run.tasks) == 2
    assert len(durations.wait.tasks) == len(durations.wait.edges_s) + 1
    assert sum(reads.fetch(conn, reads.durations()).run.tasks) == 4

    source = reads.fetch(conn, reads.task_source(done, "acme"))
    assert (source.circuit_source, source.options) == (None, {"n": 1})
    with pytest.raises(TaskNotFoundError):
        reads.fetch(conn, reads.task_source(other_a, "acme"))
