"""The request principal and the operator guard, without a server or a database."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from litestar.exceptions import PermissionDeniedException

from qqueue.api.auth import TRUSTED, Principal, principal_of, requires_operator, tenant_of, visible_tenant


def connection(user: Any = None) -> Any:
    return SimpleNamespace(scope={} if user is None else {"user": user})


def test_without_keys_the_one_user_is_a_trusted_operator_of_no_tenant():
    assert principal_of({}) == TRUSTED and TRUSTED.operator
    assert (tenant_of({}), visible_tenant({})) == (None, None)
    requires_operator(connection(), None)  # type: ignore[arg-type]


def test_a_tenant_key_sees_its_tenant_and_is_refused_by_the_operator_guard():
    scope = {"user": Principal(tenant="acme", role="tenant", key_prefix="k3x9p2m4q8zt")}
    assert (tenant_of(scope), visible_tenant(scope)) == ("acme", "acme")
    with pytest.raises(PermissionDeniedException, match="operator"):
        requires_operator(connection(scope["user"]), None)  # type: ignore[arg-type]


def test_an_operator_key_submits_as_its_tenant_and_sees_every_tenant():
    operator = Principal(tenant="acme", role="operator", key_prefix="k3x9p2m4q8zt")
    assert (tenant_of({"user": operator}), visible_tenant({"user": operator})) == ("acme", None)
    requires_operator(connection(operator), None)  # type: ignore[arg-type]
    assert operator.describe() == "operator key k3x9p2m4q8zt of tenant acme"


def test_a_queue_change_names_the_key_and_the_surface_it_came_through():
    operator = Principal(tenant=None, role="operator", key_prefix="k3x9p2m4q8zt")
    assert (operator.actor(), operator.actor(via="dashboard")) == ("api key k3x9p2m4q8zt",
                                                                    "dashboard, api key k3x9p2m4q8zt")
    assert (TRUSTED.actor(), TRUSTED.actor(via="dashboard")) == ("api", "dashboard")


def test_on_a_route_the_guard_answers_a_tenant_403_in_the_apis_error_shape():
    from litestar import Litestar, get
    from litestar.testing import TestClient
    from litestar.types import ASGIApp, Receive, Scope, Send

    from qqueue.api.errors import EXCEPTION_HANDLERS

    @get("/operators-only", guards=[requires_operator], sync_to_thread=False)
    def operators_only() -> str:
        return "ok"

    def as_tenant(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            scope["user"] = Principal(tenant="acme", role="tenant", key_prefix="k3x9p2m4q8zt")
            await app(scope, receive, send)
        return middleware

    with TestClient(Litestar([operators_only], middleware=[as_tenant],
                             exception_handlers=EXCEPTION_HANDLERS)) as client:  # type: ignore[arg-type]
        answer = client.get("/operators-only")
    assert answer.status_code == 403
    assert answer.json()["status"] == "error" and "operator" in answer.json()["message"]
