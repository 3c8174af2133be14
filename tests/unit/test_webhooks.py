"""Webhook signatures and callback targets, without a database or a network."""

from __future__ import annotations

import ipaddress
import re
import time
import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from qqueue.api.schemas import JobWebhookEvent, WebhookEvent
from qqueue.api.schemas.webhooks import event_of
from qqueue.errors import ConfigError
from qqueue.webhooks import sender, signature_header, targets, verify
from tests.conftest import REPO

SECRET = "whsec_" + "ab" * 32
BODY = b'{"event":"task.finished","status":"completed"}'


def test_a_signature_made_now_verifies():
    header = signature_header(SECRET, BODY)
    assert verify(SECRET, header, BODY)
    assert not verify("whsec_other", header, BODY)


def test_a_tampered_body_does_not_verify():
    header = signature_header(SECRET, BODY)
    assert not verify(SECRET, header, BODY.replace(b"completed", b"failed"))
    assert not verify(SECRET, header, BODY + b" ")


def test_a_stale_or_future_timestamp_does_not_verify_and_the_timestamp_is_signed():
    now = time.time()
    stale = signature_header(SECRET, BODY, timestamp=int(now) - 301)
    assert not verify(SECRET, stale, BODY, now=now)
    assert verify(SECRET, stale, BODY, tolerance_s=600, now=now)
    assert not verify(SECRET, signature_header(SECRET, BODY, timestamp=int(now) + 301), BODY, now=now)
    # Moving the timestamp forward breaks the signature: a captured request cannot be made fresh again.
    digest = stale.split("v1=", 1)[1]
    assert not verify(SECRET, f"t={int(now)},v1={digest}", BODY, now=now)


@pytest.mark.parametrize("header", ["", "t=,v1=", "v1=00", "t=12", "t=abc,v1=00", "t=١٢٣,v1=00", "garbage"])
def test_malformed_headers_do_not_verify(header):
    assert not verify(SECRET, header, BODY)


@pytest.mark.parametrize(("url", "says"), [
    ("file:///etc/passwd", "http"), ("ftp://example.com/", "http"), ("gopher://x/", "http"),
    ("http://user:pw@example.com/", "credentials"), ("http://user@example.com/", "credentials"),
    ("http:///path", "no host"), ("http://example.com:99999/", "valid"), ("http://exa mple.com/", "ASCII"),
    ("http://example.com/" + "a" * 2048, "longer"), ("http://bücher.example/", "ASCII"),
])
def test_malformed_callback_urls_are_refused_before_any_lookup(url, says):
    with pytest.raises(targets.TargetRefused, match=says):
        targets.parse(url)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "::1", "fe80::1", "fc00::1", "224.0.0.1", "0.0.0.0", "::", "::ffff:127.0.0.1",
                                     "100.64.0.1", "240.0.0.1"])
def test_special_addresses_are_refused_unless_allowed(address):
    host = f"[{address}]" if ":" in address else address
    target = targets.parse(f"http://{host}:8080/hook")
    with pytest.raises(targets.TargetRefused, match="allow-list"):
        targets.checked(targets.AllowList(), target)
    network = "::/0" if ":" in address and not address.startswith("::ffff") else "0.0.0.0/0"
    assert targets.checked(targets.AllowList.from_entries([network]), target) == [ipaddress.ip_address(address)]


def test_public_addresses_pass_and_the_pinned_url_keeps_port_path_and_host():
    target = targets.parse("https://93.184.215.14:8443/hooks/qq?x=1")
    [address] = targets.checked(targets.AllowList(), target)
    assert target.pinned(address) == "https://93.184.215.14:8443/hooks/qq?x=1"
    assert target.host_header == "93.184.215.14:8443"
    assert targets.parse("http://[2001:db8::1]/").host_header == "[2001:db8::1]"


def test_a_host_name_resolving_to_loopback_is_refused_and_an_allowed_name_passes():
    target = targets.parse("http://localhost:9/hook")
    with pytest.raises(targets.TargetRefused, match="resolves to"):
        targets.checked(targets.AllowList.from_entries(["10.0.0.0/8"]), target)
    assert targets.checked(targets.AllowList.from_entries(["localhost"]), target)
    assert targets.AllowList.from_entries(["*.internal"]).allows_host("hooks.internal")


@pytest.mark.parametrize("entry", ["http://x/", "a b", "10.0.0.0/33", "*", "*."])
def test_a_bad_allow_list_entry_is_a_configuration_error(entry):
    with pytest.raises(ConfigError, match="allow-list"):
        targets.AllowList.from_entries([entry])


def test_the_readme_receiver_snippet_verifies_what_qqueue_signs():
    section = (REPO / "README.md").read_text().split("### Webhooks", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    scope: dict[str, object] = {}
    exec(compile(code, "README.md webhooks example", "exec"), scope)  # noqa: S102
    readme_verify = scope["verify"]
    assert callable(readme_verify)
    header = signature_header(SECRET, BODY)
    assert readme_verify(SECRET, header, BODY) and not readme_verify(SECRET, header, BODY + b"x")
    assert not readme_verify(SECRET, signature_header(SECRET, BODY, timestamp=int(time.time()) - 400), BODY)


def test_a_jobs_notice_says_it_is_a_job_and_a_tasks_says_it_is_a_task():
    job_id, task_id = uuid.uuid4(), uuid.uuid4()
    ended = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    job_row = {"id": 7, "task_id": None, "job_id": job_id, "task_status": "failed", "task_attempt": None,
               "finished_at": ended, "error": {"type": "Boom", "message": "part 1", "retryable": False}}
    body = sender.body_of(job_row, "https://qq.example.com/")
    event = msgspec.json.decode(body, type=JobWebhookEvent)
    assert (event.event, event.delivery_id, event.job_id, event.status, event.finished_at) == (
        "job.finished", 7, job_id, "failed", ended)
    assert event.error is not None and (event.error.code, event.error.message) == ("Boom", "part 1")
    assert event.result_url is None and b"task_id" not in body and event_of(job_row["job_id"]) == "job.finished"
    done = sender.body_of({**job_row, "task_status": "completed", "error": None}, "https://qq.example.com/")
    assert msgspec.json.decode(done, type=JobWebhookEvent).result_url == f"https://qq.example.com/jobs/{job_id}"
    task_row = {**job_row, "task_id": task_id, "job_id": None, "task_status": "completed", "task_attempt": 2,
                "error": None}
    task = msgspec.json.decode(sender.body_of(task_row, None), type=WebhookEvent)
    assert (task.event, task.task_id, task.attempt, task.result_url) == ("task.finished", task_id, 2,
                                                                         f"/tasks/{task_id}")
    assert event_of(task_row["job_id"]) == "task.finished"
