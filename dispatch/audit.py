"""Append-only audit log with hash-chained entries.

Entry ``n`` stores ``prev_hash`` (entry ``n-1``'s hash) and
``hash = sha256(prev_hash + canonical JSON of (id, at, actor, action, target, detail))``.
The ``audit_head`` row holds the last id and hash; writers lock it (``FOR UPDATE`` on
PostgreSQL) so concurrent replicas extend one chain. Changing, deleting, inserting or
truncating entries breaks the chain, which :func:`verify` reports. Database triggers
refuse UPDATE/DELETE on ``audit_log`` as a first line of defence.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from dispatch.models import AuditEntry, AuditHead

GENESIS = "0" * 64


def entry_hash(
    prev_hash: str, entry_id: int, at: datetime, actor: str, action: str, target: str, detail: dict[str, Any]
) -> str:
    """The chained hash of one entry (pure)."""
    body = json.dumps(
        {
            "id": entry_id,
            "at": at.isoformat(),
            "actor": actor,
            "action": action,
            "target": target,
            "detail": detail,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def lock_head(session: Session) -> AuditHead:
    """Lock and return the chain head (serialises mutating transactions on PostgreSQL).

    Locked once per transaction; later calls in the same transaction reuse the row."""
    tx = session.get_transaction()
    cached = session.info.get("audit_head")
    if cached is not None and cached[0] is tx:
        return cached[1]
    head = session.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update())
    if head is None:
        raise RuntimeError("audit_head row missing: database not migrated?")
    session.info["audit_head"] = (tx, head)
    return head


def append(
    session: Session, at: datetime, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
) -> AuditEntry:
    """Append one entry to the chain inside the caller's transaction."""
    head = lock_head(session)
    detail = json.loads(json.dumps(detail or {}, default=str))  # what the JSON column returns
    entry_id = head.last_id + 1
    digest = entry_hash(head.last_hash, entry_id, at, actor, action, target, detail)
    entry = AuditEntry(
        id=entry_id,
        at=at,
        actor=actor,
        action=action,
        target=target,
        detail=detail,
        prev_hash=head.last_hash,
        hash=digest,
    )
    session.add(entry)
    head.last_id = entry_id
    head.last_hash = digest
    return entry


def append_many(session: Session, entries: list[tuple[datetime, str, str, str, dict[str, Any]]],
                head: AuditHead | None = None) -> None:
    """Append many entries (at, actor, action, target, detail) with one bulk INSERT."""
    if not entries:
        return
    head = head or lock_head(session)
    rows = []
    last_id, last_hash = head.last_id, head.last_hash
    for at, actor, action, target, detail in entries:  # details are JSON-native already
        detail = detail or {}
        last_id += 1
        digest = entry_hash(last_hash, last_id, at, actor, action, target, detail)
        rows.append({"id": last_id, "at": at, "actor": actor, "action": action, "target": target,
                     "detail": detail, "prev_hash": last_hash, "hash": digest})
        last_hash = digest
    session.execute(insert(AuditEntry), rows)
    head.last_id, head.last_hash = last_id, last_hash


@dataclass
class VerifyResult:
    ok: bool
    entries: int
    problems: list[str]


def verify(session: Session, max_problems: int = 20) -> VerifyResult:
    """Walk the chain from the start; report every break (id gaps, edited rows, bad head)."""
    problems: list[str] = []
    prev = GENESIS
    expected_id = 1
    count = 0
    rows = session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars()
    for e in rows:
        count += 1
        if e.id != expected_id:
            problems.append(f"entry {e.id}: expected id {expected_id} (entries missing or inserted)")
        if e.prev_hash != prev:
            problems.append(f"entry {e.id}: prev_hash does not match the previous entry's hash")
        digest = entry_hash(e.prev_hash, e.id, e.at, e.actor, e.action, e.target, e.detail)
        if digest != e.hash:
            problems.append(f"entry {e.id}: content changed (hash mismatch, action={e.action!r})")
        prev = e.hash
        expected_id = e.id + 1
        if len(problems) >= max_problems:
            break
    head = session.get(AuditHead, 1)
    if head is None:
        problems.append("audit_head row missing")
    elif len(problems) < max_problems and (head.last_id != expected_id - 1 or head.last_hash != prev):
        problems.append(
            f"head: records last entry {head.last_id} but the log ends at {expected_id - 1} "
            "(entries truncated or head edited)"
        )
    return VerifyResult(ok=not problems, entries=count, problems=problems)
