"""Property-based fuzzing of every endpoint, generated from the API's own OpenAPI document.

schemathesis draws requests for every operation of the document, valid ones and (negative mode) ones that break
it: wrong types, missing or unknown fields, out-of-range numbers, odd strings with NUL and control characters,
unsupported methods. Each is sent to a real `qqueue serve` on real PostgreSQL, with the API's defaults (no
authentication), and every answer must be:

- never a 5xx;
- a status code the document declares for the operation;
- of the declared content type, with a body matching that status code's schema, and the declared headers.

Random ids would only ever meet 404s, so the database is first given a task in every state (through the API and a
real worker, stopped before fuzzing starts so that nothing changes underneath), and a share of the drawn task ids
are replaced by those; a share of the submitted bodies are steered onto kinds the API queues without a circuit, so
that success answers are checked too, not only refusals. Runs are reproducible: a fixed seed, no example database,
no shrinking (a failure is reported with the request that caused it, as a curl command), no timing thresholds.
"""

from __future__ import annotations

import collections
import json
import uuid
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from litestar.serialization import encode_json
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from qqueue.api.app import create_app
from qqueue.config import load_settings
from qqueue.store import db
from tests.conftest import WorkerProcess, live_workers, wait_until
from tests.e2e.api_support import BELL, ApiServer
from tests.e2e.test_api import api, module_db  # noqa: F401 (fixtures: the API on a database of the module's own)

pytestmark = pytest.mark.slow

#: Cases drawn per operation in the fuzzing phase; the coverage phase adds its own (boundary values, every
#: negation of every constraint, unsupported methods). About 2,300 requests in all.
MAX_EXAMPLES = 300
#: Fixed, so that CI draws the same requests every run.
SEED = 20_251_123

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document the app serves at /schema/openapi.json, built without touching a database."""
    app = create_app(load_settings(env={}), "postgresql://unused@127.0.0.1/unused")
    return json.loads(encode_json(app.openapi_schema.to_schema()))


SCHEMA = schemathesis.openapi.from_dict(
    openapi_document(),
    config=SchemathesisConfig.from_dict({"seed": SEED, "generation": {"mode": "all", "database": "none"}}),
)

#: Ids of the seeded tasks (`known_tasks`), read by the hooks below while cases are drawn.
KNOWN: dict[str, list[str]] = {"all": [], "unfinished": [], "finished": [], "jobs": []}
#: Backends a share of the drawn names are replaced by.
KNOWN_BACKENDS = ["aer_simulator", "fake_manila"]
#: A PUB that passes intake, for the share of job bodies steered onto it.
VALID_PUB = {"qc": "OPENQASM 3.0; qubit q; h q;", "observables": "Z"}
#: (operation, status code) -> answers seen, for the closing summary.
ANSWERS: collections.Counter[tuple[str, int]] = collections.Counter()

#: Kinds the API queues without preflight (Settings.api_raw_kinds).
RAW_KINDS = ["noop", "sleep", "fail"]
#: Fields of TaskSubmission whose document is exact (the others lose constraints in Litestar's generator:
#: bounds of 0, per-item rules of lists), kept when a body is steered onto a raw kind.
EXACT_FIELDS = ("queue", "priority", "max_attempts", "run_at", "metadata", "payload")


@SCHEMA.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Aim a share of the well-formed task ids at seeded tasks, so that their answers are checked too."""
    params = path_parameters or {}
    if isinstance(params.get("name"), str):
        aimed = st.sampled_from(KNOWN_BACKENDS).map(lambda known: {**params, "name": known})
        return st.one_of(st.just(path_parameters), aimed)
    for field, known in (("task_id", KNOWN["all"]), ("job_id", KNOWN["jobs"])):
        value = params.get(field)
        if known and isinstance(value, str) and _is_uuid(value):
            aimed = st.sampled_from(known).map(lambda k, f=field: {**params, f: k})
            return st.one_of(st.just(path_parameters), aimed)
    return st.just(path_parameters)


@SCHEMA.hook
def map_case(context: Any, case: Any) -> Any:
    """A long-poll (`wait`) on a task that has not ended would hold the run for up to a minute: aim it at one that
    has ended instead (answered at once). An event stream lasts as long as it is asked to, or for ever: ask for
    one that ends once it has sent what the history holds, unless the drawn `duration_s` is refused anyway."""
    if case.operation.path == "/events":
        drawn = (case.query or {}).get("duration_s")
        if drawn is None or _endless(drawn):
            case.query = {**(case.query or {}), "duration_s": 0}
    task_id = (case.path_parameters or {}).get("task_id")
    if task_id in KNOWN["unfinished"] and "wait" in (case.query or {}):
        finished = KNOWN["finished"]
        case.path_parameters = {**case.path_parameters, "task_id": finished[uuid.UUID(task_id).int % len(finished)]}
    return case


@SCHEMA.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    """Steer a share of submissions onto raw kinds (no circuit needed), so that some are accepted (201, or 200 and
    409 for a reused Idempotency-Key) and their answers are checked too."""
    operation = context.operation
    if operation is None or operation.method.upper() != "POST":
        return st.just(body)
    if operation.path == "/tasks" and isinstance(body, dict):
        return st.one_of(st.just(body), st.sampled_from(RAW_KINDS).map(lambda kind: _runnable(body, kind)))
    if operation.path == "/jobs" and isinstance(body, dict):
        job = {**{k: v for k, v in body.items() if k in ("priority", "max_attempts", "metadata")},
               "kind": "estimate", "pubs": [VALID_PUB], "queue": "idle-fuzz"}
        return st.one_of(st.just(body), st.just(job))
    if operation.path == "/tasks/batch" and isinstance(body, dict) and isinstance(body.get("tasks"), list):
        items = body["tasks"]
        steered = st.sampled_from(RAW_KINDS).map(
            lambda kind: {**body, "tasks": [_runnable(i, kind) if isinstance(i, dict) else i for i in items]})
        return st.one_of(st.just(body), steered)
    return st.just(body)


