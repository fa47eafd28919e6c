"""FastAPI dependencies: settings, sessions, the runtime, the calling principal, role checks.

A token is read from ``Authorization: Bearer <token>``, else the ``skygrid_token`` cookie,
else (GET/HEAD only, for links and ``<img>`` tags opened from the pages) a ``token`` query
parameter. Missing or unknown token -> 401; wrong role -> 403.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from dispatch.core.config import Settings
from dispatch.core.security import Principal, authenticate
from dispatch.errors import ApiError
from dispatch.service import Runtime

bearer = HTTPBearer(auto_error=False, description="API token (skygrid serve token create)")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_session(request: Request) -> Iterator[Session]:
    """A session for reads (mutations use :func:`dispatch.core.db.write_transaction`)."""
    with request.app.state.sessionmaker() as session:
        yield session


def _token_from(request: Request, creds: HTTPAuthorizationCredentials | None) -> str | None:
    if creds and creds.credentials:
        return creds.credentials
    cookie = request.cookies.get("skygrid_token")
    if cookie:
        return cookie
    if request.method in ("GET", "HEAD"):
        return request.query_params.get("token")
    return None


def current_principal(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
    """The authenticated caller; 401 when no valid token is presented."""
    checked = request.scope.get("state", {}).get("principal")
    if checked is not None:  # EdgeGuard authenticated this write before reading its body
        return checked
    token = _token_from(request, creds)
    if not token:
        raise ApiError(401, "authorization: missing token (Authorization: Bearer <token>)", "header.authorization",
                       headers={"WWW-Authenticate": "Bearer"})
    with request.app.state.sessionmaker() as session:
        principal = authenticate(session, token)
    if principal is None:
        raise ApiError(401, "authorization: unknown or revoked token", "header.authorization",
                       headers={"WWW-Authenticate": "Bearer"})
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
