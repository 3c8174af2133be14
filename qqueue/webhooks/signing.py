"""Webhook signatures: HMAC-SHA256 of "<unix time>.<body>" under the tenant's secret, sent as
`X-QQueue-Signature: t=<unix time>,v1=<hex digest>`. The time is signed too, so a captured request cannot be
replayed later than the receiver's tolerance. Pure."""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["SIGNATURE_HEADER", "sign", "signature_header", "verify"]

SIGNATURE_HEADER = "X-QQueue-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The value of `X-QQueue-Signature` for `body`, signed now (or at `timestamp`)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={sign(secret, ts, body)}"


def verify(secret: str, header: str, body: bytes, tolerance_s: float = 300, *, now: float | None = None) -> bool:
    """Whether `header` (the `X-QQueue-Signature` value) signs exactly `body` under `secret`, at a time within
    `tolerance_s` of now (either way, for clocks that disagree a little).

    Parameters
    ----------
    secret
        The tenant's webhook secret (`qqueue keys webhook-secret TENANT`).
    header
        The header as received, e.g. ``t=1767225600,v1=5f0c…``. Several ``v1=`` entries may be given; one
        matching is enough.
    body
        The request body exactly as received, before any JSON decoding.
    """
    timestamp: int | None = None
    digests: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1":
            digests.append(value)
    if timestamp is None or not digests:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body)
    # Every candidate is compared, each in constant time, so timing says nothing about which came close.
    return any([hmac.compare_digest(expected.encode(), d.encode("ascii", "replace")) for d in digests])
