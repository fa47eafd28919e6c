"""SQL adapter of the live module: reads the tickets' ``live_events`` outbox and keeps the
live module's own three small tables.

* ``live_events`` belongs to the ticket store (written in the same transaction as every
  ticket change); it is only read here, with plain SQL on the columns of the contract, so
  this module does not import the ticket models.
* ``live_drone_feed``: telemetry batches, flight events and commands, so that several API
  processes sharing one database all show every drone (each process tails it by id, like
  the outbox). Rows older than ``FEED_KEEP_S`` are pruned: positions are not history.
* ``drone_commands``: operator/dispatcher commands (rtl, hold, resume) that the flight
  reporter polls by id; pruned with the outbox's retention (``live_retention_s``).
* ``live_plan``: the current patrol plan JSON (one row), drawn by the map and the operator
  view.

The tables are created with ``create_all`` (checkfirst) when the app starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Engine

from .events import LiveEvent, event_from_outbox_row

log = logging.getLogger("dispatch.live")

FEED_KEEP_S = 600.0  # seconds of drone feed kept for other processes to catch up

metadata = MetaData()

drone_feed = Table(
    "live_drone_feed", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("origin", String(64), nullable=False),
    Column("topic", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # JSON list of LiveEvent dicts
    sqlite_autoincrement=True,
)

drone_commands = Table(
    "drone_commands", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("drone_id", String(64), nullable=False, index=True),
    Column("action", String(16), nullable=False),
    Column("issued_by", String(128), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("note", Text, nullable=True),
    sqlite_autoincrement=True,
)

live_plan = Table(
    "live_plan", metadata,
    Column("id", Integer, primary_key=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("plan", Text, nullable=False),
)


def _outbox() -> Table:
    """The ticket store's outbox table (imported lazily: the models are theirs)."""
    from dispatch.models import LiveEvent as OutboxRow

    return OutboxRow.__table__


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    """ISO-8601 UTC with a Z (naive datetimes from SQLite are UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def create_tables(engine: Engine) -> None:
    metadata.create_all(engine, checkfirst=True)


# -- ticket outbox (read only) ---------------------------------------------------------
def outbox_head(engine: Engine) -> int:
    """Largest outbox id (0 when empty)."""
    t = _outbox()
    with engine.connect() as c:
        return int(c.execute(select(func.coalesce(func.max(t.c.id), 0))).scalar() or 0)


def outbox_after(engine: Engine, after: int, limit: int = 1000) -> list[LiveEvent]:
    """Outbox events with id > ``after``, oldest first."""
    t = _outbox()
    with engine.connect() as c:
        rows = c.execute(select(t).where(t.c.id > after).order_by(t.c.id).limit(limit)).fetchall()
    return [event_from_outbox_row(r) for r in rows]


def outbox_oldest(engine: Engine) -> int:
    """Smallest outbox id still stored (0 when empty): a replay from below it has lost events."""
    t = _outbox()
    with engine.connect() as c:
        return int(c.execute(select(func.coalesce(func.min(t.c.id), 0))).scalar() or 0)


def outbox_prune(engine: Engine, before: datetime, batch: int = 5000, max_batches: int = 40) -> int:
    """Delete outbox rows older than ``before``, oldest first, ``batch`` rows per short
    transaction (at most ``max_batches`` per call, so a first prune of a large table does
    not hold the writers up; the next call goes on). Returns rows deleted.

    The outbox is only the streams' resume buffer: each ticket's history stays in
    ``ticket_events``. Ids grow with time, so walking by id (the primary key) finds the
    cut-off without an index on ``at``. The newest row is always kept (see below)."""
    from dispatch.core.db import is_sqlite, writer_lock

    t = _outbox()
    lock = writer_lock(engine) if is_sqlite(engine) else contextlib.nullcontext()
    total = 0
    for _ in range(max_batches):
        with lock, engine.begin() as c:
            head = c.execute(select(func.max(t.c.id))).scalar()
            # never the newest row: SQLite (no AUTOINCREMENT on this table) numbers the next
            # row max(id)+1, so an emptied table would hand out ids again from 1 and every
            # stream's resume cursor would skip them
            rows = c.execute(select(t.c.id, t.c.at).where(t.c.id < head).order_by(t.c.id).limit(batch)
                             ).fetchall() if head is not None else []
            cut = None
            for r in rows:
                at = r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC)
                if at >= before:
                    break
                cut = r.id
            if cut is None:
                return total
            total += c.execute(delete(t).where(t.c.id <= cut)).rowcount or 0
        if cut != rows[-1].id or len(rows) < batch:
            return total
    return total


def outbox_ids(engine: Engine, ids: list[int]) -> list[LiveEvent]:
    """Outbox events with the given ids (late commits that filled a gap), oldest first."""
    if not ids:
        return []
    t = _outbox()
    with engine.connect() as c:
        rows = c.execute(select(t).where(t.c.id.in_(ids)).order_by(t.c.id)).fetchall()
    return [event_from_outbox_row(r) for r in rows]


# -- drone feed ------------------------------------------------------------------------
def feed_append(engine: Engine, origin: str, topic: str, events: list[dict[str, Any]]) -> int:
    """Store one batch of drone events; returns its row id."""
    with engine.begin() as c:
        res = c.execute(insert(drone_feed).values(created_at=utcnow(), origin=origin, topic=topic,
                                                  payload=json.dumps(events, ensure_ascii=False)))
        return int(res.inserted_primary_key[0])


def feed_head(engine: Engine) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.coalesce(func.max(drone_feed.c.id), 0))).scalar() or 0)


def feed_after(engine: Engine, after: int, limit: int = 500) -> list[tuple[int, str, list[dict[str, Any]]]]:
    """(row id, origin, events) of feed rows with id > ``after``."""
    with engine.connect() as c:
        rows = c.execute(select(drone_feed.c.id, drone_feed.c.origin, drone_feed.c.payload)
                         .where(drone_feed.c.id > after).order_by(drone_feed.c.id).limit(limit)).fetchall()
    out = []
    for r in rows:
        try:
            items = json.loads(r.payload)
            if not isinstance(items, list):
                raise ValueError("not a list")
        except (ValueError, RecursionError) as e:  # one bad row must not stop the tailer
            log.warning("live_drone_feed row %s skipped: unreadable payload (%s)", r.id, e)
            items = []
        out.append((int(r.id), r.origin, items))
    return out


def feed_prune(engine: Engine, keep_s: float = FEED_KEEP_S) -> int:
    with engine.begin() as c:
        return c.execute(delete(drone_feed).where(drone_feed.c.created_at < utcnow() - timedelta(seconds=keep_s))
                         ).rowcount or 0


# -- drone commands --------------------------------------------------------------------
def _command_dict(r: Any) -> dict[str, Any]:
    return {"id": int(r.id), "drone_id": r.drone_id, "action": r.action, "issued_by": r.issued_by,
            "issued_at": iso(r.issued_at), "note": r.note}


def command_add(engine: Engine, drone_id: str, action: str, issued_by: str, note: str | None = None
                ) -> dict[str, Any]:
    with engine.begin() as c:
        res = c.execute(insert(drone_commands).values(drone_id=drone_id, action=action, issued_by=issued_by,
                                                      issued_at=utcnow(), note=note))
        row = c.execute(select(drone_commands).where(drone_commands.c.id == res.inserted_primary_key[0])).one()
    return _command_dict(row)


def commands_prune(engine: Engine, before: datetime) -> int:
    """Delete commands issued before ``before`` (the live retention); returns rows deleted.
    Ids are never handed out again (AUTOINCREMENT on SQLite, a sequence on PostgreSQL), so
    a reporter's ``after`` cursor stays valid however much is deleted."""
    with engine.begin() as c:
        return c.execute(delete(drone_commands).where(drone_commands.c.issued_at < before)).rowcount or 0


