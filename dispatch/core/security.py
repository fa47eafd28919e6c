"""API tokens: random secrets handed out once, stored only as SHA-256 hashes.

Tokens carry 256 bits of entropy, so a plain SHA-256 (no slow KDF) is enough to make a
leaked table useless while keeping a lookup per request cheap.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.core.config import ROLES
from dispatch.models import ApiToken

TOKEN_PREFIX = "sg_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's id, name, role and (for grid workers) their grids."""

    token_id: int
    name: str
    role: str
    grid_ids: tuple[str, ...] | None = field(default=None)

    def sees_grid(self, grid_id: str | None) -> bool:
        """Grid workers see only their grids; other roles see every grid."""
        if self.role != "grid_worker":
            return True
        return grid_id is not None and grid_id in (self.grid_ids or ())


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _validate(role: str, grid_ids: list[str] | None) -> None:
    if role not in ROLES:
        raise ValueError(f"role: unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if role == "grid_worker" and not grid_ids:
        raise ValueError("grid_ids: a grid_worker token needs at least one grid id")


def store_token(
    session: Session, token: str, role: str, name: str, grid_ids: list[str] | None = None
) -> ApiToken:
    """Store ``token`` (hashed) unless it exists already; return the row."""
    _validate(role, grid_ids)
    digest = hash_token(token)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if row is None:
        row = ApiToken(
            name=name,
            role=role,
            grid_ids=list(grid_ids) if grid_ids else None,
            token_hash=digest,
            created_at=datetime.now(UTC),
        )
        session.add(row)
        session.flush()
    return row


def issue_token(session: Session, role: str, name: str, grid_ids: list[str] | None = None) -> str:
    """Create a new random token for ``role``; returns the secret (shown once, never stored)."""
    from dispatch import audit

    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = store_token(session, token, role, name, grid_ids)
    audit.append(session, datetime.now(UTC), "cli", "token.create", f"token:{row.id}",
                 {"role": role, "name": name, "grid_ids": grid_ids})
    return token


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal of a token, or None when unknown or revoked."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    grids = tuple(row.grid_ids) if row.grid_ids else None
    return Principal(token_id=row.id, name=row.name, role=row.role, grid_ids=grids)
