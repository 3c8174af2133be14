"""Every error qqueue raises on purpose: one root, `QQueueError`, and a subclass per cause.

Domain code raises these; the CLI and the HTTP layer translate them into one-line messages and 4xx answers.
A subclass docstring doubles as its default message.
"""

from __future__ import annotations

from typing import Any


class QQueueError(Exception):
    """qqueue failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0])


class ConfigError(QQueueError):
    """The configuration is invalid."""


class DatabaseUnavailableError(QQueueError):
    """The database cannot be reached."""


class SchemaNotReadyError(QQueueError):
    """The database schema is behind this version of qqueue; run `qqueue migrate`."""


class NotFoundError(QQueueError):
    """Something a request names does not exist (or belongs to another tenant, which reads the same)."""


class TaskNotFoundError(NotFoundError):
    """Task not found."""

    def __init__(self, task_id: object) -> None:
        super().__init__()
        self.task_id = task_id


class JobNotFoundError(NotFoundError):
    """Job not found."""

    def __init__(self, job_id: object) -> None:
        super().__init__()
        self.job_id = job_id


class CursorError(QQueueError):
    """Invalid cursor: pass next_cursor of the previous page unchanged."""


class InvalidTransitionError(QQueueError):
    """The task is not in a state that allows this change."""


class UnknownKindError(QQueueError):
    """No task kind of this name is registered."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown task kind {kind!r}")
        self.kind = kind


class IdempotencyConflictError(QQueueError):
    """This idempotency key was already used with a different request."""

    def __init__(self, key: str) -> None:
        super().__init__("This Idempotency-Key was already used with a different request.")
        self.key = key


class RateLimitedError(QQueueError):
    """Too many submissions: the tenant is over its rate or its pending-task limit; retry after a while."""

    def __init__(self, message: str, *, retry_after_s: float, code: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.code = code


class IntakeBusyError(QQueueError):
    """Every circuit parser is busy; retry shortly."""

    def __init__(self, *, retry_after_s: float) -> None:
        super().__init__("Every circuit parser is busy; retry shortly.")
        self.retry_after_s = retry_after_s


class IntakeError(QQueueError):
    """The submitted circuit or options were rejected before queueing.

    Carries a machine-readable `code`, a human message, and where known the 1-based `line` and `column`
    of the offending source position plus free-form `details` (e.g. the memory a circuit would need).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid_request",
        line: int | None = None,
        column: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.line = line
        self.column = column
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the error for wire answers and logs."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.line is not None:
            out["line"] = self.line
        if self.column is not None:
            out["column"] = self.column
        if self.details:
            out["details"] = self.details
        return out


class TaskFailure(QQueueError):
    """Raised by a task kind to fail the task with a chosen retry behaviour.

    Any other exception a kind raises is treated as a retryable failure of type `type(exc).__name__`.
    """

    def __init__(self, message: str, *, retryable: bool = True, type: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.type = type or self.__class__.__name__


class PermanentFailure(TaskFailure):
    """The task failed and retrying cannot help."""

    def __init__(self, message: str, *, type: str | None = None) -> None:
        super().__init__(message, retryable=False, type=type)
