"""Append-only audit log with hash-chained entries.

Entry ``n`` stores ``prev_hash`` (entry ``n-1``'s hash) and
``hash = sha256(prev_hash + canonical JSON of (id, at, actor, action, target, detail))``.
The ``audit_head`` row holds the last id and hash; writers lock it (``FOR UPDATE`` on
PostgreSQL) so concurrent replicas extend one chain. Changing, deleting, inserting or
truncating entries breaks the chain, which :func:`verify` reports. Database triggers
refuse UPDATE/DELETE on ``audit_log`` as a first line of defence.

:func:`verify` reads the head first and then only the entries up to it, so a live server
appending meanwhile cannot make an intact chain look broken (it used to read the rows and
the head in separate snapshots).

Anchoring. The chain alone proves nothing against someone who can write to the database:
they can rewrite the tail and recompute every hash and the head. So a *checkpoint* (the
head's id and hash, with a time) is signed with HMAC-SHA256 under a key kept outside the
database (``SKYGRID_AUDIT_KEY`` or the file named by ``SKYGRID_AUDIT_KEY_FILE``) and
appended to a file elsewhere (``skygrid audit checkpoint --out``, e.g. from cron every few
minutes, onto storage the database host cannot rewrite). ``skygrid audit verify
--checkpoints FILE`` then checks every checkpoint's signature and that entry ``id`` still
has that hash: any rewrite of entries up to the last checkpoint is detected, even with the
hashes recomputed. Not detected: changes after the last checkpoint, a checkpoint file
deleted or truncated together with the tail (keep it append-only, elsewhere), or anyone
holding the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
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
    """Walk the chain from the start; report every break (id gaps, edited rows, bad head).

    One consistent view: the head is read first (entries are only ever appended, in the
    transaction that moves the head), then the entries up to it; on PostgreSQL the whole
    read also runs in one REPEATABLE READ snapshot."""
    if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    problems: list[str] = []
    head = session.get(AuditHead, 1)
    if head is None:
        return VerifyResult(ok=False, entries=0, problems=["audit_head row missing"])
    prev = GENESIS
    expected_id = 1
    count = 0
    rows = session.execute(select(AuditEntry).where(AuditEntry.id <= head.last_id)
                           .order_by(AuditEntry.id)).scalars()
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
    if len(problems) < max_problems and (head.last_id != expected_id - 1 or head.last_hash != prev):
        problems.append(
            f"head: records last entry {head.last_id} but the log ends at {expected_id - 1} "
            "(entries truncated or head edited)"
        )
    return VerifyResult(ok=not problems, entries=count, problems=problems)


# -- anchoring: signed checkpoints outside the database ---------------------------------
def load_key(environ: dict[str, str] | None = None) -> bytes | None:
    """The checkpoint key: ``SKYGRID_AUDIT_KEY`` (the string), else the bytes of the file
    ``SKYGRID_AUDIT_KEY_FILE`` names (stripped); None when neither is set. Never in the DB."""
    env = os.environ if environ is None else environ
    if env.get("SKYGRID_AUDIT_KEY"):
        return env["SKYGRID_AUDIT_KEY"].encode("utf-8")
    path = env.get("SKYGRID_AUDIT_KEY_FILE")
    if path:
        try:
            key = Path(path).read_bytes().strip()
        except OSError as e:
            raise ValueError(f"SKYGRID_AUDIT_KEY_FILE: cannot read {path}: {e.strerror}") from None
        if len(key) < 16:
            raise ValueError(f"SKYGRID_AUDIT_KEY_FILE: {path} holds fewer than 16 bytes")
        return key
    return None


def _mac(key: bytes, entry_id: int, digest: str, at: str) -> str:
    return hmac.new(key, f"skygrid.audit/1|{entry_id}|{digest}|{at}".encode(), hashlib.sha256).hexdigest()


def checkpoint(session: Session, key: bytes) -> dict[str, Any]:
    """A signed checkpoint of the current head: {"id", "hash", "at", "mac"} (one JSON line)."""
    head = session.get(AuditHead, 1)
    if head is None:
        raise RuntimeError("audit_head row missing: database not migrated?")
    at = datetime.now(UTC).isoformat()
    return {"id": head.last_id, "hash": head.last_hash, "at": at, "mac": _mac(key, head.last_id, head.last_hash, at)}


def verify_checkpoints(session: Session, lines: list[str], key: bytes, source: str = "checkpoints") -> list[str]:
    """Problems found checking checkpoint ``lines`` (JSON) against the log; [] when all hold."""
    problems: list[str] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            cp = json.loads(line)
            cid, digest, at, mac = int(cp["id"]), str(cp["hash"]), str(cp["at"]), str(cp["mac"])
        except (ValueError, KeyError, TypeError):
            problems.append(f"{source} line {n}: not a checkpoint")
            continue
        if not hmac.compare_digest(mac, _mac(key, cid, digest, at)):
            problems.append(f"{source} line {n}: bad signature (forged, edited, or another key)")
            continue
        if cid == 0:
            continue
        row = session.get(AuditEntry, cid)
        if row is None:
            problems.append(f"{source} line {n}: entry {cid} of the checkpoint at {at} is gone (log truncated)")
        elif row.hash != digest:
            problems.append(f"{source} line {n}: entry {cid} differs from the checkpoint at {at} "
                            "(entries up to it were rewritten)")
    return problems
