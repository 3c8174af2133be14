"""The task list's filter form: the query string of /ui/tasks read into the `ListFilter` GET /tasks uses, with the
same rules (a value the API refuses is refused here too, with a message, and nothing is read)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

import msgspec

from qqueue.api.errors import worded
from qqueue.api.schemas import KindName, QueueName, Tag
from qqueue.errors import CursorError
from qqueue.store.reads import ListFilter, decode_cursor
from qqueue.tasks import TaskStatus

__all__ = ["FilterError", "TaskFilterForm", "parse"]

#: Page sizes the form offers; the API's bounds (1 to 500) hold for any other.
PAGE_SIZES = (25, 50, 100, 200)


class FilterError(ValueError):
    """A filter value the task list refuses; the message says which and why."""


class TaskFilterForm(msgspec.Struct, kw_only=True, frozen=True):
    """The filter form's fields, as the page re-renders them."""

    status: list[TaskStatus] = msgspec.field(default_factory=list)
    queue: QueueName | None = None
    kind: KindName | None = None
    tags: Annotated[list[Tag], msgspec.Meta(max_length=32)] = msgspec.field(default_factory=list)
    #: Times as typed in a datetime-local field: without an offset they are read as UTC.
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50
    cursor: Annotated[str, msgspec.Meta(max_length=200)] | None = None

    def list_filter(self, tenant: str | None) -> ListFilter:
        """The read's filter, scoped to `tenant`."""
        return ListFilter(tenant=tenant, statuses=[s.value for s in self.status] or None, queue=self.queue,
                          kind=self.kind, tags=self.tags or None, created_after=_utc(self.created_after),
                          created_before=_utc(self.created_before), limit=self.limit, cursor=self.cursor)

    def query(self, **changes: str | None) -> str:
        """The query string of this form with `changes` (None drops a field), for paging links."""
        fields: dict[str, str | list[str] | None] = {
            "status": [s.value for s in self.status], "queue": self.queue, "kind": self.kind,
            "tags": " ".join(self.tags) or None,
            "created_after": self.created_after.isoformat() if self.created_after else None,
            "created_before": self.created_before.isoformat() if self.created_before else None,
            "limit": str(self.limit), "cursor": self.cursor, **changes}
        return urlencode({k: v for k, v in fields.items() if v}, doseq=True)


def parse(query: Mapping[str, Sequence[str]]) -> TaskFilterForm:
    """The form of a query string (each name with all its values); `FilterError` for a value the list refuses.
    Empty fields are unset; `tags` is split on spaces and commas."""
    raw: dict[str, object] = {}
    for name in ("queue", "kind", "created_after", "created_before", "limit", "cursor"):
        values = [v.strip() for v in query.get(name, ()) if v.strip()]
        if values:
            raw[name] = values[-1]
    statuses = [v for v in query.get("status", ()) if v]
    if statuses:
        raw["status"] = statuses
    for name in ("created_after", "created_before"):
        if name in raw:
            raw[name] = _moment(name, str(raw[name]))
    tags = [t for v in query.get("tags", ()) for t in v.replace(",", " ").split()]
    if tags:
        raw["tags"] = tags
    try:
        form = msgspec.convert(raw, TaskFilterForm, strict=False)
        if form.cursor:
            decode_cursor(form.cursor)
    except msgspec.ValidationError as exc:
        raise FilterError(f"Invalid filter: {worded(str(exc))}") from None
    except CursorError as exc:  # a cursor not made by a page of this list
        raise FilterError(str(exc)) from None
    return form


def _moment(name: str, text: str) -> datetime:
    # fromisoformat, not the JSON decoder's RFC 3339: a datetime-local field sends minutes without seconds.
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(f"Invalid filter: {name} must be a date and time, e.g. 2026-01-31T09:30 (UTC)") from None


def _utc(when: datetime | None) -> datetime | None:
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)
