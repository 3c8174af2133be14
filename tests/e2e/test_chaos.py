"""Chaos under load: while a client submits Bell circuits over HTTP at a steady rate, slot processes and whole
workers are SIGKILLed (and replacements started), PostgreSQL is stopped and started again, and the API's
database connections are cut. Afterwards the database must prove that nothing was lost or done twice, and the
API and the workers must be serving again without anyone having restarted them.

Everything runs as real processes: an embedded PostgreSQL private to this test (so it can be stopped), one
`qqueue serve`, and `qqueue worker` supervisors in their own sessions (so a whole worker, slots and forkserver
included, dies with one killpg). The chaos is drawn at random; its seed is in the report.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
import pytest

from qqueue.store import db, migrate
from qqueue.store.invariants import check
from tests.conftest import REPO, SUMMARY_LINE, WorkerProcess, wait_until
from tests.e2e.api_support import BELL, ApiServer, PrivatePostgres, private_postgres
from tests.e2e.chaos_support import Submitter, first_running, slot_pids

pytestmark = pytest.mark.slow

SUBMIT_RATE_PER_S = 15
#: Submission i asks for SHOTS[i % 3]. A Bell circuit at 100 shots runs in about 2 ms, at 20,000 in about 20 ms:
#: long enough for a kill to land in the middle of a task now and then.
SHOTS = (100, 100, 20_000)
WORKERS = 2
SLOTS_PER_WORKER = 2
#: Short, so a killed worker's tasks come back within seconds.
LEASE_S = 3
#: How long the chaos lasts, and the pause between two of its actions (drawn uniformly from this range).
CHAOS_S = 66
PAUSE_S = (2.0, 4.0)
#: Where in the chaos PostgreSQL is restarted (fractions of CHAOS_S), and how long it stays down.
POSTGRES_RESTARTS_AT = (0.3, 0.7)
POSTGRES_DOWN_S = (3.0, 5.0)
#: Submissions go on after the chaos until this many more were accepted, by a system that recovered by itself.
TAIL_SUBMISSIONS = 75
#: The random actions and their weights; Postgres restarts come on their own schedule.
ACTIONS = {"kill_slot": 3, "kill_worker": 2, "kill_api_connections": 2}
#: A kill waits up to this long for a slot busy with a task, and strikes an idle one if none shows up.
AIM_S = 1.5
#: History notes of the failures the chaos itself causes (a killed slot, a lease its killed worker left to lapse),
#: as a SIMILAR TO pattern. A task that met them on every attempt may end 'failed' (see the test).
CHAOS_NOTES = "(the slot process running the task died%|worker % stopped renewing its lease%)"
FINISHED = ["completed", "failed", "cancelled"]


def sql(url: str, query: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on a fresh connection (the previous one may have died with the server); all rows."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        cur = conn.execute(query.encode(), params or None)
        return cur.fetchall() if cur.description else []


class Cluster:
    """The system under test and the chaos done to it: what ran, what was killed, and when."""

    def __init__(self, pg: PrivatePostgres, seed: int) -> None:
        self.pg = pg
        self.rng = random.Random(seed)
        self.api: ApiServer | None = None
        self.workers: list[WorkerProcess] = []
        self.retired: list[WorkerProcess] = []
        self.counts: Counter[str] = Counter()
        #: (seconds since the chaos began, what was done), for the log of a failed run.
        self.timeline: list[tuple[float, str]] = []
        self.started = time.monotonic()
        #: Database time when PostgreSQL last came back.
        self.postgres_back_at: datetime | None = None
        self._pause = threading.Event()

    def start_worker(self) -> WorkerProcess:
        """Start one more `qqueue worker` on the private database."""
        worker = WorkerProcess(self.pg.url, "--concurrency", str(SLOTS_PER_WORKER), "--lease-s", str(LEASE_S),
                               "--poll-interval-s", "0.5")
        self.workers.append(worker)
        return worker

    def note(self, what: str) -> None:
        """Add `what` to the timeline, at the seconds since the chaos began."""
        self.timeline.append((round(time.monotonic() - self.started, 1), what))

    def check_no_worker_quit(self) -> None:
        """A worker nobody killed must still run: it has to survive everything the chaos does to the others."""
        for worker in self.workers:
            if worker.proc.poll() is not None:
                pytest.fail(f"worker {worker.pid} exited by itself with {worker.proc.returncode}:\n{worker.output()}")

    # -------------------------------------------------------------------------------------------- chaos

    def run_chaos(self, duration_s: float) -> None:
        """Act every few seconds until `duration_s` has passed; Postgres restarts at their fixed points."""
        self.started = time.monotonic()
        restarts = [self.started + duration_s * f for f in POSTGRES_RESTARTS_AT]
        while time.monotonic() < self.started + duration_s:
            self.check_no_worker_quit()
            if restarts and time.monotonic() >= restarts[0]:
                restarts.pop(0)
                self.restart_postgres()
            else:
                action = self.rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
                getattr(self, action)()
            # The chaos's own rhythm, not a wait for a condition: nothing is expected to have happened after it.
            self._pause.wait(self.rng.uniform(*PAUSE_S))

    def slots(self) -> dict[int, WorkerProcess]:
        """Every slot process now, mapped to its worker, in random order."""
        found = [(pid, w) for w in self.workers for pid in slot_pids(w.pid)]
        self.rng.shuffle(found)
        return dict(found)

    def aim(self) -> tuple[int | None, WorkerProcess | None]:
        """A slot that is running a task (and its worker), waiting a little for one; else (None, None)."""
        slots = self.slots()
        busy = first_running(list(slots), within_s=AIM_S)
        return (busy, slots[busy]) if busy is not None else (None, None)

    def kill_slot(self) -> None:
        """SIGKILL one slot process, as the OOM killer or a crashing simulator would: preferably one in the
        middle of a task, else any."""
        busy, _ = self.aim()
        slots = self.slots()
        if busy is not None and busy in slots:
            self.counts["kills_mid_task"] += 1
            pid = busy
        elif slots:
            pid = next(iter(slots))
        else:  # every worker is still starting: kill a whole one instead
            self.kill_worker()
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.counts["slot_kills"] += 1
        self.note(f"SIGKILL slot {pid} of worker {slots[pid].pid}")

    def kill_worker(self) -> None:
        """SIGKILL a whole worker (supervisor, forkserver, slots) and start a replacement: preferably one with
        a task in hand, else any."""
        _, worker = self.aim()
        if worker is None:
            worker = self.rng.choice(self.workers)
        else:
            self.counts["kills_mid_task"] += 1
        worker.kill_all()
        self.workers.remove(worker)
        self.retired.append(worker)
        replacement = self.start_worker()
        self.counts["worker_kills"] += 1
        self.note(f"SIGKILL worker {worker.pid}; started {replacement.pid}")

    def kill_api_connections(self) -> None:
        """Terminate every database session of the API (its pool and its LISTEN connection)."""
        [(terminated,)] = sql(self.pg.url, "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                                           "FROM pg_stat_activity WHERE application_name LIKE %s "
                                           "AND pid <> pg_backend_pid()", ("qqueue-api%",))
        self.counts["api_connection_kills"] += 1
        self.counts["api_connections_terminated"] += terminated
        self.note(f"terminated {terminated} API connections")

    def restart_postgres(self) -> None:
        """Stop PostgreSQL (fast: every client is cut off), keep it down a few seconds, start it again."""
        down_s = self.rng.uniform(*POSTGRES_DOWN_S)
        # A worker that cannot reach the database while starting up exits at once, for whatever supervises it to
        # start it again; that is not what is tested here, so a replacement started just before registers first.
        wait_until(lambda: len(worker_ids(self.pg.url, [w.pid for w in self.workers])) == len(self.workers),
                   timeout_s=60, interval_s=0.05)
        self.pg.stop()
        self.note(f"PostgreSQL stopped for {down_s:.1f} s")
        self._pause.wait(down_s)
        self.pg.start()
        [(self.postgres_back_at,)] = sql(self.pg.url, "SELECT now()")
        self.counts["postgres_restarts"] += 1
        self.note("PostgreSQL started")

    def stop(self) -> None:
        """Kill every process left and print their logs (shown when the test failed)."""
        for worker in self.workers + self.retired:
            if worker.proc.poll() is None:
                worker.kill_all()
            print(f"--- worker {worker.pid} output ---\n{worker.output()}")
            worker.log.close()
        if self.api is not None:
            self.api.stop()
        print("--- chaos timeline ---")
        for at, what in self.timeline:
            print(f"{at:7.1f} s  {what}")


def worker_ids(url: str, pids: list[int]) -> dict[int, Any]:
    """The qqueue.workers id of each running supervisor, by pid (the latest registration of that pid)."""
    rows = sql(url, "SELECT DISTINCT ON (pid) pid, id FROM qqueue.workers WHERE pid = ANY(%s) AND stopped_at IS NULL "
                    "ORDER BY pid, started_at DESC", (pids,))
    return dict(rows)


def longest_stall(url: str, ids: list[str], since: datetime) -> tuple[float, float]:
    """The longest time without a task completing, from `since` to the last completion; (seconds, and when it
    began in seconds after `since`)."""
    rows = sql(url, """
        WITH done AS (
            SELECT finished_at AS at FROM qqueue.tasks
            WHERE id = ANY(%(ids)s::uuid[]) AND status = 'completed' AND finished_at >= %(since)s
            UNION ALL SELECT %(since)s::timestamptz
        ), gaps AS (
            SELECT at - lag(at) OVER (ORDER BY at) AS gap, lag(at) OVER (ORDER BY at) AS began FROM done
        )
        SELECT extract(epoch FROM gap)::float8, extract(epoch FROM began - %(since)s)::float8
        FROM gaps WHERE gap IS NOT NULL ORDER BY gap DESC LIMIT 1""", {"ids": ids, "since": since})
    return (round(rows[0][0], 2), round(rows[0][1], 1)) if rows else (0.0, 0.0)


def finished_count(url: str, ids: list[str]) -> int:
    """How many of these tasks are in a terminal state."""
    [(n,)] = sql(url, "SELECT count(*) FROM qqueue.tasks WHERE id = ANY(%s::uuid[]) AND status::text = ANY(%s)",
                 (ids, FINISHED))
    return n


def submit_batch(api: ApiServer, n: int) -> list[str]:
    """Queue `n` Bell circuits in one request; their ids."""
    response = api.client.post("/tasks/batch", json={"tasks": [{"qc": BELL, "shots": SHOTS[0]}] * n})
    assert response.status_code == 201, response.text
    return [item["task_id"] for item in response.json()["items"]]


def every_worker_consumes(cluster: Cluster, api: ApiServer, post_chaos: list[str]) -> Callable[[], bool]:
    """A condition for wait_until: queue a batch, wait for it, and say whether every running worker has now
    completed at least one task queued after the chaos. A batch is larger than one worker takes at once, so
    every worker able to claim gets a share."""

    def condition() -> bool:
        ids = submit_batch(api, 60)
        post_chaos.extend(ids)
        wait_until(lambda: finished_count(cluster.pg.url, ids) == len(ids), timeout_s=60, interval_s=0.2)
        running = worker_ids(cluster.pg.url, [w.pid for w in cluster.workers])
        done_by = {row[0] for row in sql(cluster.pg.url, "SELECT DISTINCT worker_id FROM qqueue.tasks "
                                                         "WHERE id = ANY(%s::uuid[]) AND status = 'completed'",
                                         (post_chaos,))}
        return len(running) == len(cluster.workers) and set(running.values()) <= done_by

    return condition


def test_chaos_under_load_loses_nothing_does_nothing_twice_and_recovers_by_itself(record_property):
    seed = random.randrange(2**32)
    with private_postgres() as pg:
        with db.connection(pg.url) as conn:
            migrate.migrate(conn)
        cluster = Cluster(pg, seed)
        submitter: Submitter | None = None
        try:
            for _ in range(WORKERS):
                cluster.start_worker()
            cluster.api = api = ApiServer(pg.url)
            api_pid = api.proc.pid
            # The chaos starts on a system that works: every worker registered and running its slots.
            wait_until(lambda: len(worker_ids(pg.url, [w.pid for w in cluster.workers])) == WORKERS
                       and all(len(slot_pids(w.pid)) == SLOTS_PER_WORKER for w in cluster.workers), timeout_s=90)
            [(chaos_began_at,)] = sql(pg.url, "SELECT now()")
            submitter = Submitter(api.url, SUBMIT_RATE_PER_S, shots=SHOTS)
            submitter.start()

            cluster.run_chaos(CHAOS_S)
            cluster.check_no_worker_quit()
            cluster.note("chaos over")
            # Load goes on for a while on the recovered system, then stops; every submission still waiting
            # (refused during an outage) is sent again with its key until accepted.
            accepted_during_chaos = len(submitter.accepted_ids())
            wait_until(lambda: len(submitter.accepted_ids()) >= accepted_during_chaos + TAIL_SUBMISSIONS, timeout_s=60,
                       interval_s=0.1)
            submitter.stop_new()
            wait_until(lambda: submitter.pending() == 0, timeout_s=60, interval_s=0.2)
            submitter.stop()
            cluster.note("submissions over")
            accepted = dict(submitter.accepted)
            ids = list(accepted.values())
            wait_until(lambda: finished_count(pg.url, ids) == len(ids), timeout_s=90, interval_s=0.2)
            cluster.note("every accepted task finished")
            cluster.check_no_worker_quit()

            # Every submission was accepted in the end, and answers were only ever "accepted" or "not now".
            assert submitter.unexpected == []
            assert len(accepted) == submitter.submitted > CHAOS_S * SUBMIT_RATE_PER_S / 2
            # The database holds exactly the accepted tasks: one per Idempotency-Key, none the client never heard
            # of (a submission whose answer was lost was found again by its key, not queued twice).
            rows = sql(pg.url, "SELECT idempotency_key, id::text FROM qqueue.tasks WHERE idempotency_key LIKE %s",
                       (submitter.key_prefix + "-%",))
            assert dict(rows) == accepted

            # Every accepted task reached exactly one terminal state: completed, or failed only because the chaos
            # took every one of its attempts. Tasks keep the default max_attempts (3), as operators run them. Each
            # task runs for milliseconds, yet the kills aim at busy slots, so a long task may be struck on three
            # attempts in a row now and then (about once in a hundred runs); the queue then rightly fails it, and
            # that is not a broken promise. What would be one, a task failing for any other reason or before its
            # attempts ran out, is not accepted: every one of its attempts must have ended in a killed slot or a
            # lapsed lease, as its history shows.
            tasks = sql(pg.url, """
                SELECT t.id::text, t.status::text, t.attempt, t.max_attempts,
                       count(*) FILTER (WHERE e.status IN ('completed', 'failed', 'cancelled')),
                       count(*) FILTER (WHERE e.status = 'completed'),
                       count(*) FILTER (WHERE e.status = 'running'),
                       count(*) FILTER (WHERE e.status IN ('pending', 'failed') AND e.worker_id IS NOT NULL
                                        AND e.note SIMILAR TO %s)
                FROM qqueue.tasks t JOIN qqueue.task_events e ON e.task_id = t.id
                WHERE t.id = ANY(%s::uuid[]) GROUP BY t.id""", (CHAOS_NOTES, ids))
            assert len(tasks) == len(ids)
            by_status = Counter(status for _, status, *_ in tasks)
            assert set(by_status) <= {"completed", "failed"}, by_status
            for task_id, status, attempt, max_attempts, terminal, completed_rows, runs, struck in tasks:
                assert terminal == 1, task_id
                if status == "completed":
                    assert completed_rows == 1, task_id
                else:
                    assert attempt == max_attempts == runs == struck, task_id

            # Every completed task holds a Bell result: only 00 and 11, summing to the shots it asked for.
            bad = sql(pg.url, """
                SELECT id FROM qqueue.tasks
                WHERE id = ANY(%s::uuid[]) AND status = 'completed'
                  AND ((result ->> 'shots')::int IS DISTINCT FROM (payload ->> 'shots')::int
                       OR (SELECT sum(value::int) FROM jsonb_each_text(result -> 'counts'))
                          IS DISTINCT FROM (payload ->> 'shots')::int
                       OR EXISTS (SELECT 1 FROM jsonb_object_keys(result -> 'counts') k WHERE k NOT IN ('00', '11')))
                """, (ids,))
            assert bad == []
            shots_asked = sql(pg.url, "SELECT DISTINCT (payload ->> 'shots')::int FROM qqueue.tasks "
                                      "WHERE id = ANY(%s::uuid[])", (ids,))
            assert {s for (s,) in shots_asked} == set(SHOTS)

            # No attempt overwrote a newer one: each completion is that of the task's latest claim, by the
            # worker that made it, and it is the last word in the history.
            unfenced = sql(pg.url, """
                SELECT t.id FROM qqueue.tasks t
                CROSS JOIN LATERAL (SELECT status, attempt, worker_id FROM qqueue.task_events
                                    WHERE task_id = t.id AND status = 'running' ORDER BY id DESC LIMIT 1) claim
                CROSS JOIN LATERAL (SELECT status, attempt, worker_id FROM qqueue.task_events
                                    WHERE task_id = t.id ORDER BY id DESC LIMIT 1) last
                WHERE t.id = ANY(%s::uuid[]) AND t.status = 'completed'
                  AND (last.status <> 'completed' OR last.attempt <> t.attempt OR claim.attempt <> t.attempt
                       OR last.worker_id IS DISTINCT FROM claim.worker_id
                       OR t.worker_id IS DISTINCT FROM claim.worker_id)""", (ids,))
            assert unfenced == []

            # The API answers again by itself: the same process, healthy.
            wait_until(lambda: api.client.get("/health").status_code == 200, timeout_s=45, interval_s=0.2)
            assert api.proc.poll() is None and api.proc.pid == api_pid
            # The workers are consuming again by themselves: every running one (also those that lived through
            # both Postgres restarts) heartbeats since Postgres came back and completes tasks queued now.
            back_at = cluster.postgres_back_at
            wait_until(lambda: sql(pg.url, "SELECT count(*) FROM qqueue.workers WHERE pid = ANY(%s) "
                                           "AND stopped_at IS NULL AND heartbeat_at > %s",
                                   ([w.pid for w in cluster.workers], back_at))[0][0] >= WORKERS, timeout_s=30)
            post_chaos: list[str] = []
            wait_until(every_worker_consumes(cluster, api, post_chaos), timeout_s=90, interval_s=0.1)
            cluster.check_no_worker_quit()

            # The invariant checker operators run agrees, as a view and as a command.
            with db.connection(pg.url) as conn:
                report = check(conn)
            assert report.violations == [] and report.unfinished == 0
            command = subprocess.run([sys.executable, "-m", "qqueue", "check", "--database-url", pg.url],
                                     check=False, cwd=REPO, capture_output=True, text=True, timeout=120)
            assert command.returncode == 0, command.stdout + command.stderr

            [(retried, failed, completed)] = sql(pg.url, """
                SELECT count(*) FILTER (WHERE attempt > 1), count(*) FILTER (WHERE status = 'failed'),
                       count(*) FILTER (WHERE status = 'completed')
                FROM qqueue.tasks WHERE id = ANY(%s::uuid[])""", (ids,))
            stall_s, stall_began_s = longest_stall(pg.url, ids, chaos_began_at)
            summary = submitter.summary()
            figures = {
                "submitted": summary["submitted"], "accepted": summary["accepted"], "completed": completed,
                "retried": retried, "failed": failed, "longest_stall_s": stall_s,
                "longest_stall_began_s": stall_began_s, "requests": summary["requests"],
                "replayed": summary["answers"].get("200", 0), "answers": summary["answers"],
                "chaos": {k: cluster.counts[k] for k in ("slot_kills", "worker_kills", "kills_mid_task",
                                                         "api_connection_kills", "api_connections_terminated",
                                                         "postgres_restarts")},
                "workers_started": len(cluster.workers) + len(cluster.retired), "post_chaos_tasks": len(post_chaos),
                "chaos_s": CHAOS_S, "seed": seed,
            }
            for name, value in figures.items():
                record_property(name, value)
            record_property(SUMMARY_LINE, f"chaos: {json.dumps(figures, sort_keys=False)}")
            # The chaos really happened, as scheduled.
            assert cluster.counts["postgres_restarts"] == len(POSTGRES_RESTARTS_AT)
            assert cluster.counts["slot_kills"] + cluster.counts["worker_kills"] >= 3
        finally:
            try:
                if submitter is not None:
                    submitter.stop()
            finally:
                # Whatever failed, no process of this test may outlive it.
                cluster.stop()
