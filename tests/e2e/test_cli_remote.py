"""`qqueue submit|get|ls|cancel|jobs` with --api-url: real `qqueue` subprocesses talking to a real API process
over a real PostgreSQL; and the options `submit` gained, on the database path too."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from qqueue import __version__
from qqueue.store import db
from tests.conftest import WorkerProcess, live_workers, wait_until
from tests.e2e.api_support import BELL, free_port
from tests.e2e.test_cli_processes import qq

# One API and one database for the module, as the client's tests have; every test works on queues of its own.
from tests.e2e.test_client import api, client, module_db  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

GHZ = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\ncreg c[3];\nh q[0];\ncx q[0],q[1];\ncx q[1],q[2];\n' \
      'measure q -> c;\n'
BAD = "OPENQASM 2.0;\nqreg q[2];\nfoo q[0];\n"


@pytest.fixture
def circuits(tmp_path: Path) -> dict[str, str]:
    files = {"bell": BELL, "ghz": GHZ, "bad": BAD}
    for name, text in files.items():
        (tmp_path / f"{name}.qasm").write_text(text)
    return {name: str(tmp_path / f"{name}.qasm") for name in files}


def idle_queue() -> str:
    """A queue no worker consumes: its tasks stay pending."""
    return f"idle-{uuid.uuid4().hex[:10]}"


def test_version_prints_the_package_version():
    run = qq("--version")
    assert (run.returncode, run.stdout) == (0, f"qqueue {__version__}\n")


def test_several_files_go_in_one_batch_with_every_option_and_a_key_that_replays(api, client, circuits):
    queue = idle_queue()
    args = ("--api-url", api.url, "submit", circuits["bell"], circuits["ghz"], "--queue", queue, "--priority", "4",
            "--tag", "nightly", "--tag", "cli", "--delay", "3600", "--timeout", "30", "--max-attempts", "5",
            "--metadata", '{"run": 7}', "--idempotency-key", "night-1", "--shots", "64", "--seed", "5")
    run = qq(*args)
    assert run.returncode == 0, run.stderr
    ids = run.stdout.split()
    assert len(ids) == 2 and run.stdout == "".join(f"{i}\n" for i in ids)  # one line per task, in file order

    for task_id, qubits in zip(ids, (2, 3), strict=True):
        task = client.get(task_id)
        assert (task.queue, task.priority, task.max_attempts, task.timeout_s) == (queue, 4, 5, 30)
        assert task.tags == ["nightly", "cli"] and task.metadata == {"run": 7}
        assert task.run_at - task.created_at > timedelta(seconds=3500)
        assert task.profile["qubits"] == qubits

    # The same command again (a retry from a script) queues nothing new: the same ids come back.
    again = qq(*args)
    assert again.returncode == 0 and again.stdout.split() == ids
    assert len(client.list(queue=queue).items) == 2


def test_a_refused_file_is_named_while_the_others_are_queued(api, client, circuits):
    queue = idle_queue()
    run = qq("submit", circuits["bad"], circuits["bell"], "--queue", queue, "--json", QQUEUE_API_URL=api.url)
    assert run.returncode == 1
    assert run.stderr.startswith(f"error: {circuits['bad']}: ") and "(line 3, column" in run.stderr
    bad, good = json.loads(run.stdout)
    assert bad["file"] == circuits["bad"] and bad["error"]["code"] == "undefined_gate"
    assert good["file"] == circuits["bell"]
    assert [str(t.task_id) for t in client.iter_tasks(queue=queue)] == [good["task_id"]]

    # One file refused is the command's error, with its position.
    one = qq("submit", circuits["bad"], QQUEUE_API_URL=api.url)
    assert one.returncode == 1 and one.stdout == ""
    assert one.stderr.count("\n") == 1 and "undefined_gate" in one.stderr and "line 3" in one.stderr


def test_get_ls_and_cancel_go_through_the_api(api, client):
    queue = idle_queue()
    made = [str(client.submit(BELL, queue=queue, tags=["x"]).task_id) for _ in range(3)]

    got = qq("get", made[0], "--json", QQUEUE_API_URL=api.url)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["task_id"] == made[0] and json.loads(got.stdout)["status"] == "pending"
    shown = qq("get", made[0], QQUEUE_API_URL=api.url)
    assert shown.returncode == 0 and made[0] in shown.stdout and "pending" in shown.stdout

    listed = qq("--api-url", api.url, "ls", "--queue", queue, "--tag", "x", "--limit", "2", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [t["task_id"] for t in json.loads(listed.stdout)] == made[::-1][:2]
    table = qq("--api-url", api.url, "ls", "--queue", queue)
    assert table.returncode == 0 and all(t[:8] in table.stdout for t in made)

    cancelled = qq("--api-url", api.url, "cancel", made[1])
    assert (cancelled.returncode, cancelled.stdout) == (0, "cancelled\n")
    assert client.get(made[1]).status == "cancelled"
    twice = qq("--api-url", api.url, "cancel", made[1])
    assert twice.returncode == 1 and "already cancelled" in twice.stderr and twice.stderr.count("\n") == 1

    missing = qq("--api-url", api.url, "get", str(uuid.uuid4()))
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr and "Task not found." in missing.stderr


def test_a_wait_that_runs_out_says_which_task_how_it_stands_and_how_to_look_again(api, circuits):
    run = qq("--api-url", api.url, "submit", circuits["bell"], "--queue", idle_queue(), "--wait", "0.5")
    assert run.returncode == 3, run.stderr
    task_id = run.stdout.split()[0]  # the task as it stands is still shown
    uuid.UUID(task_id)
    assert (f"error: task {task_id} is still pending after waiting 0.5 s; look again with "
            f"`qqueue --api-url {api.url} get {task_id}`") in run.stderr


def test_waiting_shows_the_counts_and_output_writes_a_conversion(api, module_db, circuits, tmp_path):
    db_url = module_db
    worker = WorkerProcess(db_url, "--concurrency", "1")
    try:
        with db.connection(db_url) as conn:
            wait_until(lambda: live_workers(conn) >= 1, timeout_s=60)
        run = qq("submit", circuits["bell"], "--shots", "200", "--wait", "60", QQUEUE_API_URL=api.url)
        assert run.returncode == 0, run.stderr
        assert "completed" in run.stdout and "█" in run.stdout  # the histogram

        out = tmp_path / "bell3.qasm"
        converted = qq("submit", circuits["bell"], "--kind", "convert", "--target", "qasm3", "--wait", "60",
                       "--output", str(out), QQUEUE_API_URL=api.url)
        assert converted.returncode == 0, converted.stderr
        assert out.read_text().startswith("OPENQASM 3")
        assert f"to {out}" in converted.stderr
    finally:
        worker.kill_all()
        worker.log.close()


def test_remote_mode_refuses_a_database_flag_and_says_when_the_api_is_out_of_reach(db_url):
    both = qq("--api-url", "http://127.0.0.1:1", "ls", "--database-url", db_url)
    assert both.returncode == 1 and "drop --database-url" in both.stderr

    gone = qq("--api-url", f"http://127.0.0.1:{free_port()}", "ls")
    assert gone.returncode == 1 and gone.stderr.startswith("error: cannot reach http://127.0.0.1:")
    assert gone.stderr.count("\n") == 1

    jobs = qq("jobs", "ls")
    assert jobs.returncode == 1 and "--api-url" in jobs.stderr


def test_the_new_submit_options_work_on_the_database_path_too(db_url, circuits):
    queue = idle_queue()
    run = qq("submit", circuits["bell"], circuits["ghz"], circuits["bad"], "--database-url", db_url, "--queue",
             queue, "--tag", "db", "--delay", "60", "--max-attempts", "2", "--timeout", "10", "--metadata",
             '{"k": "v"}', "--idempotency-key", "db-key")
    assert run.returncode == 1  # the bad file is refused, the others queued
    assert f"error: {circuits['bad']}: " in run.stderr
    ids = run.stdout.split()
    with db.connection(db_url) as conn:
        rows = conn.execute("SELECT id::text, tags, metadata, max_attempts, timeout_s, idempotency_key, "
                            "run_at > now() + interval '50 seconds' FROM qqueue.tasks WHERE queue = %s ORDER BY id",
                            (queue,)).fetchall()
    assert [r[0] for r in rows] == ids and len(ids) == 2
    assert [r[1:] for r in rows] == [(["db"], {"k": "v"}, 2, 10.0, f"db-key/{i}", True) for i in range(2)]

    waited = qq("submit", circuits["bell"], "--database-url", db_url, "--queue", queue, "--wait", "0.2")
    assert waited.returncode == 3 and "is still pending after waiting 0.2 s" in waited.stderr
    assert f"`qqueue get {waited.stdout.split()[0]}`" in waited.stderr


def test_jobs_are_listed_shown_waited_for_and_cancelled_through_the_api(api, client):
    queue = idle_queue()
    job = str(client.submit_job({"kind": "sample", "pubs": [{"qc": BELL}], "queue": queue}).job_id)

    listed = qq("jobs", "ls", "--json", QQUEUE_API_URL=api.url)
    assert listed.returncode == 0, listed.stderr
    assert [j["job_id"] for j in json.loads(listed.stdout)] == [job]
    waited = qq("--api-url", api.url, "jobs", "get", job, "--wait", "0.3")
    assert waited.returncode == 3 and job in waited.stdout
    assert (f"error: job {job} is still pending after waiting 0.3 s; look again with "
            f"`qqueue --api-url {api.url} jobs get {job}`") in waited.stderr

    cancelled = qq("jobs", "cancel", job, QQUEUE_API_URL=api.url)
    assert (cancelled.returncode, cancelled.stdout) == (0, "cancelled 1 tasks; asked 0 running ones to stop\n")
    shown = qq("jobs", "get", job, "--json", "--wait", "10", QQUEUE_API_URL=api.url)
    assert shown.returncode == 1 and json.loads(shown.stdout)["status"] == "cancelled"


def test_retry_goes_through_the_api_by_id_and_by_filters(api, client):  # noqa: F811
    queue = idle_queue()
    made = [str(client.submit(BELL, queue=queue).task_id) for _ in range(2)]
    for task_id in made:
        client.cancel(task_id)
    by_id = qq("--api-url", api.url, "retry", made[0], str(uuid.uuid4()))
    assert by_id.returncode == 1 and by_id.stdout == f"{made[0]}: queued again (it was cancelled)\n"
    assert "Task not found." in by_id.stderr and by_id.stderr.count("\n") == 1
    dry = qq("--api-url", api.url, "retry", "--status", "cancelled", "--queue", queue, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert (json.loads(dry.stdout)["retried"], json.loads(dry.stdout)["task_ids"]) == (1, [made[1]])
    real = qq("--api-url", api.url, "retry", "--status", "cancelled", "--queue", queue)
    assert real.returncode == 0 and real.stdout.splitlines() == ["1 tasks queued again.", made[1]]
    assert client.get(made[1]).status == "pending"
