"""The web dashboard in a real browser: Debian's chromium, headless, driven by Playwright, against a real API
process, a real worker running real circuits, and real PostgreSQL.

One browser serves the module. Two API servers share one database: one with API keys off (every page, filters,
cancel, live refresh) and one with keys on (login, a tenant's view, logout). A screenshot of each page is written to
a folder named in the run's summary. Chromium must be installed (`apt-get install chromium`; `.ci/run` does it):
without it these tests fail, they are never skipped.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from qqueue.store import keys
from tests.conftest import SUMMARY_LINE, WorkerProcess, wait_until
from tests.e2e.api_support import BELL, ApiServer, running_worker, wait_registered
from tests.e2e.test_api import api, idle_queue, module_db, sql  # noqa: F401 (fixtures; `api` has keys off)

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("QQUEUE_TEST_CHROMIUM", "/usr/bin/chromium")
#: The worker's queue: only this module's tasks run there.
QUEUE = f"ui-{uuid.uuid4().hex[:8]}"
FINISHED = {"completed", "failed", "cancelled"}
#: Playwright's wait for a page to show what a test expects (a refresh comes every few seconds).
SHOWN_MS = 20_000


# --- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shots() -> Path:
    """The screenshots' folder, named in the test output."""
    folder = Path(os.environ.get("QQUEUE_SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="qqueue-dashboard-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(autouse=True)
def names_the_screenshots(shots: Path, record_property: Callable[[str, object], None]) -> None:
    """Every test of the module names the folder for the run's summary (printed once)."""
    record_property(SUMMARY_LINE, f"dashboard screenshots: {shots}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), (f"chromium is required for the dashboard tests and is not at {CHROMIUM}: "
                                     "apt-get install -y chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def keyed_api(module_db: str) -> Iterator[ApiServer]:  # noqa: F811
    """Keys on. Not waited for here: it starts while the rest of the module's processes do."""
    server = ApiServer(module_db, args=("--auth",), wait_healthy=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(module_db: str, keyed_api: ApiServer) -> Iterator[WorkerProcess]:  # noqa: F811
    """Started before the keys-off API is waited for (each start is seconds of imports), so they overlap."""
    with running_worker(module_db, "--concurrency", "2", "--queue", QUEUE, wait=False) as proc:
        yield proc


@pytest.fixture(scope="module")
def workload(worker: WorkerProcess, api: ApiServer, module_db: str) -> dict[str, str]:  # noqa: F811
    """Tasks the worker ran: Bell circuits (tagged), one that failed for good; their ids by name."""
    wait_registered(module_db, worker)
    ids = {f"bell{i}": submit(api, {"qc": BELL, "shots": 200, "queue": QUEUE, "tags": ["bell", f"n{i}"]})
           for i in range(3)}
    ids["failed"] = submit(api, {"kind": "fail", "queue": QUEUE, "max_attempts": 1,
                                 "payload": {"message": "the dashboard's failure", "retryable": False}})
    wait_until(lambda: all(status(api, i) in FINISHED for i in ids.values()), timeout_s=60, interval_s=0.1)
    return ids


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    yield tab
    context.close()


def submit(api: ApiServer, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    answer = api.client.post("/tasks", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["task_id"])


def status(api: ApiServer, task_id: str, headers: dict[str, str] | None = None) -> str:
    return str(api.client.get(f"/tasks/{task_id}", headers=headers).json()["status"])


def shoot(page: Page, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


# --- every page, live -------------------------------------------------------------------------------------------


def test_every_page_shows_live_data_from_a_running_worker(workload, page, api, worker, shots):
    page.goto(f"{api.url}/ui")
    row = page.locator(f"tr[data-queue='{QUEUE}']")
    expect(row).to_contain_text(QUEUE)
    # pending, due, running, failed, completed, cancelled
    expect(row.locator("td.num").nth(3)).to_have_text("1")
    expect(row.locator("td.num").nth(4)).to_have_text("3")
    expect(page.locator("#throughput svg rect.bar.completed")).not_to_have_count(0)
    expect(page.locator("#run svg rect.bar")).not_to_have_count(0)
    expect(page.locator("#wait svg rect.bar")).not_to_have_count(0)
    shoot(page, shots, "overview")

    page.click("nav >> text=Tasks")
    expect(page.locator(f"tr[data-task='{workload['bell0']}']")).to_contain_text("completed")
    shoot(page, shots, "tasks")

    page.click("nav >> text=Failures")
    group = page.locator("#failure-groups tbody tr", has_text="the dashboard's failure")
    expect(group).to_contain_text("TaskFailure")
    expect(group.locator(f"a[href='/ui/tasks/{workload['failed']}']")).to_have_count(1)
    shoot(page, shots, "failures")

    page.click("nav >> text=Workers")
    expect(page.locator("#worker-list")).to_contain_text(str(worker.pid))
    expect(page.locator("#worker-list")).to_contain_text(QUEUE)
    shoot(page, shots, "workers")

    page.goto(f"{api.url}/ui/tasks/{workload['failed']}")
    expect(page.locator("#task-status")).to_have_text("failed")
    expect(page.locator("#error")).to_contain_text("the dashboard's failure")


def test_the_jobs_page_shows_a_job_and_its_progress(page, api, worker, shots):
    answer = api.client.post("/jobs", json={"kind": "sample", "queue": QUEUE, "pubs": [{"qc": BELL, "shots": 50}]})
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["job_id"]
    wait_until(lambda: api.client.get(f"/jobs/{job_id}").json()["status"] == "completed", timeout_s=60,
               interval_s=0.1)
    page.goto(f"{api.url}/ui")
    page.click("nav >> text=Jobs")
    row = page.locator(f"tr[data-job='{job_id}']")
    expect(row).to_contain_text("completed")
    expect(row).to_contain_text("1 / 1 tasks")
    shoot(page, shots, "jobs")


def test_the_task_list_filters_and_pages_as_the_api_does(page, api, workload, shots):
    page.goto(f"{api.url}/ui/tasks")
    page.fill("input[name=queue]", QUEUE)
    page.check("input[name=status][value=completed]")
    page.fill("input[name=tags]", "bell")
    page.select_option("select[name=limit]", "25")
    page.click("#filters button[type=submit]")
    rows = page.locator("#task-list tbody tr[data-task]")
    expect(rows).to_have_count(3)
    expect(page.locator("#task-list")).not_to_contain_text("failed")
    assert "status=completed" in page.url and f"queue={QUEUE}" in page.url
    shoot(page, shots, "tasks-filtered")

    # One tag of one task; then pages of one task each, followed by their keyset links.
    page.goto(f"{api.url}/ui/tasks?queue={QUEUE}&tags=n1")
    expect(rows).to_have_count(1)
    expect(page.locator(f"tr[data-task='{workload['bell1']}']")).to_have_count(1)
    page.goto(f"{api.url}/ui/tasks?queue={QUEUE}&tags=bell&limit=1")
    seen = []
    for _ in range(3):
        expect(rows).to_have_count(1)
        seen.append(rows.first.get_attribute("data-task"))
        if page.locator("#next-page").count() == 0:
            break
        page.click("#next-page")
    assert sorted(seen) == sorted(workload[f"bell{i}"] for i in range(3))

    # A value the API refuses is refused here too, in words, with nothing listed.
    page.goto(f"{api.url}/ui/tasks?status=sleeping")
    expect(page.locator(".error")).to_contain_text("Invalid filter")
    expect(page.locator("#task-list")).to_have_count(0)


def test_a_task_page_shows_its_circuit_history_and_counts_histogram(page, api, workload, shots):
    page.goto(f"{api.url}/ui/tasks/{workload['bell0']}")
    expect(page.locator("#task-status")).to_have_text("completed")
    # A Bell pair measures only 00 and 11: two bars, their shots adding up to the 200 asked for.
    bars = page.locator("#histogram svg rect.bar")
    expect(bars).to_have_count(2)
    titles = [bars.nth(i).locator("title").text_content() or "" for i in range(2)]
    assert [t.split(":")[0] for t in titles] == ["00", "11"]
    assert sum(int(re.search(r": (\d+) shots", t).group(1)) for t in titles) == 200  # type: ignore[union-attr]
    expect(page.locator("#circuit pre")).to_contain_text("cx q[0],q[1];")
    expect(page.locator("#options pre")).to_contain_text('"shots": 200')
    expect(page.locator("#profile pre")).to_contain_text('"qubits": 2')
    expect(page.locator("#history li")).to_have_count(3)
    shoot(page, shots, "task")


def test_cancel_through_the_form_is_recorded_in_the_history(page, api, sql):  # noqa: F811
    task_id = submit(api, {"kind": "noop", "queue": idle_queue()})
    page.goto(f"{api.url}/ui/tasks/{task_id}")
    expect(page.locator("#task-status")).to_have_text("pending")
    page.click("#cancel-form button")
    expect(page.locator(".notice")).to_have_text("Task cancelled.")
    expect(page.locator("#task-status")).to_have_text("cancelled")
    expect(page.locator("#cancel-form")).to_have_count(0)
    events = sql.execute("SELECT status::text, note FROM qqueue.task_events WHERE task_id = %s ORDER BY id",
                         (task_id,)).fetchall()
    assert events[-1] == ("cancelled", "cancelled while pending")
    assert status(api, task_id) == "cancelled"


def test_retry_through_the_form_sends_a_cancelled_task_back_to_pending(page, api, sql):  # noqa: F811
    task_id = submit(api, {"kind": "noop", "queue": idle_queue()})
    assert api.client.post(f"/tasks/{task_id}/cancel").status_code == 200
    page.goto(f"{api.url}/ui/tasks/{task_id}")
    expect(page.locator("#task-status")).to_have_text("cancelled")
    page.click("#retry-form button")
    expect(page.locator(".notice")).to_have_text("Task sent back to pending: it runs again.")
    expect(page.locator("#task-status")).to_have_text("pending")
    expect(page.locator("#retry-form")).to_have_count(0)
    events = sql.execute("SELECT status::text, note FROM qqueue.task_events WHERE task_id = %s ORDER BY id",
                         (task_id,)).fetchall()
    assert [e[0] for e in events] == ["pending", "cancelled", "pending"]
    assert events[-1][1].startswith("retried by") and events[-1][1].endswith("from the dashboard")
    assert status(api, task_id) == "pending"


def test_limit_a_queue_through_the_form_and_a_bad_limit_is_refused(page, api, sql):  # noqa: F811
    queue = idle_queue()
    submit(api, {"kind": "noop", "queue": queue})
    page.goto(f"{api.url}/ui")
    row = page.locator(f"tr[data-queue='{queue}']")
    row.locator("input[name=max_running]").fill("3")
    row.locator("button", has_text="Set limit").click()
    expect(page.locator(".notice")).to_contain_text("Queue limit set")
    expect(row.locator("td.max-running")).to_have_text("3")
    row.locator("input[name=max_running]").fill("")
    row.locator("button", has_text="Set limit").click()
    expect(row.locator("td.max-running")).to_have_text("–")
    # Past the browser's own check of the field, the server refuses what is not a limit, and writes nothing.
    row.locator("input[name=max_running]").evaluate("field => { field.type = 'text'; field.value = '0'; }")
    row.locator("button", has_text="Set limit").click()
    expect(page.locator("body")).to_contain_text("max running: a whole number")
    events = sql.execute("SELECT action, max_running FROM qqueue.queue_events WHERE queue = %s ORDER BY id",
                         (queue,))
    assert events.fetchall() == [("limited", 3), ("unlimited", None)]


def test_pause_and_resume_a_queue_through_the_forms_as_queue_events(page, api, sql, shots):  # noqa: F811
    queue = idle_queue()
    task_id = submit(api, {"kind": "noop", "queue": queue})
    page.goto(f"{api.url}/ui")
    row = page.locator(f"tr[data-queue='{queue}']")
    row.locator("button", has_text="Pause").click()
    expect(page.locator(".notice")).to_contain_text("Queue paused")
    expect(row.locator("td.paused")).to_have_text("paused")
    shoot(page, shots, "overview-paused")
    row.locator("button", has_text="Resume").click()
    expect(page.locator(".notice")).to_have_text("Queue resumed.")
    expect(row.locator("td.paused")).to_have_text("no")
    events = sql.execute("SELECT action, actor FROM qqueue.queue_events WHERE queue = %s ORDER BY id", (queue,))
    assert events.fetchall() == [("paused", "dashboard"), ("resumed", "dashboard")]
    assert status(api, task_id) == "pending"


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(api):
    task_id = submit(api, {"kind": "noop", "queue": idle_queue()})
    with httpx.Client(base_url=api.url) as client:
        client.get(f"/ui/tasks/{task_id}")  # the CSRF cookie, but no token in the form
        refused = client.post(f"/ui/tasks/{task_id}/cancel", data={})
        forged = client.post(f"/ui/tasks/{task_id}/cancel", data={"_csrf_token": "forged"})
    assert refused.status_code == forged.status_code == 403
    assert status(api, task_id) == "pending"
    # The JSON API takes no CSRF token.
    assert api.client.post(f"/tasks/{task_id}/cancel").status_code == 200


@pytest.mark.parametrize(("method", "path", "body", "code", "says"), [
    ("GET", "/ui/tasks?limit=0", None, 400, "Invalid filter"),
    ("GET", "/ui/tasks?created_before=soon", None, 400, "created_before"),
    ("GET", "/ui/tasks?cursor=abc", None, 400, "Invalid cursor"),
    ("GET", "/ui/jobs?cursor=abc", None, 400, "Invalid cursor"),
    ("GET", "/ui/tasks/not-a-task", None, 400, "Invalid request"),
    ("GET", "/ui/tasks/4a0c5b2e-0000-4000-8000-000000000404", None, 404, "not found"),
    ("GET", "/ui/nowhere", None, 404, "Not found"),
    ("POST", "/ui/login", b"key=" + b"x" * 100_000, 413, "too large"),
])
def test_a_hostile_request_gets_a_page_with_a_clear_4xx(api, method, path, body, code, says):
    answer = api.client.request(method, path, content=body,
                                headers={"content-type": "application/x-www-form-urlencoded"} if body else None)
    assert answer.status_code == code, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert says.lower() in answer.text.lower() and "Traceback" not in answer.text


def test_a_state_change_arrives_without_a_reload(page, api, worker, shots):
    task_id = submit(api, {"kind": "sleep", "queue": QUEUE, "payload": {"seconds": 1.5}})
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/ui/events" in r.url else None)
    page.goto(f"{api.url}/ui/tasks/{task_id}")
    expect(page.locator("#task-status")).not_to_have_text("completed")
    page.evaluate("window.sameDocument = true")
    expect(page.locator("#task-status")).to_have_text("completed", timeout=SHOWN_MS)
    expect(page.locator("#histogram")).to_contain_text("has no counts")
    assert page.evaluate("window.sameDocument") is True, "the page was reloaded"
    # Pushed by the task's event stream, not found by a poll.
    assert streams == [f"{api.url}/ui/events?task={task_id}"]


def test_docs_and_dashboard_load_nothing_from_outside_the_server(page, api, workload, shots):
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(api.url) else outside.append(r.url))
    for path in ("/schema", "/ui", f"/ui/tasks/{workload['bell0']}"):
        page.goto(f"{api.url}{path}")
    expect(page.locator("#histogram svg")).to_have_count(1)
    page.goto(f"{api.url}/schema")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("qqueue", timeout=SHOWN_MS)
    expect(page.locator(".swagger-ui .opblock-summary-path", has_text="/tasks/{task_id}/cancel")).to_have_count(1)
    shoot(page, shots, "api-docs")
    assert outside == []


# --- keys on ----------------------------------------------------------------------------------------------------


def test_with_keys_on_a_tenant_signs_in_sees_only_its_tasks_and_logs_out(page, keyed_api, api, sql, shots):  # noqa: F811
    keyed_api.wait_healthy()
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    key = keys.create(sql, tenant, label="dashboard").key
    other = keys.create(sql, f"o-{uuid.uuid4().hex[:8]}", label="dashboard").key
    queue = idle_queue()
    mine = submit(keyed_api, {"kind": "noop", "queue": queue}, {"Authorization": f"Bearer {key}"})
    theirs = submit(keyed_api, {"kind": "noop", "queue": queue}, {"Authorization": f"Bearer {other}"})

    page.goto(f"{keyed_api.url}/ui/tasks")
    assert page.url.endswith("/ui/login")
    page.fill("#key", "qq_notakey")
    page.click("#login-form button")
    expect(page.locator(".error")).to_contain_text("not valid")
    shoot(page, shots, "login")
    page.fill("#key", key)
    page.click("#login-form button")
    expect(page.locator("nav .who")).to_contain_text(tenant)
    cookie = next(c for c in page.context.cookies() if c["name"] == "qqueue_key")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"

    page.goto(f"{keyed_api.url}/ui/tasks?queue={queue}")
    expect(page.locator("#task-list tbody tr[data-task]")).to_have_count(1)
    expect(page.locator(f"tr[data-task='{mine}']")).to_have_count(1)
    page.goto(f"{keyed_api.url}/ui/tasks/{theirs}")
    expect(page.locator(".error")).to_contain_text("not found")
    # No queue controls for a tenant: no buttons, and the form's address refuses.
    page.goto(f"{keyed_api.url}/ui")
    expect(page.locator("nav .who")).to_contain_text(tenant)
    expect(page.locator("#queues button")).to_have_count(0)
    csrf_token = page.locator("nav .who input[name=_csrf_token]").get_attribute("value")
    refused = page.request.post(f"{keyed_api.url}/ui/queues/{queue}/pause", form={"_csrf_token": csrf_token or ""})
    assert refused.status == 403
    # No workers for a tenant: not in the menu, refused by address.
    expect(page.locator("nav >> text=Workers")).to_have_count(0)
    assert page.goto(f"{keyed_api.url}/ui/workers").status == 403  # type: ignore[union-attr]
    shoot(page, shots, "tenant-workers-refused")

    page.goto(f"{keyed_api.url}/ui")
    page.click("nav >> text=Log out")
    assert page.url.endswith("/ui/login")
    assert "qqueue_key" not in {c["name"] for c in page.context.cookies()}
    page.goto(f"{keyed_api.url}/ui/failures")
    assert page.url.endswith("/ui/login")


def test_with_keys_on_an_operators_key_sees_every_tenant_and_the_workers(page, keyed_api, sql):  # noqa: F811
    keyed_api.wait_healthy()
    operator = keys.create(sql, f"t-{uuid.uuid4().hex[:8]}", role="operator", label="dashboard").key
    other = keys.create(sql, f"o-{uuid.uuid4().hex[:8]}", label="dashboard").key
    queue = idle_queue()
    theirs = submit(keyed_api, {"kind": "noop", "queue": queue}, {"Authorization": f"Bearer {other}"})
    page.goto(f"{keyed_api.url}/ui/login")
    page.fill("#key", operator)
    page.click("#login-form button")
    expect(page.locator("nav .who")).to_contain_text("all tenants")
    expect(page.locator("nav >> text=Workers")).to_have_count(1)
    # A queue change from the dashboard names the operator's key in the queue's history, as the API's does.
    page.locator(f"tr[data-queue='{queue}']").locator("button", has_text="Pause").click()
    expect(page.locator(".notice")).to_contain_text("Queue paused")
    actors = sql.execute("SELECT actor FROM qqueue.queue_events WHERE queue = %s", (queue,)).fetchall()
    assert actors == [(f"dashboard, api key {keys.parse(operator)}",)]
    assert page.goto(f"{keyed_api.url}/ui/workers").status == 200  # type: ignore[union-attr]
    assert page.goto(f"{keyed_api.url}/ui/tasks/{theirs}").status == 200  # type: ignore[union-attr]
    page.click("nav >> text=Log out")
