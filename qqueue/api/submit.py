"""From wire submissions to `TaskSpec`s: the wire's own checks, intake through the parser pool, idempotency
hashing.

Circuit kinds go through intake (`qqueue.intake`), which parses the OpenQASM source, measures the circuit and
rejects what cannot run (an `IntakeError`, answered 422) before anything is queued; it runs in the API's
`ParserPool`, never on the event loop. Kinds without a circuit (`Settings.api_raw_kinds`, none by default; noop,
sleep and fail under `qqueue dev` and the benchmarks) are queued with the `payload` given.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any, NamedTuple, TypeVar

import msgspec

from qqueue.api import correlation
from qqueue.api.auth import tenant_of
from qqueue.api.schemas import PubSubmission, TaskSubmission
from qqueue.errors import IntakeError
from qqueue.intake import CIRCUIT_KINDS, IntakeLimits, IntakeRequest, ParserPool, PreparedTask
from qqueue.intake.model import CANONICAL
from qqueue.tasks import TaskSpec
from qqueue.webhooks import targets

#: Largest `metadata` object accepted, encoded as JSON.
MAX_METADATA_BYTES = 8192


class Caller(NamedTuple):
    """Who submits, as a submit handler needs it: the request's correlation id and the tenant its tasks belong
    to."""

    correlation_id: str
    tenant: str | None


def caller(scope: Any) -> Caller:
    """The `Caller` of a submit request."""
    return Caller(correlation.from_scope(scope), tenant_of(scope))


#: Submission fields added after Idempotency-Keys were first hashed: left out of the hash while unset, so a
#: request replayed across an upgrade still matches the hash its first attempt stored.
_LATER_FIELDS = ("callback_url",)


def request_hash(body: Any) -> str:
    """A hash of the decoded request: equal for equal requests however their JSON was spelt (key order,
    spacing, defaults written out or not), different for any difference in what was asked. Inputs kept as
    JSON text are hashed as written: pass them through `as_read` first."""
    plain = msgspec.to_builtins(body, builtin_types=(msgspec.Raw,))
    if isinstance(plain, dict):
        for name in _LATER_FIELDS:
            if name in plain and plain[name] is None:
                del plain[name]
    return hashlib.sha256(CANONICAL.encode(plain)).hexdigest()


WithInputs = TypeVar("WithInputs", TaskSubmission, PubSubmission)
#: Inputs held as JSON text that intake did not hand back (a refused batch item's, a task of a kind without a
#: circuit, an item that did not decode) which a request's hash decodes itself, so that they are hashed as
#: decoded, however spelt; past this much text a request, they are hashed as written.
HASH_DECODE_BYTES = 1024 * 1024


class HashDecoder:
    """Decodes, for one request's hash, the JSON text of inputs intake did not hand back, up to
    `HASH_DECODE_BYTES`; text that does not decode (a number past a double) is hashed as written."""

    def __init__(self) -> None:
        self.left = HASH_DECODE_BYTES

    def decoded(self, value: Any) -> Any:
        """`value` decoded if it is JSON text within what is left; else `value`."""
        if isinstance(value, msgspec.Raw) and len(value) <= self.left:
            self.left -= len(value)
            try:
                return msgspec.json.decode(value)
            except (msgspec.DecodeError, RecursionError):
                return value
        return value


def as_read(sub: WithInputs, prepared: PreparedTask | IntakeError | None,
            decoder: HashDecoder | None = None) -> WithInputs:
    """`sub` (a task or a PUB) with the inputs it holds as JSON text (`qqueue.api.bodies`) written as intake
    read them (`IntakeRequest.echo_inputs`), so that their hash is that of what they say, not of their
    spelling; where intake did not hand them back, decoded by `decoder` (or left as they are)."""
    texts = {"parameter_values": sub.parameter_values, "observables": sub.observables}
    if isinstance(prepared, PreparedTask) and prepared.inputs_json is not None:
        echoed = prepared.inputs_json._asdict()
        read = {name: msgspec.Raw(echoed[name]) for name, given in texts.items()
                if isinstance(given, msgspec.Raw) and echoed[name] is not None}
    elif decoder is not None:
        read = {name: decoder.decoded(given) for name, given in texts.items() if isinstance(given, msgspec.Raw)}
    else:
        read = {}
    return msgspec.structs.replace(sub, **read) if read else sub


def intake_request(sub: TaskSubmission, *, raw_kinds: Sequence[str], default_timeout_s: float,
                   limits: IntakeLimits | None = None, echo_inputs: bool = False) -> IntakeRequest | None:
    """The wire's own checks of one submission; what intake must check of its circuit (None for kinds without
    one). Raises `IntakeError` when it must not be queued."""
    if sub.run_at is not None and sub.delay_s is not None:
        raise IntakeError("give run_at or delay_s, not both", code="invalid_request")
    if sub.run_at is not None:
        _utc(sub)
    check_metadata(sub.metadata)
    if sub.callback_url is not None:
        callback_target(sub.callback_url)
    if sub.options.basis_gates:
        no_nul(msgspec.json.encode(sub.options.basis_gates), "options.basis_gates")
    if sub.qc is not None and "\x00" in sub.qc:
        raise IntakeError("qc contains a NUL character", code="invalid_request")
    if sub.kind in raw_kinds:
        no_nul(msgspec.json.encode(sub.payload or {}), "payload")
        return None
    if sub.kind not in CIRCUIT_KINDS:
        open_kinds = ", ".join(raw_kinds) or "none on this server (QQUEUE_API_RAW_KINDS)"
        raise IntakeError(f"kind {sub.kind!r} is not accepted here: circuit kinds are {', '.join(CIRCUIT_KINDS)}; "
                          f"kinds without a circuit: {open_kinds}", code="unsupported_kind")
    if sub.payload is not None:
        open_kinds = ", ".join(raw_kinds) or "none is open on this server"
        raise IntakeError(f"payload is only accepted for kinds without a circuit ({open_kinds}); send the circuit "
                          "as qc", code="invalid_request")
    if sub.qc is None:
        raise IntakeError("qc is required: the OpenQASM source of the circuit", code="missing_circuit")
    return IntakeRequest(qc=sub.qc, kind=sub.kind, shots=sub.shots, options=msgspec.to_builtins(sub.options),
                         limits=limits or IntakeLimits(), timeout_s=sub.timeout_s or default_timeout_s,
                         parameter_values=sub.parameter_values, observables=sub.observables,
                         precision=sub.precision, outputs=list(sub.outputs) if sub.outputs is not None else None,
                         echo_inputs=echo_inputs)


def callback_target(url: str) -> targets.Target:
    """A callback URL's form checked (scheme, length, no credentials); raises `IntakeError` (422)."""
    try:
        return targets.parse(url)
    except targets.TargetRefused as exc:
        raise IntakeError(exc.message, code="callback_refused") from None


