"""Signing in to the dashboard with API keys on: a login form takes a key, checked as the bearer header is, and
keeps it in an HttpOnly, SameSite=Strict cookie scoped to /ui (Secure over https); every page then reads its
tenant from that cookie. Logging out clears it. With keys off there is no login: the dashboard is open, as the API.

Forms are protected against cross-site requests twice: the cookie is never sent by another site (SameSite=Strict),
and every POST carries a CSRF token (`csrf()`), checked for /ui only, so the JSON API needs no token.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.params import Body
from litestar.response import Redirect, Template

from qqueue.api.auth import EXCLUDE_FROM_AUTH, authenticate_key
from qqueue.config import Settings
from qqueue.dashboard.view import BASE, LOGIN, page
from qqueue.store import keys

__all__ = ["COOKIE", "LoginController", "cookie_auth", "csrf"]

#: The cookie holding the signed-in key.
COOKIE = "qqueue_key"
_LOGIN_NEEDED = "Sign in with an API key."


class _CookieKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        presented = connection.cookies.get(COOKIE, "")
        prefix = keys.parse(presented)
        if prefix is None:
            raise NotAuthorizedException(_LOGIN_NEEDED)
        return await authenticate_key(connection, presented, prefix, refusal=_LOGIN_NEEDED)


def cookie_auth() -> DefineMiddleware:
    """The dashboard's sign-in check, installed on /ui when API keys are on; the login form and the static files
    opt out."""
    return DefineMiddleware(_CookieKeyMiddleware, exclude_from_auth_key=EXCLUDE_FROM_AUTH)


def csrf(settings: Settings) -> DefineMiddleware:
    """CSRF checks for the dashboard's forms: a token cookie (scoped to /ui) that each POST must echo in its
    `_csrf_token` field."""
    config = CSRFConfig(secret=settings.ui_secret or secrets.token_hex(32), cookie_name="qqueue_csrf",
                        cookie_path=BASE, cookie_httponly=True, cookie_samesite="strict")
    return DefineMiddleware(CSRFMiddleware, config=config)


class LoginForm(msgspec.Struct, kw_only=True):
    """The login form's body."""

    key: Annotated[str, msgspec.Meta(max_length=200)] = ""


class LoginController(Controller):
    """GET and POST /ui/login, POST /ui/logout."""

    path = "/"
    opt = {EXCLUDE_FROM_AUTH: True}

    @get("/login", name="ui-login")
    async def login_form(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """The form; with keys off there is nothing to sign in to."""
        if not request.app.state["api"].settings.api_auth:
            return Redirect(BASE, status_code=303)
        return page(request, "login")

    @post("/login", status_code=303)
    async def login(
        self, request: Request[Any, Any, Any],
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """Check the key; keep it in the cookie and go to the overview, or show the form again (401)."""
        if not request.app.state["api"].settings.api_auth:
            return Redirect(BASE, status_code=303)
        presented = data.key.strip()
        prefix = keys.parse(presented)
        try:
            if prefix is None:
                raise NotAuthorizedException(_LOGIN_NEEDED)
            await authenticate_key(request, presented, prefix, refusal=_LOGIN_NEEDED)
        except NotAuthorizedException:
            return _refused(request)
        cookie = Cookie(key=COOKIE, value=presented, path=BASE, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
        return Redirect(BASE, status_code=303, cookies=[cookie])

    @post("/logout", status_code=303)
    async def logout(self) -> Response[Any]:
        """Forget the key."""
        response = Redirect(LOGIN, status_code=303)
        response.delete_cookie(COOKIE, path=BASE)
        return response


def _refused(request: Request[Any, Any, Any]) -> Template:
    return page(request, "login", status_code=401, message="That key is not valid (unknown, mistyped or revoked).")
