"""From a wire submission to a `TaskSpec`: preflight through intake, limits, idempotency hashing. No I/O.

Circuit kinds go through `qqueue.intake.prepare`, which parses the OpenQASM source, measures the circuit and
rejects what cannot run (an `IntakeError`, answered 422) before anything is queued. Kinds without a circuit
(`Settings.api_raw_kinds`: noop, sleep, fail by default) are queued with the `payload` given, for smoke tests and
benchmarks through HTTP.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable, Sequence
from datetime import UTC
from functools import cache
from typing import Any

import msgspec

from qqueue.api.schemas import TaskSubmission
from qqueue.errors import IntakeError
from qqueue.tasks import TaskSpec

#: Largest `metadata` object accepted, encoded as JSON.
MAX_METADATA_BYTES = 8192

_encoder = msgspec.json.Encoder(order="sorted")


def request_hash(body: msgspec.Struct) -> str:
    """A hash of the decoded request: equal for equal requests however their JSON was spelt (key order,
    spacing, defaults written out or not), different for any difference in what was asked."""
    return hashlib.sha256(_encoder.encode(body)).hexdigest()


@cache
def _prepare_fn() -> Callable[..., Any] | None:
    """`qqueue.intake.prepare`, or None while intake is not part of this installation."""
    try:
        module = importlib.import_module("qqueue.intake")
    except ModuleNotFoundError as exc:
        if exc.name == "qqueue.intake":
            return None
        raise
    return getattr(module, "prepare", None)


def intake_available() -> bool:
    """True when circuit kinds can be preflighted (and so accepted)."""
    return _prepare_fn() is not None


def _preflight(sub: TaskSubmission) -> tuple[Any, Any, str | None]:
    """(payload, profile, cache_key) from intake; cache_key only when intake offers one (seeded circuits)."""
    prepare = _prepare_fn()
    if prepare is None:
        raise IntakeError(f"kind {sub.kind!r} cannot be accepted: circuit intake is not installed on this server",
                          code="unsupported_kind")
    prepared = prepare(sub.qc, kind=sub.kind, shots=sub.shots, options=msgspec.to_builtins(sub.options),
                       limits=None)
    if isinstance(prepared, tuple):
        payload, profile = prepared
        return payload, profile, None
    return prepared.payload, prepared.profile, getattr(prepared, "cache_key", None)


def to_spec(
    sub: TaskSubmission, *, raw_kinds: Sequence[str], correlation_id: str, idempotency_key: str | None,
    request_hash: str | None = None, tenant: str | None = None,
) -> TaskSpec:
    """The task to queue for one submission; raises `IntakeError` when it must not be queued.

    `request_hash` (of the whole request) is stored with an idempotency key, so a reuse of the key with
    another request can be told apart from a retry."""
    if sub.run_at is not None and sub.delay_s is not None:
        raise IntakeError("give run_at or delay_s, not both", code="invalid_request")
    run_at = None
    if sub.run_at is not None:
        try:
            # In UTC: PostgreSQL refuses offsets past 15:59 (ISO 8601 allows up to 23:59), and stores years past
            # 9999 or before 1 (9999-12-31T23:59-14:00) that no Python client, the API included, could read back.
            run_at = sub.run_at.astimezone(UTC)
        except OverflowError:
            raise IntakeError("run_at must lie between years 1 and 9999 in UTC", code="invalid_request") from None
    if sub.metadata:
        encoded = msgspec.json.encode(sub.metadata)
        if len(encoded) > MAX_METADATA_BYTES:
            raise IntakeError(f"metadata is larger than {MAX_METADATA_BYTES} bytes as JSON",
                              code="metadata_too_large", details={"limit_bytes": MAX_METADATA_BYTES})
        _no_nul(encoded, "metadata")
    if sub.options.basis_gates:
        _no_nul(msgspec.json.encode(sub.options.basis_gates), "options.basis_gates")
    if sub.qc is not None and "\x00" in sub.qc:
        raise IntakeError("qc contains a NUL character", code="invalid_request")
    profile = cache_key = None
    if sub.kind in raw_kinds:
        payload = sub.payload or {}
        _no_nul(msgspec.json.encode(payload), "payload")
    else:
        if sub.payload is not None:
            raise IntakeError(f"payload is only accepted for kinds without a circuit ({', '.join(raw_kinds)}); "
                              "send the circuit as qc", code="invalid_request")
        if sub.qc is None:
            raise IntakeError("qc is required: the OpenQASM source of the circuit", code="missing_circuit")
        payload, profile, cache_key = _preflight(sub)
    return TaskSpec(
        kind=sub.kind, payload=payload, queue=sub.queue, priority=sub.priority, max_attempts=sub.max_attempts,
        run_at=run_at, delay_s=sub.delay_s, timeout_s=sub.timeout_s, idempotency_key=idempotency_key,
        correlation_id=correlation_id, tags=sub.tags, metadata=sub.metadata, profile=profile, cache_key=cache_key,
        request_hash=request_hash if idempotency_key else None, tenant=tenant,
    )


#: U+0000 as JSON escapes it: "\u0000" after an even number of backslashes (after an odd number, it is the text
#: "\u0000" with its backslash escaped, which PostgreSQL stores as any other).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _no_nul(encoded: bytes, field: str) -> None:
    # PostgreSQL text and jsonb cannot hold U+0000: refuse it here rather than fail in the INSERT.
    if _ESCAPED_NUL.search(encoded):
        raise IntakeError(f"{field} contains a NUL character (\\u0000), which cannot be stored",
                          code="invalid_request")


def to_specs(
    subs: Sequence[TaskSubmission], *, raw_kinds: Sequence[str], correlation_id: str, idempotency_key: str | None,
    request_hash: str | None = None, per_item_keys: bool = True, tenant: str | None = None,
) -> list[TaskSpec | IntakeError]:
    """`to_spec` for each submission, an item's error in its place. With `per_item_keys` (batches), item i of
    a request sent with an Idempotency-Key gets the key "{key}/{i}", so a replayed batch finds each of its
    tasks again; otherwise the key is used as is."""
    out: list[TaskSpec | IntakeError] = []
    for index, sub in enumerate(subs):
        key = idempotency_key
        if key and per_item_keys:
            key = f"{key}/{index}"
        try:
            out.append(to_spec(sub, raw_kinds=raw_kinds, correlation_id=correlation_id, idempotency_key=key,
                               request_hash=request_hash, tenant=tenant))
        except IntakeError as exc:
            out.append(exc)
    return out


def heavy(subs: Sequence[TaskSubmission]) -> bool:
    """Whether preflighting these would hold the event loop for long (then it runs on a worker thread).
    Parsing a small circuit costs ~0.1-3 ms: cheaper inline than a thread hop."""
    return len(subs) > 8 or sum(len(s.qc or "") for s in subs) > 20_000
