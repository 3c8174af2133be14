"""What the client raises: the API's refusals (`ApiError`), a server out of reach (`TransportError`), and a
wait that ran out (`WaitTimeoutError`)."""

from __future__ import annotations

from typing import Any

import msgspec

from qqueue.api.schemas import ErrorAnswer


class ApiError(Exception):
    """The API answered with an error status. Fields come from its `ErrorAnswer` body; `code` is the
    machine-readable reason (`invalid_request`, `too_complex`, `idempotency_key_reused`…) where it gave one."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        correlation_id: str | None = None,
        line: int | None = None,
        column: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.correlation_id = correlation_id
        self.line = line
        self.column = column
        #: The server's Retry-After, on a 429 or 503 that stayed one after every retry.
        self.retry_after_s = retry_after_s

    @classmethod
    def from_answer(
        cls, status: int, body: bytes, *, correlation_id: str | None = None, retry_after_s: float | None = None
    ) -> ApiError:
        """The error of an answer: its `ErrorAnswer` when the body is one, else the body's text (a proxy's page,
        say), so a refusal is never lost for want of the expected shape."""
        try:
            answer = msgspec.json.decode(body, type=ErrorAnswer)
        except (msgspec.DecodeError, msgspec.ValidationError):
            text = body.decode("utf-8", "replace").strip()
            return cls(status, text[:500] or f"HTTP {status}", correlation_id=correlation_id,
                       retry_after_s=retry_after_s)
        detail = answer.error
        return cls(
            status,
            answer.message,
            code=detail.code if detail else None,
            details=detail.details if detail else None,
            correlation_id=answer.correlation_id or correlation_id,
            line=detail.line if detail else None,
            column=detail.column if detail else None,
            retry_after_s=retry_after_s,
        )

    def __str__(self) -> str:
        where = f" (line {self.line}, column {self.column})" if self.line is not None else ""
        code = f" {self.code}" if self.code else ""
        return f"HTTP {self.status}{code}: {self.message}{where}"


class TransportError(Exception):
    """The server could not be reached, or stopped answering, on every try (the last httpx error is the
    `__cause__`)."""

    def __init__(self, message: str, *, url: str, attempts: int) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.attempts = attempts


class WaitTimeoutError(TimeoutError):
    """`wait` / `wait_job` ran out before the task or job ended; `last` is what the last look answered."""

    def __init__(self, what: str, ident: Any, status: str, timeout: float, last: Any) -> None:
        super().__init__(f"{what} {ident} is still {status} after {timeout:g} s")
        self.what = what
        self.id = ident
        self.status = status
        self.timeout = timeout
        self.last = last
