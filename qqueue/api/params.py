"""What the endpoints share in their declarations: the API context, the Idempotency-Key header and the answer
of its replays, the long-poll `wait` of GET /tasks/{task_id} and GET /jobs/{job_id}, and the filters of the task
and job listings (GET /tasks, GET /jobs), each written once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, QueryParameter

from qqueue.api.context import ApiContext
from qqueue.api.errors import documented
from qqueue.api.schemas import NAME_PATTERN, Tag

Api = NamedDependency[ApiContext]

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(name="Idempotency-Key", min_length=1, max_length=200, required=False,
                    description="Retrying with the same key and body returns the first task (200); the same key "
                                "with a different body is refused (409)."),
]


def submit_responses(answer: type, replayed: str, *, refused: str | None = None) -> dict[int, ResponseSpec]:
    """The answers of a submit besides its 201: 200 for an Idempotency-Key replay, answered with `replayed` (the
    task, the job…) of the earlier request, and its errors; with `refused`, a 422 is an `answer` too (a batch
    whose every item was refused), described so."""
    replay = ResponseSpec(data_container=answer, description=f"Idempotency-Key replay: {replayed} of the earlier "
                                                              "request")
    if refused is None:
        return {200: replay, **documented("400", "401", "409", "413", "422", "429", "503")}
    return {200: replay, 422: ResponseSpec(data_container=answer, description=refused),
            **documented("400", "401", "409", "413", "429", "503")}


def long_poll(ends: str, *, zero: str = "") -> Any:
    """The `wait` query parameter of a read that can wait, up to 60 s, for its subject to end (`ends`, in words);
    `zero`, when given, adds what a wait of 0 does."""
    return QueryParameter(ge=0, le=60, required=False,
                          description=f"Long-poll: answer as soon as {ends}, or after this many seconds (at most "
                                      f"60), whichever comes first{zero}.")


#: A listing's `status` (of its own status type): any of the values given.
ANY_STATUS = QueryParameter(required=False, description="Any of these; repeat for several.")
#: A listing's `queue` or `kind`.
NameFilter = Annotated[str | None, QueryParameter(pattern=NAME_PATTERN, required=False)]
#: A listing's `tags`: Tag, not str, since a NUL in a filter value would otherwise reach PostgreSQL, which refuses
#: it (a 500).
TagFilter = Annotated[
    list[Tag] | None, QueryParameter(required=False, description="Only those carrying every tag given; repeat.")]
#: A listing's `created_after` or `created_before`.
CreatedFilter = Annotated[datetime | None, QueryParameter(required=False)]
PageLimit = Annotated[int, QueryParameter(ge=1, le=500)]
PageCursor = Annotated[
    str | None, QueryParameter(required=False, description="next_cursor of the previous page, unchanged")
]
