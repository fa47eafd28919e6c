"""API tokens: random secrets handed out once, stored only as SHA-256 hashes.

Tokens carry 256 bits of entropy, so a plain SHA-256 (no slow KDF) is enough to make a
leaked table useless while keeping a lookup per request cheap.

Lifetimes: a token created by the CLI expires (``expires_at``; ``--expires``, 90 days by
default); rotation issues a successor and lets the old token live on for a grace period.
Where a URL has to carry a credential (a WebSocket/EventSource URL, a login link) it
carries a one-time *code* instead (:func:`issue_code`): 256 bits, stored hashed, single
use, seconds (stream tickets) to hours (login links) of life, tied to its token so that
revoking or expiring the token voids its codes too.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dispatch.core.config import ROLES
from dispatch.models import ApiToken, AuthCode

TOKEN_PREFIX = "sg_"
CODE_PREFIX = "sgc_"
#: default lifetime of a token made by ``skygrid serve token create`` (seconds: 90 days)
DEFAULT_TOKEN_TTL = timedelta(days=90)
#: life of a live-stream ticket (seconds): enough to open the socket right after asking
STREAM_TICKET_TTL = timedelta(seconds=60)
#: default life of a one-time login link printed by the demo / ``token login-link``
LOGIN_CODE_TTL = timedelta(hours=12)
#: life of a browser session (the HttpOnly cookie), capped by its token's own expiry
SESSION_TTL = timedelta(days=30)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta | None:
    """"90d", "12h", "30m", "45s", "2w" -> timedelta; "never"/"none" -> None. ValueError otherwise."""
    if text.strip().lower() in ("never", "none"):
        return None
    m = _DURATION.match(text.lower())
    if not m:
        raise ValueError(f"expires: {text!r} is not a duration like 90d, 12h, 30m or 'never'")
    seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds <= 0:
        raise ValueError(f"expires: {text!r} must be positive")
    return timedelta(seconds=seconds)


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
    session: Session, token: str, role: str, name: str, grid_ids: list[str] | None = None,
    expires_at: datetime | None = None,
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
            expires_at=expires_at,
        )
        session.add(row)
        session.flush()
    return row


def issue_token(session: Session, role: str, name: str, grid_ids: list[str] | None = None,
                expires_at: datetime | None = None) -> str:
    """Create a new random token for ``role``; returns the secret (shown once, never stored).
    ``expires_at`` None means no expiry (the CLI passes 90 days unless told otherwise)."""
    from dispatch import audit

    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = store_token(session, token, role, name, grid_ids, expires_at)
    audit.append(session, datetime.now(UTC), "cli", "token.create", f"token:{row.id}",
                 {"role": role, "name": name, "grid_ids": grid_ids,
                  "expires_at": expires_at.isoformat() if expires_at else None})
    return token


def rotate_token(session: Session, token_id: int, grace: timedelta, expires_at: datetime | None) -> tuple[str, ApiToken]:
    """Issue a successor of token ``token_id`` (same role, name, grids; ``expires_at``) and
    let the old one live for ``grace`` more at most. Returns (new secret, new row).
    ValueError when the token is unknown or already revoked."""
    from dispatch import audit

    old = session.get(ApiToken, token_id)
    now = datetime.now(UTC)
    if old is None or old.revoked_at is not None:
        raise ValueError(f"id: no active token {token_id}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    new = store_token(session, token, old.role, old.name, old.grid_ids, expires_at)
    old_end = now + grace
    if old.expires_at is None or old.expires_at > old_end:
        old.expires_at = old_end
    audit.append(session, now, "cli", "token.rotate", f"token:{old.id}",
                 {"successor": new.id, "old_expires_at": old.expires_at.isoformat(),
                  "expires_at": expires_at.isoformat() if expires_at else None})
    return token, new


def _active(row: ApiToken | None, now: datetime) -> bool:
    return row is not None and row.revoked_at is None and (row.expires_at is None or row.expires_at > now)


def _principal(row: ApiToken) -> Principal:
    grids = tuple(row.grid_ids) if row.grid_ids else None
    return Principal(token_id=row.id, name=row.name, role=row.role, grid_ids=grids)


def authenticate(session: Session, token: str, now: datetime | None = None) -> Principal | None:
    """The principal of a token, or None when unknown, revoked or expired."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if not _active(row, now or datetime.now(UTC)):
        return None
    return _principal(row)


