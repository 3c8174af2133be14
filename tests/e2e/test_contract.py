"""The contract of the system qqueue replaces, field by field: clients written against it work unchanged.

qqueue's answers are a superset: every field that contract names is there, with its value's type and meaning.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.e2e.test_api import api, module_db, sql, worker  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

BELL = {"qc": 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\n'
              "c[0] = measure q[0];\nc[1] = measure q[1];", "shots": 1024}
X_GATE = {"qc": 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit q;\nbit c;\nx q;\nc = measure q;', "shots": 100}


def is_time(value: object) -> bool:
    return isinstance(value, str) and datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


def test_submitting_answers_task_id_message_submitted_at_and_correlation_id(api):  # noqa: F811
    response = api.client.post("/tasks", json=BELL)
    assert response.status_code == 201, response.text
    body = response.json()
    assert {"task_id", "message", "submitted_at", "correlation_id"} <= set(body)
    assert body["message"] == "Task submitted successfully."
    assert is_time(body["submitted_at"]) and isinstance(body["correlation_id"], str) and body["correlation_id"]


def test_a_finished_task_reads_as_the_contract_says(api, worker):  # noqa: F811
    submitted = api.client.post("/tasks", json=X_GATE).json()
    task = api.client.get(f"/tasks/{submitted['task_id']}", params={"wait": 30}).json()
    assert task["status"] == "completed"
    assert task["submitted_at"] == submitted["submitted_at"]
    assert task["message"] == "Task completed successfully."
    assert task["correlation_id"] == submitted["correlation_id"]
    result = task["result"]
    assert (result["counts"], result["shots"], result["success"]) == ({"1": 100}, 100, True)
    history = task["status_history"]
    assert [h["status"] for h in history] == ["pending", "running", "completed"]
    for item in history:
        assert {"status", "transitioned_at", "notes"} <= set(item)
        assert is_time(item["transitioned_at"]) and (item["notes"] is None or isinstance(item["notes"], str))


def test_health_answers_status_timestamp_database_status_and_queue_status(api):  # noqa: F811
    body = api.client.get("/health").json()
    assert (body["status"], body["database_status"], body["queue_status"]) == ("healthy", "connected", "connected")
    assert is_time(body["timestamp"])


def test_the_openapi_document_names_the_contract_fields(api):  # noqa: F811
    schemas = api.client.get("/schema/openapi.json").json()["components"]["schemas"]
    assert {"task_id", "message", "submitted_at", "correlation_id"} <= set(schemas["SubmitAnswer"]["properties"])
    assert {"status", "submitted_at", "message", "result", "status_history", "correlation_id"} <= set(
        schemas["TaskDetail"]["properties"])
    assert {"status", "transitioned_at", "notes"} <= set(schemas["StatusChange"]["properties"])
    assert {"status", "timestamp", "database_status", "queue_status"} <= set(schemas["Health"]["properties"])
    assert schemas["TaskSubmission"]["properties"]["shots"]["maximum"] == 100_000