#: Host names one request's callbacks may name: each is a DNS lookup on the API's resolver threads.
MAX_CALLBACK_HOSTS = 16


async def check_callbacks(urls: Sequence[str], allow: targets.AllowList) -> dict[str, IntakeError]:
    """Resolve each distinct callback URL's host and check every address against `allow`, all at once; the
    refusal of each URL that may not be called."""
    refused: dict[str, IntakeError] = {}
    hosts: set[str] = set()
    distinct = []
    for url in dict.fromkeys(urls):
        target = targets.parse(url)
        if not targets.is_literal(target.host) and target.host not in hosts:
            if len(hosts) == MAX_CALLBACK_HOSTS:
                refused[url] = IntakeError(f"one request may name at most {MAX_CALLBACK_HOSTS} callback host "
                                           "names; send the rest in another request", code="callback_refused")
                continue
            hosts.add(target.host)
        distinct.append(url)
    outcomes = await asyncio.gather(*(targets.checked_async(allow, targets.parse(u)) for u in distinct),
                                    return_exceptions=True)
    for url, outcome in zip(distinct, outcomes, strict=True):
        if isinstance(outcome, targets.TargetRefused):
            refused[url] = IntakeError(outcome.message, code="callback_refused")
        elif isinstance(outcome, BaseException):
            raise outcome
    return refused


async def check_callback(url: str, allow: targets.AllowList) -> None:
    """One callback URL checked exactly as a task's is at submission: its form, then every address its host
    resolves to; raises the `IntakeError` (422, `callback_refused`) that refuses it."""
    callback_target(url)
    refusal = (await check_callbacks([url], allow)).get(url)
    if refusal is not None:
        raise refusal


def check_metadata(metadata: dict[str, Any]) -> None:
    """Metadata is small and storable: at most MAX_METADATA_BYTES as JSON, and no NUL anywhere."""
    if not metadata:
        return
    encoded = msgspec.json.encode(metadata)
    if len(encoded) > MAX_METADATA_BYTES:
        raise IntakeError(f"metadata is larger than {MAX_METADATA_BYTES} bytes as JSON",
                          code="metadata_too_large", details={"limit_bytes": MAX_METADATA_BYTES})
    no_nul(encoded, "metadata")


def _utc(sub: TaskSubmission) -> None:
    try:
        # In UTC: PostgreSQL refuses offsets past 15:59 (ISO 8601 allows up to 23:59), and stores years past
        # 9999 or before 1 (9999-12-31T23:59-14:00) that no Python client, the API included, could read back.
        assert sub.run_at is not None
        sub.run_at.astimezone(UTC)
    except OverflowError:
        raise IntakeError("run_at must lie between years 1 and 9999 in UTC", code="invalid_request") from None


