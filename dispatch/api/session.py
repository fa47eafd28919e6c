"""Browser sessions without tokens in URLs.

* ``POST /api/v1/session`` with ``{"token": ...}`` (or ``Authorization: Bearer``): checks the
  token and opens a server-side session: the HttpOnly, SameSite=Strict ``skygrid_session``
  cookie holds a session code (never the token; 30 days at most, never beyond the token's
  expiry, void as soon as the token is revoked) plus the ``skygrid_csrf`` cookie the pages
  echo in ``X-CSRF-Token`` on writes.
* ``DELETE /api/v1/session``: ends the session server-side and clears both cookies.
* ``GET /login?code=...&next=/operator``: a one-time login link (``skygrid serve token
  login-link``, the demo's printed URLs): redeems the code, sets the cookies, and answers
  303 to the clean page URL, so the address bar, history and later logs hold no secret.
* ``POST /api/v1/live/tickets``: a stream ticket, a single-use code living 60 s, for the
  WebSocket/EventSource URL (browsers cannot set headers there).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from dispatch.core.db import write_transaction
from dispatch.core.security import (
    STREAM_TICKET_TTL,
    Principal,
    authenticate,
    close_session,
    issue_code,
    open_session,
    redeem_code,
)
from dispatch.deps import CSRF_COOKIE, SESSION_COOKIE, check_throttle, current_principal
from dispatch.errors import ApiError
from dispatch.web import PAGES

router = APIRouter(tags=["session"])

#: pages a login link may lead to (anything else: the command room); the plan page's too
LOGIN_TARGETS = (*PAGES, "/plan")
#: cookie life when the token itself never expires (seconds: 30 days)
MAX_COOKIE_S = 30 * 86400


class SessionIn(BaseModel):
    token: str | None = Field(default=None, min_length=1, max_length=200, description="API token")


def set_session_cookies(request: Request, response: Response, code: str, expires: datetime) -> None:
    """The session cookie (HttpOnly) and the CSRF cookie (readable by the page's script)."""
    secure = request.url.scheme == "https"
    life = max(1, min(MAX_COOKIE_S, int((expires - datetime.now(UTC)).total_seconds())))
    response.set_cookie(SESSION_COOKIE, code, max_age=life, path="/", secure=secure, httponly=True, samesite="strict")
    response.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(24), max_age=life, path="/", secure=secure,
                        httponly=False, samesite="strict")


def _principal_json(p: Principal) -> dict[str, Any]:
    return {"name": p.name, "role": p.role, "grid_ids": list(p.grid_ids) if p.grid_ids else None}


@router.post("/api/v1/session", summary="Log in: exchange a token for an HttpOnly session cookie")
def login(request: Request, body: SessionIn | None = None) -> JSONResponse:
    key = check_throttle(request)
    token = body.token if body and body.token else None
    auth = request.headers.get("authorization") or ""
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip() or None
    if not token:
        raise ApiError(422, "token: give the API token in the body ({\"token\": ...})", "body.token")
    with request.app.state.sessionmaker() as s:
        principal = authenticate(s, token)
    if principal is None:
        request.app.state.auth_throttle.fail(key)
        raise ApiError(401, "token: unknown, expired or revoked token", "body.token")
    with write_transaction(request.app.state.sessionmaker) as s:
        code, expires = open_session(s, principal.token_id)
    resp = JSONResponse(_principal_json(principal))
    set_session_cookies(request, resp, code, expires)
    return resp


@router.delete("/api/v1/session", status_code=204, summary="Log out: end the session, clear the cookies")
def logout(request: Request) -> Response:
    code = request.cookies.get(SESSION_COOKIE)
    if code:
        with write_transaction(request.app.state.sessionmaker) as s:
            close_session(s, code)
    resp = Response(status_code=204)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    resp.delete_cookie(CSRF_COOKIE, path="/")
    return resp


@router.get("/login", include_in_schema=False)
def login_link(request: Request, code: str = Query("", max_length=200), next: str = Query("/", max_length=40)) -> Response:
    """Redeem a one-time login code; 303 to ``next`` (a page path) with or without a session."""
    target = next if next in LOGIN_TARGETS else "/"
    key = check_throttle(request)
    with write_transaction(request.app.state.sessionmaker) as s:
        principal = redeem_code(s, code, "login") if code else None
        session = open_session(s, principal.token_id) if principal is not None else None
    resp = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    if session is None:
        request.app.state.auth_throttle.fail(key)
        return resp
    set_session_cookies(request, resp, *session)
    return resp


@router.post("/api/v1/live/tickets", status_code=201,
             summary="A single-use ticket (60 s) for the live WebSocket/SSE URL (?ticket=)")
def stream_ticket(request: Request, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    with write_transaction(request.app.state.sessionmaker) as s:
        code = issue_code(s, principal.token_id, "stream", STREAM_TICKET_TTL)
    return {"ticket": code, "expires_in_s": int(STREAM_TICKET_TTL.total_seconds())}
