"""Hostile requests, one case each: what the API must answer, and proof that nothing was written.

Every refused request gets its own 4xx and a message that says what was wrong; the rows of qqueue.tasks and
qqueue.task_events are counted before and after it, on the API's own database, and must not change. Inputs
that are hostile-looking but valid are accepted and stored verbatim instead; which is which depends on the field:

=====================  ============================================================================================
field                  rule (qqueue/api/schemas.py, qqueue/api/submit.py, qqueue/api/correlation.py)
=====================  ============================================================================================
queue, kind            1-64 of ``A-Z a-z 0-9 _ . : -`` (the CHECK on qqueue.tasks): quotes, spaces, semicolons,
                       control characters, a trailing newline: 400
tags                   at most 32, each 1-100 characters of anything but NUL: SQL metacharacters and control
                       characters are data, stored verbatim; NUL, too many, too long or empty: 400
metadata               any JSON object of at most 8 KiB without NUL, keys included: stored verbatim; NUL or
                       larger: 422
payload (raw kinds)    any JSON object without NUL: stored verbatim; NUL: 422
Idempotency-Key        1-200 characters: stored verbatim, SQL metacharacters included; empty or longer: 400;
                       control characters never reach the app (the HTTP server answers 400 itself)
X-Correlation-ID       1-255 printable ASCII: echoed and stored verbatim, SQL metacharacters included; anything
                       else is replaced by a fresh id, never refused (tests/e2e/test_api.py)
qc                     OpenQASM 2 or 3 that preflight accepts; includes only of qelib1.inc and stdgates.inc, never
                       read from disk: 422 with the intake error code
=====================  ============================================================================================

Bodies are JSON objects encoded in UTF-8, at most 1 MiB (32 MiB for batches) and refused with 413 before they are
read whole; unknown fields anywhere are refused (400). Intake's own corpus, error code by error code, is
tests/unit/test_intake.py; here each hostile class goes through the HTTP door once.

The last section runs a real worker: a circuit that would exhaust memory never reaches it (422 with the memory it
would need), and one that would run for about a minute is stopped by its timeout while the tasks around it
complete.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import live_workers, wait_until
from tests.e2e.api_support import BELL, ApiServer, raw_request
from tests.e2e.test_api import api, assert_error, idle_queue, module_db, sql  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

QASM2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
SQL_INJECTION = "'; DROP TABLE qqueue.tasks; --"


def written(sql: psycopg.Connection[Any]) -> tuple[int, int]:  # noqa: F811 (the fixture, passed in)
    """Rows in qqueue.tasks and qqueue.task_events."""
    return sql.execute("SELECT (SELECT count(*) FROM qqueue.tasks), (SELECT count(*) FROM qqueue.task_events)"
                       ).fetchone()


def nested(depth: int, inner: str = "1") -> bytes:
    """A JSON body whose metadata nests `depth` arrays deep."""
    return b'{"kind":"noop","metadata":{"x":' + b"[" * depth + inner.encode() + b"]" * depth + b"}}"


def qasm2(qubits: int, body: str) -> str:
    """An OpenQASM 2 circuit on `qubits` qubits that measures them all."""
    return f"{QASM2}qreg q[{qubits}];\ncreg c[{qubits}];\n{body}measure q -> c;\n"


# --- the corpus of refused requests ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """A hostile request and the answer it must get."""

    says: str
    status: int
    #: A fragment of the answer's message (case-insensitive).
    message: str
    #: Sent as JSON; `raw` (bytes) instead when given.
    json: Any = None
    raw: bytes | None = None
    method: str = "POST"
    path: str = "/tasks"
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Any = None
    #: The answer's error.code (items[0].error.code for a batch answer), where the API gives one.
    code: str | None = None
    #: Refused by the HTTP server before the app sees it: a plain-text answer, not the app's JSON.
    by_server: bool = False


REFUSED = [
    # Bodies that are not one UTF-8 JSON object.
    Refused("a body that is not JSON", 400, "invalid json", raw=b'{"qc": ', code="invalid_json"),
    Refused("an empty body", 400, "a JSON body is required", raw=b""),
    Refused("a JSON array instead of an object", 400, "expected `object`, got `array`", json=[1, 2]),
    Refused("a JSON string instead of an object", 400, "expected `object`, got `str`", json="noop"),
    Refused("bytes that are not UTF-8", 400, "not valid UTF-8", raw=b'{"kind":"noop","queue":"\xff\xfe"}',
            code="invalid_json"),
    Refused("a body encoded in Latin-1", 400, "not valid UTF-8",
            raw='{"kind":"noop","tags":["café"]}'.encode("latin-1"), code="invalid_json"),
    Refused("a body encoded in UTF-16", 400, "invalid json", raw='{"kind":"noop"}'.encode("utf-16"),
            code="invalid_json"),
    Refused("metadata nested 100,000 arrays deep", 400, "nested too deeply", raw=nested(100_000),
            code="invalid_json"),
    Refused("a whole body nested 100,000 objects deep", 400, "nested too deeply",
            raw=b'{"a":' * 100_000 + b"1" + b"}" * 100_000, code="invalid_json"),
    Refused("a batch whose item nests 100,000 arrays deep", 400, "nested too deeply", path="/tasks/batch",
            raw=b'{"tasks":[' + nested(100_000) + b"]}", code="invalid_json"),
    # Numbers.
    Refused("shots as a string", 400, "shots: expected `int`, got `str`", json={"qc": BELL, "shots": "many"}),
    Refused("shots as a fraction", 400, "shots: expected `int`, got `float`", json={"qc": BELL, "shots": 1.5}),
    Refused("shots as a boolean", 400, "shots: expected `int`, got `bool`", json={"qc": BELL, "shots": True}),
    Refused("negative shots", 400, "shots: expected `int` >= 0", json={"qc": BELL, "shots": -1}),
    Refused("shots of 10^30", 400, "shots: expected `int` <= ", json={"qc": BELL, "shots": 10**30}),
    Refused("more shots than a circuit may run", 400, "shots: expected `int` <= 100000",
            json={"qc": BELL, "shots": 200_000}),
    Refused("a priority past 100", 400, "priority", json={"kind": "noop", "priority": 101}),
    Refused("a number too large for JSON to hold", 400, "number out of range",
            raw=b'{"kind":"noop","metadata":{"x":1e400}}', code="invalid_json"),
    # Circuits.
    Refused("an include of /etc/passwd", 422, '"/etc/passwd" is not allowed',
            json={"qc": 'OPENQASM 2.0;\ninclude "/etc/passwd";\nqreg q[1];\n'}, code="include_refused"),
    Refused("an include of /etc/passwd on the header's line", 422, '"/etc/passwd" is not allowed',
            json={"qc": 'OPENQASM 2.0; include "/etc/passwd"; qreg q[1];'}, code="include_refused"),
    Refused("an include that climbs out of the folder", 422, '"../x.inc" is not allowed',
            json={"qc": 'OPENQASM 3.0;\ninclude "../x.inc";\nqubit[1] q;\n'}, code="include_refused"),
    Refused("an angle nested 5,000 brackets deep", 422, "nested more than",
            json={"qc": qasm2(1, "rz(" + "(" * 5000 + "1" + ")" * 5000 + ") q[0];\n")}, code="nesting_too_deep"),
    Refused("a loop that unrolls to 10^6 gates", 422, "over 100000",
            json={"qc": 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\n'
                        "for int i in [0:999999] { x q[0]; }\nc = measure q;\n"}, code="too_many_operations"),
    Refused("10^6 gates written out, in a batch (whose 32 MiB limit they fit)", 422, "circuit source is 8000074 bytes",
            path="/tasks/batch", json={"tasks": [{"qc": qasm2(1, "x q[0];\n" * 1_000_000)}]}, code="source_too_large"),
    Refused("a circuit with a NUL character", 422, "NUL", json={"qc": "OPENQASM 2.0;\x00"}),
    Refused("a circuit that is a number", 400, "qc: expected `str | null`, got `int`", json={"qc": 42}),
    # Strings with SQL metacharacters or control characters where the rules forbid them.
    Refused("SQL in the queue name", 400, "queue: expected `str` matching",
            json={"kind": "noop", "queue": SQL_INJECTION}),
    Refused("a queue name ending in a newline", 400, "queue: expected `str` matching",
            json={"kind": "noop", "queue": "default\n"}),
    # The rule in words, not as a regular expression whose backslashes JSON would double.
    Refused("a queue name with a slash", 400, "queue: expected `str` matching 1-64 characters of A-Z a-z 0-9 _ . : -",
            json={"kind": "noop", "queue": "a/b"}),
    Refused("a control character in the queue name", 400, "queue: expected `str` matching",
            json={"kind": "noop", "queue": "a\x07b"}),
    Refused("a space in the queue name", 400, "queue", json={"kind": "noop", "queue": "no spaces"}),
    Refused("SQL in the kind", 400, "kind: expected `str` matching",
            json={"kind": "noop'; DELETE FROM qqueue.tasks; --"}),
    Refused("a kind ending in a newline", 400, "kind: expected `str` matching", json={"kind": "noop\n"}),
    Refused("SQL in a simulation method", 422, "unknown method",
            json={"qc": BELL, "options": {"method": SQL_INJECTION}}, code="invalid_options"),
    Refused("SQL in a backend name", 422, "unknown backend", json={"qc": BELL, "options": {"backend": SQL_INJECTION}},
            code="unknown_backend"),
    Refused("a NUL in a tag", 400, "tags[0]: expected `str` matching", json={"kind": "noop", "tags": ["a\x00b"]}),
    Refused("a NUL in a metadata value", 422, "NUL", json={"kind": "noop", "metadata": {"x": "a\x00b"}},
            code="invalid_request"),
    Refused("a NUL in a metadata key", 422, "NUL", json={"kind": "noop", "metadata": {"a\x00b": 1}},
            code="invalid_request"),
    Refused("a NUL in a payload", 422, "NUL", json={"kind": "noop", "payload": {"x": "\x00"}}, code="invalid_request"),
    Refused("a NUL in a basis gate", 422, "NUL",
            json={"kind": "transpile", "qc": BELL, "options": {"basis_gates": ["cx\x00"]}}, code="invalid_request"),
    Refused("a control character in the Idempotency-Key header", 400, "Invalid HTTP request",
            json={"kind": "noop"}, headers={"Idempotency-Key": "a\x01b"}, by_server=True),
    Refused("an Idempotency-Key of 201 characters", 400, "idempotency_key: expected `str` of length <= 200",
            json={"kind": "noop"}, headers={"Idempotency-Key": "k" * 201}),
    Refused("an empty Idempotency-Key", 400, "idempotency_key: expected `str` of length >= 1", json={"kind": "noop"},
            headers={"Idempotency-Key": ""}),
    Refused("a NUL in a tags filter", 400, "tags: expected `str` matching", method="GET", params={"tags": "a\x00b"}),
    Refused("SQL in a queue filter", 400, "queue: expected `str` matching", method="GET",
            params={"queue": SQL_INJECTION}),
    Refused("SQL in a cursor", 400, "invalid cursor", method="GET", params={"cursor": SQL_INJECTION}),
    Refused("SQL in a task id", 400, "task_id: invalid uuid", method="GET", path="/tasks/1' OR '1'='1"),
    Refused("SQL in the id of a task to cancel", 400, "task_id: invalid uuid", path="/tasks/1;DELETE/cancel"),
    # Limits of tags and metadata.
    Refused("33 tags", 400, "tags: expected `array` of length <= 32",
            json={"kind": "noop", "tags": [f"t{i}" for i in range(33)]}),
    Refused("a tag of 101 characters", 400, "tags[0]: expected `str` of length <= 100",
            json={"kind": "noop", "tags": ["x" * 101]}),
    Refused("an empty tag", 400, "tags[0]: expected `str` of length >= 1", json={"kind": "noop", "tags": [""]}),
    Refused("metadata over 8 KiB", 422, "larger than 8192 bytes", json={"kind": "noop", "metadata": {"x": "y" * 9000}},
            code="metadata_too_large"),
    # Wrong types.
    Refused("tags as a string", 400, "tags: expected `array`, got `str`", json={"kind": "noop", "tags": "a"}),
    Refused("metadata as an array", 400, "metadata: expected `object`, got `array`",
            json={"kind": "noop", "metadata": [1]}),
    Refused("options as a string", 400, "options: expected `object`, got `str`", json={"qc": BELL, "options": "fast"}),
    Refused("a seed that is a string", 400, "seed", json={"qc": BELL, "options": {"seed": "x"}}),
    Refused("a run_at without a UTC offset", 400, "run_at", json={"qc": BELL, "run_at": "2030-01-01T00:00:00"}),
    Refused("a run_at past year 9999 in UTC", 422, "run_at must lie between years 1 and 9999",
            json={"kind": "noop", "run_at": "9999-12-31T23:59:59-14:00"}, code="invalid_request"),
    Refused("a run_at before year 1 in UTC", 422, "run_at must lie between years 1 and 9999",
            json={"kind": "noop", "run_at": "0001-01-01T00:00:00+14:00"}, code="invalid_request"),
    Refused("a batch whose tasks are not a list", 400, "tasks: expected `array`", path="/tasks/batch",
            json={"tasks": {"kind": "noop"}}),
    Refused("an empty batch", 400, "tasks", path="/tasks/batch", json={"tasks": []}),
    # Unknown fields.
    Refused("an unknown top-level field", 400, "unknown field `shotz`", json={"qc": BELL, "shotz": 100}),
    Refused("an unknown option", 400, "unknown field `sneaky`", json={"qc": BELL, "options": {"sneaky": 1}}),
    Refused("an unknown field beside the tasks of a batch", 400, "unknown field `extra`", path="/tasks/batch",
            json={"tasks": [{"kind": "noop"}], "extra": 1}),
    # A batch's items are refused one by one (the others are queued): alone, the bad item makes the whole answer
    # a 422 carrying its error at its index.
    Refused("an unknown field in a task of a batch", 422, "tasks[0]: Object contains unknown field `drop`",
            path="/tasks/batch", json={"tasks": [{"kind": "noop", "drop": "table"}]}, code="invalid_request"),
    Refused("a batch item that is not an object", 422, "tasks[0]: Expected `object`, got `int`", path="/tasks/batch",
            json={"tasks": [5]}, code="invalid_request"),
    Refused("a batch item with shots as a string", 422, "tasks[0].shots: Expected `int`, got `str`",
            path="/tasks/batch", json={"tasks": [{"qc": BELL, "shots": "many"}]}, code="invalid_request"),
]


def answer_message(response: httpx.Response, case: Refused) -> str:
    """The answer's message: the app's JSON `message` (with a batch's item messages), or the server's text."""
    if case.by_server:
        return response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert body["status"] == "error", body
    return " ".join([body["message"], *(i["error"]["message"] for i in body.get("items", []) if "error" in i)])


def answer_code(response: httpx.Response) -> str | None:
    """error.code of the answer, or of the first item of a batch answer."""
    body = response.json()
    error = body.get("error") or (body.get("items") or [{}])[0].get("error") or {}
    return error.get("code")


@pytest.mark.parametrize("case", REFUSED, ids=[c.says for c in REFUSED])
def test_a_hostile_request_is_refused_with_a_clear_message_and_writes_nothing(api, sql, case):  # noqa: F811
    before = written(sql)
    headers = dict(case.headers)
    content = case.raw
    if content is None and case.method == "POST":
        content = json.dumps(case.json).encode()
    if content is not None:
        headers.setdefault("content-type", "application/json")
    response = api.client.request(case.method, case.path, content=content, headers=headers, params=case.params)
    assert response.status_code == case.status, response.text[:2000]
    assert case.message.lower() in answer_message(response, case).lower(), response.text[:2000]
    if case.code is not None:
        assert answer_code(response) == case.code, response.text[:2000]
    assert "Traceback" not in response.text
    assert written(sql) == before


# --- bodies far over the limit, on a raw socket ----------------------------------------------------------------

LIMIT = 1024 * 1024  # Settings.api_max_body_bytes


def chunked(piece: bytes, count: int, sent: list[int]) -> Iterator[bytes]:
    """`count` chunks of `piece` in chunked transfer encoding, counting the bytes handed to the socket."""
    for _ in range(count):
        sent[0] += len(piece)
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


def gates(count: int, sent: list[int]) -> Iterator[bytes]:
    """A JSON body whose circuit writes out `count` gates, in parts of 10,000 gates."""
    gate = b"u3(0.1234567890123,0.1234567890123,0.1234567890123) q[0];\\n"
    head = b'{"qc": "OPENQASM 2.0;\\ninclude \\"qelib1.inc\\";\\nqreg q[1];\\ncreg c[1];\\n'
    parts = [head, *([gate * 10_000] * (count // 10_000)), b'measure q -> c;\\n"}']
    for part in parts:
        sent[0] += len(part)
        yield part


def gates_length(count: int) -> int:
    """Bytes in the body `gates(count)` yields."""
    return sum(len(p) for p in gates(count, [0]))


OVERSIZED = ["a Content-Length of 50 MiB, announced before any byte of the body",
             "64 MiB sent chunked, with no length announced",
             "a circuit of 10^6 gates written out (58 MB)"]


@pytest.mark.parametrize("says", OVERSIZED)
def test_a_body_far_over_the_limit_is_refused_before_it_is_read_whole(api, sql, says):  # noqa: F811
    before = written(sql)
    sent = [0]
    if says.startswith("a Content-Length"):
        head = (f"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {LIMIT * 50}\r\n\r\n").encode()
        answer, total = raw_request(api.port, head), LIMIT * 50
    elif says.startswith("64 MiB"):
        head = (b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        answer, total = raw_request(api.port, head, chunked(b"x" * 65536, 1024, sent)), 64 * LIMIT
    else:
        total = gates_length(1_000_000)
        head = (f"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {total}\r\n\r\n").encode()
        answer = raw_request(api.port, head, gates(1_000_000, sent))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"status":"error"' in answer and b"Request body too large." in answer
    # Answered long before the client was done: the server never read the body whole.
    assert sent[0] < 16 * LIMIT < total
    assert written(sql) == before


# --- hostile-looking strings that are valid: stored verbatim, harming nothing ----------------------------------

#: SQL metacharacters and placeholders, quotes, control characters, escapes, non-ASCII: data, never code.
ODD_STRINGS = [
    SQL_INJECTION,
    "' OR '1'='1",
    '"; DELETE FROM qqueue.task_events; --',
    "%s %(id)s $1 ? :name",
    "\\x00 \\u0000 (a backslash, not a NUL)",
    "tab\tnewline\ncarriage\rbell\x07escape\x1b[31mdelete\x7f",
    "ünïcødé ☃ 𝄞 \U0001F600",
]
#: What an HTTP header can carry: printable ASCII.
ODD_HEADER_VALUES = [SQL_INJECTION, "' OR '1'='1", '"; DELETE FROM qqueue.task_events; --', "%s %(id)s $1 ? :name"]

STORED = (
    [("a tag", value) for value in ODD_STRINGS]
    + [("a metadata key", value) for value in ODD_STRINGS]
    + [("a metadata value", value) for value in ODD_STRINGS]
    + [("a payload value", value) for value in ODD_STRINGS]
    + [("the Idempotency-Key header", value) for value in ODD_HEADER_VALUES]
    + [("the X-Correlation-ID header", value) for value in ODD_HEADER_VALUES]
)


@pytest.mark.parametrize(("where", "value"), STORED, ids=[f"{w} of {v!r}" for w, v in STORED])
def test_a_hostile_looking_but_valid_string_is_stored_verbatim_and_harms_nothing(api, sql, where, value):  # noqa: F811
    body: dict[str, Any] = {"kind": "noop", "queue": idle_queue()}
    headers: dict[str, str] = {}
    if where == "a tag":
        body["tags"] = [value]
    elif where == "a metadata key":
        body["metadata"] = {value: 1}
    elif where == "a metadata value":
        body["metadata"] = {"k": value}
    elif where == "a payload value":
        body["payload"] = {"k": value}
    elif where == "the Idempotency-Key header":
        headers["Idempotency-Key"] = f"{value} {uuid.uuid4()}"
    else:
        headers["X-Correlation-ID"] = value
    tasks, events = written(sql)
    response = api.client.post("/tasks", json=body, headers=headers)
    assert response.status_code == 201, response.text
    task_id = response.json()["task_id"]
    assert written(sql) == (tasks + 1, events + 1)  # the task and its 'pending' event, nothing else
    row = sql.execute("SELECT tags, metadata, payload, idempotency_key, correlation_id FROM qqueue.tasks "
                      "WHERE id = %s", (task_id,)).fetchone()
    task = api.client.get(f"/tasks/{task_id}").json()
    if where == "a tag":
        assert row[0] == task["tags"] == [value]
        # As a filter it is matched literally too.
        listed = api.client.get("/tasks", params={"queue": body["queue"], "tags": value}).json()["items"]
        assert [t["task_id"] for t in listed] == [task_id]
    elif where.startswith("a metadata"):
        assert row[1] == task["metadata"] == body["metadata"]
    elif where == "a payload value":
        assert row[2] == body["payload"]
    elif where == "the Idempotency-Key header":
        assert row[3] == headers["Idempotency-Key"]
        replay = api.client.post("/tasks", json=body, headers=headers)
        assert (replay.status_code, replay.json()["task_id"]) == (200, task_id)
        assert written(sql) == (tasks + 1, events + 1)
    else:
        assert row[4] == task["correlation_id"] == response.headers["x-correlation-id"] == value


def test_a_run_at_with_an_offset_postgresql_refuses_is_stored_in_utc(api, sql):  # noqa: F811
    # ISO 8601 allows offsets up to 23:59, PostgreSQL only up to 15:59: the API hands it the time in UTC.
    response = api.client.post("/tasks", json={"kind": "noop", "queue": idle_queue(),
                                               "run_at": "2030-01-01T00:00:00+16:30"})
    assert response.status_code == 201, response.text
    task = api.client.get(f"/tasks/{response.json()['task_id']}").json()
    assert task["run_at"] == "2029-12-31T07:30:00Z"


# --- the worker side: circuits that would exhaust memory or run for a minute -----------------------------------


@pytest.fixture
def served(db_url: str, conn: psycopg.Connection[Any], start_worker: Any) -> Iterator[tuple[ApiServer, Any]]:
    """An API and one single-slot worker on a database of the test's own."""
    worker = start_worker("--concurrency", "1")
    server = ApiServer(db_url)
    try:
        wait_until(lambda: live_workers(conn) >= 1, timeout_s=60)
        yield server, worker
    finally:
        server.stop()


MEMORY_HOGS = [
    ("40 qubits on a statevector", {"qc": qasm2(40, "h q;\nt q[0];\n")}, "40 qubits with the statevector method "
                                                                         "would need 16.0 TiB"),
    ("20 qubits as a density matrix", {"qc": qasm2(20, "h q;\nt q[0];\n"), "options": {"method": "density_matrix"}},
     "20 qubits with the density_matrix method would need 16.0 TiB"),
]


@pytest.mark.parametrize(("says", "body", "message"), MEMORY_HOGS, ids=[m[0] for m in MEMORY_HOGS])
def test_a_circuit_that_would_exhaust_memory_is_refused_by_preflight_with_the_memory_it_needs(
    served, conn, says, body, message
):
    server, _ = served
    before = written(conn)
    answer = assert_error(server.client.post("/tasks", json=body), 422, contains=message)
    assert answer["error"]["code"] == "too_much_memory" and "limit is 4.0 GiB" in answer["message"]
    assert written(conn) == before


def expensive_circuit(qubits: int = 12, t_gates: int = 40) -> str:
    """A valid circuit that Aer's extended stabilizer method needs about a minute for on one core (its cost
    grows exponentially with the T gates, 40 here), in little memory; finite, so that even a broken timeout
    cannot hold a slot for ever. Intake has no run-time model for this method, so it is accepted."""
    body = "h q;\n" + "".join(f"t q[{k % qubits}];\ncx q[{k % qubits}],q[{(k + 1) % qubits}];\nh q[{k % qubits}];\n"
                             for k in range(t_gates))
    return qasm2(qubits, body)


def test_a_circuit_that_would_run_for_a_minute_is_stopped_by_its_timeout_and_the_tasks_around_it_complete(
    served, conn
):
    server, worker = served

    def submit(body: dict[str, Any]) -> str:
        response = server.client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        return response.json()["task_id"]

    def ended(task_id: str) -> dict[str, Any] | None:
        task = server.client.get(f"/tasks/{task_id}").json()
        return task if task["status"] in ("completed", "failed", "cancelled") else None

    before = submit({"qc": BELL, "shots": 100})
    endless = submit({"qc": expensive_circuit(), "shots": 1, "timeout_s": 1, "max_attempts": 1,
                      "options": {"method": "extended_stabilizer"}})
    after = [submit({"qc": BELL, "shots": 100}) for _ in range(2)]
    # The test's own bound: well under the suite's 300 s, whatever the worker does.
    task = wait_until(lambda: ended(endless), timeout_s=90, interval_s=0.1)
    assert task["status"] == "failed", task
    assert task["error"]["type"] == "TaskTimeout" and task["error"]["message"] == "task ran past its 1 s timeout"
    for task_id in (before, *after):
        task = wait_until(lambda t=task_id: ended(t), timeout_s=60, interval_s=0.1)
        assert task["status"] == "completed", task
        assert sum(task["result"]["counts"].values()) == 100
    # The slot that ran it was killed and replaced; the one worker is still serving.
    logs = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
    assert any(line.get("event") == "slot killed" and line.get("error") == "timeout" for line in logs), logs
    assert [w["running_tasks"] for w in server.client.get("/workers").json()] == [0]


def test_the_test_kinds_are_closed_on_a_production_api(db_url, conn):
    server = ApiServer(db_url, env={"QQUEUE_API_RAW_KINDS": ""})
    try:
        before = written(conn)
        for kind in ("noop", "sleep", "fail"):
            body = assert_error(server.client.post("/tasks", json={"kind": kind, "payload": {}}), 422,
                                contains=f"kind '{kind}' is not accepted here")
            assert body["error"]["code"] == "unsupported_kind"
        assert written(conn) == before
    finally:
        server.stop()