def to_spec(
    sub: TaskSubmission, prepared: PreparedTask | None, *, correlation_id: str, idempotency_key: str | None,
    request_hash: str | None = None, tenant: str | None = None,
) -> TaskSpec:
    """The task to queue for a submission that passed its checks (`prepared`: intake's answer, None for kinds
    without a circuit).

    `request_hash` (of the whole request) is stored with an idempotency key, so a reuse of the key with
    another request can be told apart from a retry."""
    return TaskSpec(
        kind=sub.kind, payload=prepared.payload if prepared else (sub.payload or {}), queue=sub.queue,
        priority=sub.priority, max_attempts=sub.max_attempts,
        run_at=sub.run_at.astimezone(UTC) if sub.run_at is not None else None, delay_s=sub.delay_s,
        timeout_s=sub.timeout_s, idempotency_key=idempotency_key, correlation_id=correlation_id, tags=sub.tags,
        metadata=sub.metadata, profile=prepared.profile if prepared else None,
        cache_key=prepared.cache_key if prepared else None,
        request_hash=request_hash if idempotency_key else None, tenant=tenant, callback_url=sub.callback_url,
    )


#: U+0000 as JSON escapes it: "\u0000" after an even number of backslashes (after an odd number, it is the text
#: "\u0000" with its backslash escaped, which PostgreSQL stores as any other).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def no_nul(encoded: bytes, field: str) -> None:
    """Refuse a JSON text holding U+0000, which PostgreSQL text and jsonb cannot store."""
    if _ESCAPED_NUL.search(encoded):
        raise IntakeError(f"{field} contains a NUL character (\\u0000), which cannot be stored",
                          code="invalid_request")


async def to_specs(
    subs: Sequence[TaskSubmission | IntakeError], pool: ParserPool, *, raw_kinds: Sequence[str],
    default_timeout_s: float,
    correlation_id: str, idempotency_key: str | None, hashed: Callable[[list[Any], HashDecoder], Any] | None = None,
    per_item_keys: bool = True, tenant: str | None = None, callback_allow: targets.AllowList | None = None,
) -> list[TaskSpec | IntakeError]:
    """A spec for each submission, or the error refusing it, in order (an item already refused, as a batch
    item that did not decode, stays refused); every circuit goes through the parser pool in one round. With
    `per_item_keys` (batches), item i of a request sent with an Idempotency-Key gets the
    key "{key}/{i}", so a replayed batch finds each of its tasks again; otherwise the key is used as is. With a
    key, each spec carries the hash of `hashed(read, decoder)`, where `read` is the submissions as intake read
    them (`as_read`): what the request is, as hashed. Callback URLs are resolved and checked against
    `callback_allow` before any circuit is parsed."""
    echo = bool(idempotency_key)
    checked = [_checked(sub, raw_kinds, default_timeout_s, echo) for sub in subs]
    urls = [sub.callback_url for sub, c in zip(subs, checked, strict=True)
            if isinstance(sub, TaskSubmission) and sub.callback_url is not None and not isinstance(c, IntakeError)]
    if urls:
        refused = await check_callbacks(urls, callback_allow or targets.AllowList())
        checked = [refused.get(sub.callback_url, c) if isinstance(sub, TaskSubmission) and sub.callback_url
                   and not isinstance(c, IntakeError) else c for sub, c in zip(subs, checked, strict=True)]
    requests = [c for c in checked if isinstance(c, IntakeRequest)]
    answers = iter(await pool.prepare_many_async(requests) if requests else [])
    outcomes = [next(answers) if isinstance(c, IntakeRequest) else c for c in checked]
    digest = None
    if idempotency_key and not all(isinstance(outcome, IntakeError) for outcome in outcomes):
        decoder = HashDecoder()
        read = [as_read(sub, outcome, decoder) if isinstance(sub, TaskSubmission) else sub
                for sub, outcome in zip(subs, outcomes, strict=True)]
        digest = request_hash(hashed(read, decoder) if hashed else read)
    out: list[TaskSpec | IntakeError] = []
    for index, (sub, prepared) in enumerate(zip(subs, outcomes, strict=True)):
        if isinstance(prepared, IntakeError):
            out.append(prepared)
            continue
        assert isinstance(sub, TaskSubmission)
        key = f"{idempotency_key}/{index}" if idempotency_key and per_item_keys else idempotency_key
        out.append(to_spec(sub, prepared, correlation_id=correlation_id, idempotency_key=key,
                           request_hash=digest, tenant=tenant))
    return out


def _checked(sub: TaskSubmission | IntakeError, raw_kinds: Sequence[str],
             default_timeout_s: float, echo_inputs: bool) -> IntakeRequest | IntakeError | None:
    if isinstance(sub, IntakeError):
        return sub
    try:
        return intake_request(sub, raw_kinds=raw_kinds, default_timeout_s=default_timeout_s,
                              echo_inputs=echo_inputs)
    except IntakeError as exc:
        return exc