def commands_after(engine: Engine, drone_id: str | None, after: int, limit: int = 200) -> list[dict[str, Any]]:
    q = select(drone_commands).where(drone_commands.c.id > after)
    if drone_id:
        q = q.where(drone_commands.c.drone_id == drone_id)
    with engine.connect() as c:
        rows = c.execute(q.order_by(drone_commands.c.id).limit(limit)).fetchall()
    return [_command_dict(r) for r in rows]


# -- plan ------------------------------------------------------------------------------
def plan_put(engine: Engine, plan: dict[str, Any], updated_by: str) -> str:
    """Replace the current plan (one transaction: the old one stays if this fails)."""
    now = utcnow()
    body = json.dumps(plan, ensure_ascii=False)
    with engine.begin() as c:
        c.execute(delete(live_plan).where(live_plan.c.id == 1))
        c.execute(insert(live_plan).values(id=1, updated_at=now, updated_by=updated_by, plan=body))
    return iso(now)


def plan_get(engine: Engine) -> tuple[dict[str, Any], str, str] | None:
    """(plan, updated_at, updated_by) or None."""
    with engine.connect() as c:
        row = c.execute(select(live_plan).where(live_plan.c.id == 1)).first()
    if row is None:
        return None
    return json.loads(row.plan), iso(row.updated_at), row.updated_by
