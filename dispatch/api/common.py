"""Helpers shared by routers: committing a write and waking the live streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import Request

from dispatch.core.db import write_transaction
from dispatch.outbox import notify

T = TypeVar("T")


def write(request: Request, fn: Callable[..., T]) -> T:
    """Run ``fn(session)`` in one serialised transaction, commit, then notify live streams."""
    with write_transaction(request.app.state.sessionmaker) as session:
        result = fn(session)
    notify(request.app)
    return result


AUTH_ERRORS = {401: {"description": "missing or unknown token"}, 403: {"description": "role or grid not allowed"}}