def token_active(session: Session, token_id: int, now: datetime | None = None) -> bool:
    """Whether token ``token_id`` is still valid (open streams re-check this)."""
    return _active(session.get(ApiToken, token_id), now or datetime.now(UTC))


def issue_code(session: Session, token_id: int, kind: str, ttl: timedelta) -> str:
    """A code for ``token_id`` living ``ttl``: ``kind`` "stream" or "login" (single use) or
    "session" (a browser session, valid until it expires or is logged out).
    Old expired codes are swept here, so the table stays small without a job."""
    from sqlalchemy import delete

    now = datetime.now(UTC)
    session.execute(delete(AuthCode).where(AuthCode.expires_at < now - timedelta(hours=1)))
    code = CODE_PREFIX + secrets.token_urlsafe(32)
    session.add(AuthCode(code_hash=hash_token(code), kind=kind, token_id=token_id, created_at=now,
                         expires_at=now + ttl))
    session.flush()
    return code


def login_code_for(session: Session, token: str, ttl: timedelta = LOGIN_CODE_TTL) -> str:
    """A one-time login code (``/login?code=``) for a known, valid ``token``; ValueError otherwise."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if not _active(row, datetime.now(UTC)):
        raise ValueError("token: unknown, expired or revoked")
    return issue_code(session, row.id, "login", ttl)


def session_principal(session: Session, code: str, now: datetime | None = None) -> Principal | None:
    """The principal of a browser session code (the cookie), or None when unknown,
    expired, logged out (``used_at`` set) or its token is no longer valid."""
    now = now or datetime.now(UTC)
    row = session.scalar(select(AuthCode).where(AuthCode.code_hash == hash_token(code)))
    if row is None or row.kind != "session" or row.used_at is not None or row.expires_at <= now:
        return None
    tok = session.get(ApiToken, row.token_id)
    return _principal(tok) if _active(tok, now) else None


def open_session(session: Session, token_id: int) -> tuple[str, datetime]:
    """A browser session code for ``token_id``: (code, expiry), the expiry capped by the token's."""
    tok = session.get(ApiToken, token_id)
    end = datetime.now(UTC) + SESSION_TTL
    if tok is not None and tok.expires_at is not None and tok.expires_at < end:
        end = tok.expires_at
    code = issue_code(session, token_id, "session", end - datetime.now(UTC))
    return code, end


def close_session(session: Session, code: str) -> None:
    """Log a session code out (it stops working on every replica at once)."""
    session.execute(update(AuthCode).where(AuthCode.code_hash == hash_token(code), AuthCode.kind == "session",
                                           AuthCode.used_at.is_(None)).values(used_at=datetime.now(UTC)))


def redeem_code(session: Session, code: str, kind: str, now: datetime | None = None) -> Principal | None:
    """Use a one-time code: its token's principal, or None when unknown, of another kind,
    expired, used already, or its token is no longer valid. Marks it used (in the caller's
    write transaction; the conditional UPDATE makes a second use lose even across replicas)."""
    now = now or datetime.now(UTC)
    row = session.scalar(select(AuthCode).where(AuthCode.code_hash == hash_token(code)))
    if row is None or row.kind != kind or row.used_at is not None or row.expires_at <= now:
        return None
    done = session.execute(update(AuthCode).where(AuthCode.id == row.id, AuthCode.used_at.is_(None))
                           .values(used_at=now))
    if done.rowcount != 1:
        return None
    tok = session.get(ApiToken, row.token_id)
    return _principal(tok) if _active(tok, now) else None