def _runnable(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return {**{k: v for k, v in body.items() if k in EXACT_FIELDS}, "kind": kind}


def _endless(value: Any) -> bool:
    """Whether a drawn `duration_s` would be taken and hold the stream open for more than a moment."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return number > 0.2 or number != number


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# --- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def known_tasks(module_db: str, api: ApiServer) -> Iterator[dict[str, list[str]]]:  # noqa: F811
    """A task in every state: completed (a circuit with counts, and a no-op with tags and metadata), failed,
    cancelled, pending, and running (its worker killed, so it stays running). Fills `KNOWN` for the hooks."""
    with db.connection(module_db) as sql:
        worker = WorkerProcess(module_db, "--concurrency", "1")
        try:
            wait_until(lambda: live_workers(sql) >= 1, timeout_s=60)
            ended = [
                _submit(api, {"qc": BELL, "shots": 64, "options": {"seed": 7}, "tags": ["fuzz"]}),
                _submit(api, {"kind": "noop", "tags": ["fuzz", "'; --"], "metadata": {"k": [1, "x", None]}}),
                _submit(api, {"kind": "fail", "max_attempts": 1, "payload": {"retryable": False}}),
            ]
            for task_id in ended:
                wait_until(lambda t=task_id: _status(api, t) in ("completed", "failed"), timeout_s=60)
            job = api.client.post("/jobs", json={"kind": "estimate", "pubs": [VALID_PUB]})
            assert job.status_code == 201, job.text
            job_id = job.json()["job_id"]
            wait_until(lambda: api.client.get(f"/jobs/{job_id}").json()["status"] == "completed", timeout_s=60)
            running = _submit(api, {"kind": "sleep", "payload": {"seconds": 3600}})
            wait_until(lambda: _status(api, running) == "running", timeout_s=60)
        finally:
            worker.kill_all()
            print(f"--- worker {worker.pid} output ---\n{worker.output()}")
            worker.log.close()
    pending = _submit(api, {"kind": "noop", "queue": "idle-fuzz", "delay_s": 3600})
    cancelled = _submit(api, {"kind": "noop", "queue": "idle-fuzz"})
    assert api.client.post(f"/tasks/{cancelled}/cancel").status_code == 200
    KNOWN.update(all=[*ended, cancelled, running, pending], unfinished=[running, pending],
                 finished=[*ended, cancelled], jobs=[job_id])
    # The server lists its backends once, at the first request, in a child that builds some forty devices (seconds
    # of CPU): read it here, so that no fuzzed request is timed out waiting for that one-off build.
    assert api.client.get("/backends", timeout=120).status_code == 200
    yield KNOWN
    for ids in KNOWN.values():
        ids.clear()


def _submit(server: ApiServer, body: dict[str, Any]) -> str:
    response = server.client.post("/tasks", json=body)
    assert response.status_code == 201, response.text
    return response.json()["task_id"]


def _status(server: ApiServer, task_id: str) -> str:
    return server.client.get(f"/tasks/{task_id}").json()["status"]


# --- tests -----------------------------------------------------------------------------------------------------


def test_the_fuzzed_document_is_the_one_the_server_serves(api: ApiServer) -> None:  # noqa: F811
    served = api.client.get("/schema/openapi.json")
    assert served.status_code == 200
    # Litestar makes up the response examples afresh in each process; everything else must be the same.
    assert _without_examples(served.json()) == _without_examples(openapi_document())


def _without_examples(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_examples(v) for k, v in node.items() if k != "examples"}
    if isinstance(node, list):
        return [_without_examples(v) for v in node]
    return node


@SCHEMA.parametrize()
@hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                     phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_every_answer_to_a_fuzzed_request_is_documented_and_never_a_server_error(
    case: Any, api: ApiServer, known_tasks: dict[str, list[str]]  # noqa: F811
) -> None:
    # The hooks above must have kept long-polls off tasks that do not end; otherwise a case waits a minute.
    assert not ("wait" in (case.query or {}) and (case.path_parameters or {}).get("task_id") in KNOWN["unfinished"])
    response = case.call_and_validate(base_url=api.url, checks=CHECKS)
    ANSWERS[(case.operation.label, response.status_code)] += 1


def test_the_fuzz_reached_every_operation_and_its_success_answers() -> None:
    operations = {op.ok().label for op in SCHEMA.get_all_operations()}
    reached = {operation for operation, _ in ANSWERS}
    if reached != operations:
        pytest.skip("the fuzz did not run for every operation in this run: run the whole module")
    total = sum(ANSWERS.values())
    print(f"{total} fuzzed requests: " + ", ".join(f"{op} {code}: {n}" for (op, code), n in sorted(ANSWERS.items())))
    for operation in operations:
        codes = {code for (op, code), n in ANSWERS.items() if op == operation}
        assert any(200 <= code < 300 for code in codes), (operation, codes)
    assert total >= 1000
