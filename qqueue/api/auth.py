"""Who is asking: `Authorization: Bearer <key>` checked against qqueue.api_keys, when API keys are on.

A valid key makes its tenant the request's user; handlers scope every read and write to it (`tenant_of`).
Every failure is the same 401, so an answer never tells a guessed prefix from a wrong secret. With keys off
there is no middleware and `tenant_of` is None: one trusted user sees everything.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware

from qqueue.api import correlation
from qqueue.store import keys, reads

log = logging.getLogger("qqueue.api")

__all__ = ["EXCLUDE_FROM_AUTH", "authenticate_key", "bearer_auth", "tenant_of"]

#: Route option that lets a handler answer without a key (GET /health, for load balancers).
EXCLUDE_FROM_AUTH = "exclude_from_auth"
_BEARER_REFUSAL = "A valid API key is required: send `Authorization: Bearer <key>`."
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="qqueue"'}


class _BearerKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        presented = presented.strip()
        prefix = keys.parse(presented) if scheme.lower() == "bearer" else None
        if prefix is None:
            raise _refused(connection, "missing or malformed" if not header else "malformed")
        return await authenticate_key(connection, presented, prefix)


async def authenticate_key(
    connection: ASGIConnection[Any, Any, Any, Any], presented: str, prefix: str, *,
    refusal: str = _BEARER_REFUSAL,
) -> AuthenticationResult:
    """The tenant of the key `presented` (whose public prefix is `prefix`), or `NotAuthorizedException` with
    `refusal` when it is unknown, wrong or revoked. Shared by the bearer header and the dashboard's cookie."""
    api = connection.app.state["api"]
    row = await api.read(reads.api_key(prefix))
    # The hash is compared even for a revoked key, so both answers take the same time.
    matches = row is not None and keys.verify(presented, row.key_hash)
    if row is None or not matches or row.revoked:
        raise _refused(connection, "revoked" if matches else "unknown", refusal)
    return AuthenticationResult(user=row.tenant, auth=prefix)


def _refused(
    connection: ASGIConnection[Any, Any, Any, Any], why: str,
    refusal: str = _BEARER_REFUSAL,
) -> NotAuthorizedException:
    log.info("request refused: %s API key", why, extra={"correlation_id": correlation.from_scope(connection.scope)})
    return NotAuthorizedException(refusal, headers=_CHALLENGE)


def bearer_auth() -> DefineMiddleware:
    """The middleware to install when API keys are on. The interactive docs and the OpenAPI document stay
    public: they describe the API and hold nothing of any tenant. The dashboard (/ui) checks its own cookie."""
    return DefineMiddleware(_BearerKeyMiddleware, exclude=["^/schema", "^/ui"], exclude_from_auth_key=EXCLUDE_FROM_AUTH,
                            exclude_http_methods=["OPTIONS"])


def tenant_of(scope: Any) -> str | None:
    """The tenant making this request, or None when API keys are off."""
    user = scope.get("user")
    return user if isinstance(user, str) else None
