"""Domain errors and framework errors -> HTTP answers, in one place.

Domain code raises `qqueue.errors` types and never an HTTP error; the handlers here choose the status and
write an `ErrorAnswer` body. Nothing here ever puts a traceback into an answer: an unexpected exception is
logged (with task id and correlation id) and answered with a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types.empty import Empty
from psycopg_pool import PoolTimeout

from qqueue.api import bodies, correlation
from qqueue.api.schemas import PATTERN_WORDS, ErrorAnswer, ErrorDetail
from qqueue.errors import (
    CursorError,
    DatabaseUnavailableError,
    EventStreamsFullError,
    IdempotencyConflictError,
    IntakeBusyError,
    IntakeError,
    InvalidTransitionError,
    MetricsCatchingUpError,
    NotFoundError,
    RateLimitedError,
    SchemaNotReadyError,
)

log = logging.getLogger("qqueue.api")

ExceptionHandler = Callable[[Request[Any, Any, Any], Any], Response[ErrorAnswer]]

#: Framework errors whose own wording is not meant for API clients.
_HTTP_MESSAGES = {
    404: "Not found.",
    405: "Method not allowed.",
    413: "Request body too large.",
    500: "Internal server error.",
}


#: What each error status means, as the OpenAPI document tells clients.
_DESCRIPTIONS = {
    "400": "Malformed request (bad JSON, wrong types, unknown fields, malformed id)",
    "401": "API key missing, malformed, unknown or revoked (servers started with --auth)",
    "403": "The API key's role may not do this (an operator's key is needed)",
    "404": "Not found (or another tenant's)",
    "409": "Conflict",
    "413": "Request body too large",
    "422": "Rejected by preflight (the circuit cannot be parsed or exceeds the limits)",
    "429": "The tenant is over its submission rate or pending-task limit; retry after Retry-After seconds "
           "(servers started with --auth)",
    "503": "Database unavailable, every circuit parser busy, (GET /events) every event stream taken, or "
           "(GET /metrics) a backlog still being rolled up; retry after Retry-After seconds",
}


def documented(*codes: str) -> dict[int, ResponseSpec]:
    """OpenAPI `responses` for these error statuses, each answered with an `ErrorAnswer`."""
    return {int(c): ResponseSpec(data_container=ErrorAnswer, description=_DESCRIPTIONS[c]) for c in codes}


def error_response(
    status_code: int, message: str, *, error: ErrorDetail | None = None, correlation_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorAnswer]:
    """An `ErrorAnswer` with the given status."""
    body = ErrorAnswer(status="error", message=message, error=error, correlation_id=correlation_id)
    return Response(body, status_code=status_code, headers=headers)


def _context(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Log fields of the request an error belongs to."""
    extra: dict[str, Any] = {"correlation_id": correlation.from_scope(request.scope)}
    task_id = request.scope.get("path_params", {}).get("task_id")
    if task_id is not None:
        extra["task_id"] = str(task_id)
    return extra


def not_found(request: Request[Any, Any, Any], exc: NotFoundError) -> Response[ErrorAnswer]:
    # Exactly {"status": "error", "message": "Task not found."}: the contract of the system qqueue replaces.
    return error_response(HTTP_404_NOT_FOUND, exc.message)


def invalid_transition(request: Request[Any, Any, Any], exc: InvalidTransitionError) -> Response[ErrorAnswer]:
    message = exc.message[:1].upper() + exc.message[1:]
    return error_response(HTTP_409_CONFLICT, message if message.endswith(".") else message + ".")


def idempotency_conflict(request: Request[Any, Any, Any], exc: IdempotencyConflictError) -> Response[ErrorAnswer]:
    return error_response(HTTP_409_CONFLICT, exc.message,
                          error=ErrorDetail(code="idempotency_key_reused", message=exc.message))


def intake_error(request: Request[Any, Any, Any], exc: IntakeError) -> Response[ErrorAnswer]:
    detail = ErrorDetail(code=exc.code, message=exc.message, line=exc.line, column=exc.column,
                         details=exc.details or None)
    return error_response(HTTP_422_UNPROCESSABLE_ENTITY, exc.message, error=detail)


def rate_limited(request: Request[Any, Any, Any], exc: RateLimitedError) -> Response[ErrorAnswer]:
    detail = ErrorDetail(code=exc.code, message=exc.message)
    return error_response(HTTP_429_TOO_MANY_REQUESTS, exc.message, error=detail,
                          headers={"Retry-After": str(int(exc.retry_after_s))})


def database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorAnswer]:
    # The outage itself is logged once by ApiContext; per request, only at debug level.
    log.debug("answered 503: %s", exc, extra=_context(request))
    message = exc.message if isinstance(exc, SchemaNotReadyError) else "Database unavailable; try again shortly."
    return error_response(HTTP_503_SERVICE_UNAVAILABLE, message, headers={"Retry-After": "1"})


def intake_busy(request: Request[Any, Any, Any], exc: IntakeBusyError) -> Response[ErrorAnswer]:
    log.warning("answered 503: every intake parser is busy", extra=_context(request))
    return error_response(HTTP_503_SERVICE_UNAVAILABLE, exc.message,
                          error=ErrorDetail(code="intake_busy", message=exc.message),
                          headers={"Retry-After": str(max(1, int(exc.retry_after_s)))})


