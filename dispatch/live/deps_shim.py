"""``dispatch.deps`` when it exists; otherwise a minimal stand-in with the same names
(``require_roles``) built on ``dispatch.core.security.authenticate``, so the live module
works against the ticket store while its API layer is still being written."""

from __future__ import annotations

import asyncio
import importlib
from types import SimpleNamespace
from typing import Any

from fastapi import HTTPException, Request


def deps_module() -> Any:
    try:
        return importlib.import_module("dispatch.deps")
    except ImportError:
        return SimpleNamespace(require_roles=_require_roles)


def _require_roles(*roles: str) -> Any:
    async def dependency(request: Request) -> Any:
        from . import authenticate_token

        auth = request.headers.get("authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if not token:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        principal = await asyncio.to_thread(authenticate_token, request.app, token)
        if principal is None:
            raise HTTPException(401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})
        if principal.role not in roles:
            raise HTTPException(403, f"role {principal.role!r} may not do this (needs {', '.join(roles)})")
        return principal

    return dependency
