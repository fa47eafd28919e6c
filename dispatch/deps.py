"""FastAPI dependencies: settings, sessions, the runtime, the calling principal, role checks.

A token is read from ``Authorization: Bearer <token>`` (API clients), else the caller is
identified by the HttpOnly ``skygrid_session`` cookie (a server-side session code, not the
token) the pages get from ``POST /api/v1/session`` or a one-time login link. A
token in the query string is no longer accepted: URLs end up in access logs, proxies and
browser history (live streams take a short-lived ``?ticket=`` instead). A write
authenticated by the cookie must also carry the ``X-CSRF-Token`` header equal to the
``skygrid_csrf`` cookie (double submit; the cookies are SameSite=Strict as well).
Missing or unknown token -> 401; wrong role or missing CSRF header -> 403; too many
failures from one address -> 429 (:mod:`dispatch.core.throttle`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from dispatch.core.config import Settings
from dispatch.core.security import Principal, authenticate, session_principal
from dispatch.core.throttle import client_key
from dispatch.errors import ApiError
from dispatch.service import Runtime

bearer = HTTPBearer(auto_error=False, description="API token (skygrid serve token create)")

SESSION_COOKIE = "skygrid_session"
CSRF_COOKIE = "skygrid_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_session(request: Request) -> Iterator[Session]:
    """A session for reads (mutations use :func:`dispatch.core.db.write_transaction`)."""
    with request.app.state.sessionmaker() as session:
        yield session


def check_throttle(request: Request) -> str:
    """The caller's throttling key; 429 while it has too many recent auth failures."""
    key = client_key(request.client)
    wait = request.app.state.auth_throttle.retry_after(key)
    if wait > 0:
        raise ApiError(429, f"authorization: too many failed attempts from this address; retry in {wait:.0f} s",
                       "header.authorization", headers={"Retry-After": str(int(wait) + 1)})
    return key


def current_principal(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
    """The authenticated caller; 401 when no valid token is presented (see module doc)."""
    checked = request.scope.get("state", {}).get("principal")
    if checked is not None:  # EdgeGuard authenticated this write before reading its body
        return checked
    key = check_throttle(request)
    via_cookie = False
    token = creds.credentials if creds and creds.credentials else None
    if not token:
        token = request.cookies.get(SESSION_COOKIE) or None
        via_cookie = token is not None
    if not token:
        raise ApiError(401, "authorization: missing token (Authorization: Bearer <token>)", "header.authorization",
                       headers={"WWW-Authenticate": "Bearer"})
    with request.app.state.sessionmaker() as session:
        principal = session_principal(session, token) if via_cookie else authenticate(session, token)
    if principal is None:
        request.app.state.auth_throttle.fail(key)
        raise ApiError(401, "authorization: unknown, expired or revoked token", "header.authorization",
                       headers={"WWW-Authenticate": "Bearer"})
    if via_cookie and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER) or ""
        expected = request.cookies.get(CSRF_COOKIE) or ""
        if not sent or not expected or not hmac.compare_digest(sent, expected):
            raise ApiError(403, f"csrf: a cookie-authenticated write needs the {CSRF_HEADER} header "
                                f"(the {CSRF_COOKIE} cookie's value)", "header.x-csrf-token")
    return principal


async def authenticate_scope(scope: Any) -> tuple[int, str, str, dict[str, str] | None] | None:
    """For :class:`dispatch.guard.EdgeGuard`: check a request's token from its headers alone
    (before its body is read). None when valid (the principal is kept in the request state
    for :func:`current_principal`), else (status, detail, field, headers) of the refusal."""
    request = Request(scope)
    auth = request.headers.get("authorization", "")
    scheme, _, credentials = auth.partition(" ")
    creds = (HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials.strip())
             if scheme.lower() == "bearer" and credentials.strip() else None)
    try:
        principal = await run_in_threadpool(current_principal, request, creds)
    except ApiError as e:
        return e.status, e.message, e.field or "header.authorization", e.headers
    scope.setdefault("state", {})["principal"] = principal
    return None


def require_roles(*roles: str) -> Callable[..., Principal]:
    """Dependency factory: the principal, provided their role is one of ``roles``."""

    def dep(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in roles:
            raise ApiError(403, f"role {principal.role!r} may not do this; allowed: {', '.join(roles)}", "role")
        return principal

    dep.__name__ = f"require_{'_'.join(roles)}"
    return dep
