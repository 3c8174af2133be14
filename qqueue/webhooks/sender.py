"""One webhook send: the body (a `WebhookEvent`, or a job's `JobWebhookEvent`), its signature, and the POST to
the address that was checked.

Never follows redirects (a 3xx is a failed attempt: a redirect could lead anywhere the allow-list refuses), never
reads more of the answer than its status line and headers, ignores proxy settings of the environment (a proxy
would connect to the name again, unchecked), and bounds every send by a short timeout.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import msgspec

from qqueue import __version__
from qqueue.api.schemas.webhooks import JobWebhookEvent, WebhookError, WebhookEvent, event_of
from qqueue.tasks import TaskStatus
from qqueue.webhooks import targets
from qqueue.webhooks.signing import SIGNATURE_HEADER, signature_header

__all__ = ["Attempt", "body_of", "new_client", "send"]

_encoder = msgspec.json.Encoder()

#: Longest error text recorded for an attempt.
MAX_ERROR_CHARS = 500


class Attempt(msgspec.Struct, kw_only=True, frozen=True):
    """What one send came to."""

    delivered: bool
    status_code: int | None = None
    error: str | None = None
    #: Trying again cannot help (the target is refused, or there is no secret to sign with).
    final: bool = False


def body_of(row: dict[str, Any], public_url: str | None) -> bytes:
    """The JSON body of a claimed delivery row: a `WebhookEvent` for a task's, a `JobWebhookEvent` for a job's."""
    status = TaskStatus(row["task_status"])
    error = row["error"]
    reason = WebhookError(code=str(error.get("type", "error")), message=str(error.get("message", ""))) \
        if isinstance(error, dict) else None
    finished_at: datetime = row["finished_at"]
    job_id: uuid.UUID | None = row["job_id"]
    path = f"/jobs/{job_id}" if job_id is not None else f"/tasks/{row['task_id']}"
    result_url = f"{(public_url or '').rstrip('/')}{path}" if status is TaskStatus.COMPLETED else None
    if job_id is not None:
        return _encoder.encode(JobWebhookEvent(delivery_id=row["id"], job_id=job_id, status=status,
                                               finished_at=finished_at, error=reason, result_url=result_url))
    return _encoder.encode(WebhookEvent(
        delivery_id=row["id"], task_id=row["task_id"], status=status, attempt=row["task_attempt"],
        finished_at=finished_at, error=reason, result_url=result_url))


def new_client(timeout_s: float) -> httpx.Client:
    """The HTTP client sends go through: no redirects, no proxies from the environment, short timeouts."""
    return httpx.Client(follow_redirects=False, trust_env=False,
                        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
                        limits=httpx.Limits(max_connections=16, max_keepalive_connections=0),
                        headers={"User-Agent": f"qqueue-webhooks/{__version__}"})


def send(client: httpx.Client, allow: targets.AllowList, row: dict[str, Any], body: bytes) -> Attempt:
    """Check the target again (resolving its host now), then POST the signed body to a checked address."""
    secret = row["secret"]
    if not secret:
        return Attempt(delivered=False, error="no webhook secret for the task's tenant", final=True)
    try:
        target = targets.parse(row["url"])
        addresses = targets.checked(allow, target)
    except targets.TargetRefused as exc:
        # A name that does not resolve may resolve later; a refused address is refused for good.
        return Attempt(delivered=False, error=exc.message[:MAX_ERROR_CHARS],
                       final=not isinstance(exc, targets.TargetUnresolved))
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature_header(secret, body, timestamp=int(time.time())),
        "X-QQueue-Delivery": str(row["id"]),
        "X-QQueue-Event": event_of(row["job_id"]),
    }
    # TLS is checked against the name in the URL, while the connection goes to the address just checked.
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        with client.stream("POST", target.pinned(addresses[0]), content=body, headers=headers,
                           extensions=extensions) as response:
            code = response.status_code
    except httpx.HTTPError as exc:
        return Attempt(delivered=False, error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
    if 200 <= code < 300:
        return Attempt(delivered=True, status_code=code)
    return Attempt(delivered=False, status_code=code, error=f"the receiver answered {code}")