def streams_full(request: Request[Any, Any, Any], exc: EventStreamsFullError) -> Response[ErrorAnswer]:
    log.warning("answered 503: %s", exc.message, extra=_context(request))
    return error_response(HTTP_503_SERVICE_UNAVAILABLE, exc.message,
                          error=ErrorDetail(code="event_streams_full", message=exc.message),
                          headers={"Retry-After": str(max(1, int(exc.retry_after_s)))})


def metrics_catching_up(request: Request[Any, Any, Any], exc: MetricsCatchingUpError) -> Response[ErrorAnswer]:
    log.info("answered 503: the metrics are rolling up a backlog", extra=_context(request))
    return error_response(HTTP_503_SERVICE_UNAVAILABLE, exc.message,
                          error=ErrorDetail(code="metrics_catching_up", message=exc.message),
                          headers={"Retry-After": "1"})


def validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorAnswer]:
    """Bad JSON, wrong types, unknown fields, bad path or query values: 400 naming what was wrong."""
    problems = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for problem in problems:
        if isinstance(problem, dict):
            key, text = problem.get("key"), str(problem.get("message", "invalid"))
            if text == f"'{key}'":
                # Litestar words a missing value as the bare KeyError; an empty body is the case a client meets.
                text = "a JSON body is required" if problem.get("source") == "body" else "a value is required"
            parts.append(f"{key}: {worded(text)}" if key and key != "data" else worded(text))
    message = "Invalid request: " + "; ".join(parts) if parts else f"Invalid request: {exc.detail}"
    return error_response(HTTP_400_BAD_REQUEST, message,
                          error=ErrorDetail(code="invalid_request", message=message))


def worded(text: str) -> str:
    """A validation message with each of our patterns told in words: "matching 1-64 characters of …", not a
    regular expression whose escapes come out doubled in JSON."""
    for pattern, words in PATTERN_WORDS.items():
        for quoted in (repr(pattern), f"'{pattern}'"):
            text = text.replace(f"regex {quoted}", words)
    return text


class JsonBodyRequest(Request[Any, Any, Any]):
    """The app's request class: a body that cannot be decoded is always the client's fault (400).

    msgspec reports bytes that are not UTF-8 and nesting deeper than the interpreter's recursion limit with
    plain Python exceptions rather than a `msgspec.DecodeError`, which Litestar would answer with a 500."""

    async def json(self) -> Any:
        """The decoded JSON body (as `qqueue.api.bodies` decodes it where the route names a layout);
        `SerializationException` (answered 400) when it cannot be decoded."""
        layout = self.route_handler.opt.get(bodies.LAYOUT_OPT)
        try:
            if layout is None:
                return await super().json()
            if self._json is Empty:
                limit = self.route_handler.opt[bodies.LIMIT_OPT]
                self._json = await bodies.decode(await self.body() or b"null", layout, limit=limit)
            return self._json
        except UnicodeDecodeError as exc:
            raise SerializationException(f"the body is not valid UTF-8 ({exc.reason})") from None
        except RecursionError:
            raise SerializationException("the body is nested too deeply") from None
        except (msgspec.DecodeError, bodies.BodyTooLarge) as exc:
            raise SerializationException(str(exc)) from None


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorAnswer]:
    """Other framework errors (unknown route, wrong method, body too large, malformed JSON...)."""
    status = exc.status_code
    if status >= 500:
        return internal_error(request, exc)
    if isinstance(exc.__cause__, SerializationException):
        message = f"Invalid JSON body: {exc.detail}"
        return error_response(status, message, error=ErrorDetail(code="invalid_json", message=message))
    message = _HTTP_MESSAGES.get(status) or str(exc.detail)
    return error_response(status, message, headers=exc.headers)


def bad_cursor(request: Request[Any, Any, Any], exc: CursorError) -> Response[ErrorAnswer]:
    """A listing's cursor that no page gave out: 400."""
    message = f"Invalid request: {exc.message}"
    return error_response(HTTP_400_BAD_REQUEST, message, error=ErrorDetail(code="invalid_request", message=message))


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorAnswer]:
    """The catch-all: log everything, answer nothing but the correlation id to quote."""
    extra = _context(request)
    log.error("unhandled error: %s: %s", type(exc).__name__, exc, exc_info=exc, extra=extra)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error.",
                          correlation_id=extra["correlation_id"])


EXCEPTION_HANDLERS: dict[type[Exception], ExceptionHandler] = {
    NotFoundError: not_found,
    InvalidTransitionError: invalid_transition,
    IdempotencyConflictError: idempotency_conflict,
    IntakeError: intake_error,
    IntakeBusyError: intake_busy,
    EventStreamsFullError: streams_full,
    MetricsCatchingUpError: metrics_catching_up,
    RateLimitedError: rate_limited,
    DatabaseUnavailableError: database_unavailable,
    SchemaNotReadyError: database_unavailable,
    PoolTimeout: database_unavailable,
    ValidationException: validation_error,
    CursorError: bad_cursor,
    HTTPException: http_error,
    Exception: internal_error,
}
