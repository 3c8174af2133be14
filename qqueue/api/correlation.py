"""Correlation ids: taken from the client's X-Correlation-ID when it is sane, otherwise made up; kept in the
ASGI scope for the request, echoed on every answer (including errors and unknown routes), stored on tasks and
written into every log line about them."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from litestar.datastructures import MutableScopeHeaders

if TYPE_CHECKING:
    from litestar.types import Message, Scope

HEADER = "X-Correlation-ID"
_HEADER_KEY = HEADER.lower().encode()
_STATE_KEY = "qqueue_correlation_id"
#: At most 255 visible ASCII characters or spaces (the column allows 255; anything else could not be echoed
#: safely in a header or a log line).
_VALID = re.compile(r"[\x20-\x7e]{1,255}")


def valid(value: str) -> bool:
    """True when a client-given correlation id can be used as is."""
    return _VALID.fullmatch(value) is not None and not value.isspace()


def from_scope(scope: Scope | dict[str, Any]) -> str:
    """This request's correlation id, decided on first use and cached in the scope."""
    state = scope.setdefault("state", {})
    cid = state.get(_STATE_KEY)
    if cid is None:
        cid = None
        for name, value in scope.get("headers", ()):
            if name == _HEADER_KEY:
                candidate = value.decode("latin-1")
                if valid(candidate):
                    cid = candidate
                break
        cid = cid or uuid.uuid4().hex
        state[_STATE_KEY] = cid
    return cid


async def echo_header(message: Message, scope: Scope) -> None:
    """`before_send` hook: add X-Correlation-ID to the start of every HTTP answer."""
    if message["type"] == "http.response.start":
        MutableScopeHeaders.from_message(message)[HEADER] = from_scope(scope)
