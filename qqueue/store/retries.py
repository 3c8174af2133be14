"""What a retry selects and what it reports, shared by the queue's retry (sync and async), the API and the CLI.

A retry sends failed and cancelled tasks back to 'pending' (the task_retry query, one statement with its history
rows). It keeps the attempt counter counting and gives the task as many attempts again as it was submitted with.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec

from qqueue.api.schemas import BulkRetryAnswer
from qqueue.errors import InvalidTransitionError, TaskNotFoundError

__all__ = ["RetryFilter", "RetryResult", "RetryRow", "bulk_answer", "retry_params"]


class RetryFilter(msgspec.Struct, kw_only=True, frozen=True):
    """Which tasks a retry looks at: `ids`, whatever their status, or else every finished task matching the
    listing's filters, where `statuses` may name only 'failed' and 'cancelled'. None matches everything."""

    ids: Sequence[uuid.UUID] | None = None
    statuses: Sequence[str] = ("failed",)
    queue: str | None = None
    kind: str | None = None
    tags: Sequence[str] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class RetryRow(msgspec.Struct, kw_only=True, frozen=True):
    """One task a retry looked at: its status before, whether it is within the limit, whether it can be retried
    (finished without completing, attempts left)."""

    id: uuid.UUID
    previous_status: str
    within: bool
    retryable: bool
    spent: bool


class RetryResult(msgspec.Struct, kw_only=True, frozen=True):
    """What a retry did (or, with `dry_run`, would do)."""

    rows: list[RetryRow]
    dry_run: bool

    @property
    def retried(self) -> list[uuid.UUID]:
        """The tasks sent back to 'pending' (that would be, in a dry run), oldest first."""
        return [r.id for r in self.rows if r.within and r.retryable]

    @property
    def more(self) -> bool:
        """Whether more tasks matched than the limit let through."""
        return any(not r.within for r in self.rows)

    def outcome_of(self, task_id: uuid.UUID) -> Literal["failed", "cancelled"]:
        """The status `task_id` was retried from; `TaskNotFoundError` (none, or another tenant's) or
        `InvalidTransitionError` (a state no retry leaves) when it was not."""
        row = next((r for r in self.rows if r.id == task_id), None)
        if row is None:
            raise TaskNotFoundError(task_id)
        if row.spent and row.previous_status in ("failed", "cancelled"):
            raise InvalidTransitionError(f"Task {task_id} has used all 100 attempts a task may have; submit it again")
        if not row.retryable:
            raise InvalidTransitionError(f"Task {task_id} is {row.previous_status}; only a failed or cancelled task "
                                         "can be retried")
        return "failed" if row.previous_status == "failed" else "cancelled"


def retry_params(where: RetryFilter, tenant: str | None, note: str, dry_run: bool, limit: int) -> dict[str, Any]:
    """The parameters of the task_retry query; `InvalidTransitionError` for filters naming a status no retry
    leaves."""
    bad = set(where.statuses) - {"failed", "cancelled"}
    if where.ids is None and (bad or not where.statuses):
        raise InvalidTransitionError("only failed or cancelled tasks can be retried")
    return {"ids": list(where.ids) if where.ids is not None else None, "statuses": list(where.statuses),
            "queue": where.queue, "kind": where.kind, "tags": list(where.tags) if where.tags else None,
            "created_after": where.created_after, "created_before": where.created_before,
            "tenant": tenant, "note": note, "dry_run": dry_run,
            "limit": len(where.ids) if where.ids is not None else limit}


def bulk_answer(result: RetryResult, limit: int) -> BulkRetryAnswer:
    """The answer of a bulk retry (POST /tasks/retry, `qqueue retry` with filters)."""
    ids = result.retried
    verb = "would be queued again" if result.dry_run else "queued again"
    more = "; more than the limit match" + ("" if result.dry_run else ": send the request again for the rest")
    return BulkRetryAnswer(dry_run=result.dry_run, retried=len(ids), task_ids=ids, more=result.more, limit=limit,
                           message=f"{len(ids)} tasks {verb}{more if result.more else ''}.")
