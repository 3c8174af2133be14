"""Who is asking: `Authorization: Bearer <key>` checked against qqueue.api_keys, when API keys are on.

A valid key makes its `Principal` (tenant and role) the request's user. A tenant's key sees and changes only its
tenant's tasks and jobs (`visible_tenant`); an operator's sees every tenant's, and what only operators may see
(`requires_operator`, a route guard). What a key submits belongs to its tenant (`tenant_of`); an operator key
may have none, and its submissions then belong to no tenant, like those made with keys off. Every failure is
the same 401, so an answer never tells a guessed prefix from a wrong secret. With keys off there is no
middleware: one trusted user, with an operator's rights, sees everything (`TRUSTED`).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware

from qqueue.api import correlation
from qqueue.store import keys, reads

log = logging.getLogger("qqueue.api")

__all__ = ["EXCLUDE_FROM_AUTH", "TRUSTED", "Principal", "authenticate", "authenticate_key", "bearer_auth",
           "principal_of",
           "requires_operator", "tenant_of", "visible_tenant"]

#: Route option that lets a handler answer without a key (GET /health, for load balancers).
EXCLUDE_FROM_AUTH = "exclude_from_auth"
_BEARER_REFUSAL = "A valid API key is required: send `Authorization: Bearer <key>`."
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="qqueue"'}


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Whom a request speaks for: a tenant (or none), the key's role, and the key's public prefix."""

    tenant: str | None
    role: keys.Role
    #: The key's public prefix; None with keys off.
    key_prefix: str | None = None

    @property
    def operator(self) -> bool:
        """Whether this caller sees every tenant and the operator's pages."""
        return self.role == "operator"

    def describe(self) -> str:
        """Who this is in a sentence's words, for history notes and logs (never the key's secret)."""
        if self.key_prefix is None:
            return "the API (keys off)"
        owner = f" of tenant {self.tenant}" if self.tenant else ""
        return f"{self.role} key {self.key_prefix}{owner}"

    def actor(self, via: str | None = None) -> str:
        """Who changed a queue, in the short words of its history (qqueue.queue_events.actor): the key's prefix
        when keys are on, after the surface the change came through when that is not the API itself (`via`,
        e.g. "dashboard": "dashboard, api key k3x9p2m4q8zt"); "api" alone, or `via` alone, with keys off."""
        key = f"api key {self.key_prefix}" if self.key_prefix else None
        return ", ".join(part for part in (via, key) if part) or "api"


#: The one trusted user of a server without API keys.
TRUSTED = Principal(tenant=None, role="operator")


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The principal of the request's bearer key; `NotAuthorizedException` (401) when it has no valid one."""
    header = connection.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    presented = presented.strip()
    prefix = keys.parse(presented) if scheme.lower() == "bearer" else None
    if prefix is None:
        raise _refused(connection, "missing or malformed" if not header else "malformed")
    result = await authenticate_key(connection, presented, prefix)
    return result.user


async def authenticate_key(
    connection: ASGIConnection[Any, Any, Any, Any], presented: str, prefix: str, *,
    refusal: str = _BEARER_REFUSAL,
) -> AuthenticationResult:
    """The `Principal` of the key `presented` (whose public prefix is `prefix`) as the request's user, or
    `NotAuthorizedException` with `refusal` when it is unknown, wrong or revoked. Shared by the bearer header
    and the dashboard's cookie."""
    api = connection.app.state["api"]
    row = await api.read(reads.api_key(prefix))
    # The hash is compared even for a revoked key, so both answers take the same time.
    matches = row is not None and keys.verify(presented, row.key_hash)
    if row is None or not matches or row.revoked:
        raise _refused(connection, "revoked" if matches else "unknown", refusal)
    return AuthenticationResult(user=Principal(tenant=row.tenant, role=row.role, key_prefix=prefix), auth=prefix)


class _BearerKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        principal = await authenticate(connection)
        return AuthenticationResult(user=principal, auth=principal.key_prefix)


def _refused(
    connection: ASGIConnection[Any, Any, Any, Any], why: str, refusal: str = _BEARER_REFUSAL,
) -> NotAuthorizedException:
    log.info("request refused: %s API key", why, extra={"correlation_id": correlation.from_scope(connection.scope)})
    return NotAuthorizedException(refusal, headers=_CHALLENGE)


def bearer_auth() -> DefineMiddleware:
    """The middleware to install when API keys are on. The interactive docs and the OpenAPI document stay
    public: they describe the API and hold nothing of any tenant. The dashboard (/ui) checks its own cookie."""
    return DefineMiddleware(_BearerKeyMiddleware, exclude=["^/schema", "^/ui"], exclude_from_auth_key=EXCLUDE_FROM_AUTH,
                            exclude_http_methods=["OPTIONS"])


def principal_of(scope: Any) -> Principal:
    """Whom this request speaks for: its key's principal, or `TRUSTED` when API keys are off."""
    user = scope.get("user")
    return user if isinstance(user, Principal) else TRUSTED


def tenant_of(scope: Any) -> str | None:
    """The tenant this request's submissions belong to (None: keys off, or an operator key without a tenant)."""
    return principal_of(scope).tenant


def visible_tenant(scope: Any) -> str | None:
    """The tenant whose tasks and jobs this request may see and change; None sees every tenant's (an operator,
    or keys off)."""
    principal = principal_of(scope)
    return None if principal.operator else principal.tenant


def requires_operator(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Route guard (`guards=[requires_operator]`): only an operator key passes (any caller, with keys off);
    anyone else is answered 403."""
    if not principal_of(connection.scope).operator:
        raise PermissionDeniedException("This needs an operator's API key (`qqueue keys create --role operator`).")
