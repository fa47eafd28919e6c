"""Read-side queries: ticket search, detail, and 考核 statistics. Pure reads, no locking."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from dispatch.core.security import Principal
from dispatch.errors import ApiError
from dispatch.models import Grid, Incident, Ticket, TicketEvent
from dispatch.routing import STAGES
from geo.geodesy import distance_m


@dataclass(frozen=True)
class TicketFilter:
    grid_id: list[str] | None = None
    tier: list[str] | None = None
    status: list[str] | None = None
    class_name: list[str] | None = None
    since: datetime | None = None  # created_at >= since
    until: datetime | None = None  # created_at < until
    bbox: tuple[float, float, float, float] | None = None  # min_lon, min_lat, max_lon, max_lat
    overdue: bool | None = None
    department: str | None = None  # lead department
    q: str | None = None  # free text: ticket id, grid id or name, assignee, instructions
    priority: list[int] | None = None
    ids: list[int] | None = None  # exactly these tickets (the command room's bulk selection)


#: at most this many ids in one ``ids=`` query (a selection on one screen is far smaller)
MAX_IDS = 1000


def parse_ids(text: str | None) -> list[int] | None:
    """``12,13`` -> [12, 13]; 422 naming ``ids`` when not positive integers or too many."""
    items = split_list(text)
    if not items:
        return None
    if len(items) > MAX_IDS:
        raise ApiError(422, f"ids: at most {MAX_IDS} ticket ids, got {len(items)}", "query.ids")
    out = [int(x.lstrip("#")) if x.lstrip("#").isascii() and x.lstrip("#").isdigit() else -1 for x in items]
    if any(i < 1 or i > 2**62 for i in out):
        raise ApiError(422, "ids: expected ticket ids (positive integers), comma-separated", "query.ids")
    return sorted(set(out))


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``min_lon,min_lat,max_lon,max_lat`` (WGS-84) -> tuple; 422 naming ``bbox`` when malformed."""
    if not text:
        return None
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4 or not all(abs(v) <= 180 for v in parts) or parts[0] > parts[2] or parts[1] > parts[3]:
        raise ApiError(422, "bbox: expected min_lon,min_lat,max_lon,max_lat (WGS-84 degrees, min <= max)",
                       "query.bbox")
    return parts[0], parts[1], parts[2], parts[3]


def parse_priorities(text: str | None) -> list[int] | None:
    """``0,1`` -> [0, 1]; 422 naming ``priority`` when not small integers."""
    items = split_list(text)
    if not items:
        return None
    try:
        out = [int(x.upper().lstrip("P")) for x in items]
    except ValueError:
        out = [-1]
    if any(p < 0 or p > 9 for p in out):
        raise ApiError(422, "priority: expected priorities 0-9, comma-separated (P0 = 0)", "query.priority")
    return out


def similar_tickets(session: Session, t: Ticket, principal: Principal, radius_m: float,
                    limit: int = 20) -> list[tuple[Ticket, float]]:
    """Other tickets of ``t``'s class within ``radius_m`` metres, nearest first, with distances."""
    dlat = radius_m / 111_320.0
    dlon = radius_m / (111_320.0 * max(math.cos(math.radians(t.lat)), 0.01))
    q = _where(select(Ticket), TicketFilter(), principal).where(
        Ticket.id != t.id, Ticket.class_name == t.class_name, Ticket.status != "duplicate",
        Ticket.lat.between(t.lat - dlat, t.lat + dlat), Ticket.lon.between(t.lon - dlon, t.lon + dlon))
    found = [(o, distance_m(t.lat, t.lon, o.lat, o.lon)) for o in session.scalars(q.limit(500))]
    found = [x for x in found if x[1] <= radius_m]
    found.sort(key=lambda x: x[1])
    return found[:limit]


def split_list(text: str | None) -> list[str] | None:
    if not text:
        return None
    items = [x.strip() for x in text.split(",") if x.strip()]
    return items or None


def _where(q, f: TicketFilter, principal: Principal):
    if principal.role == "grid_worker":
        q = q.where(Ticket.grid_id.in_(list(principal.grid_ids or ())))
    if f.grid_id:
        q = q.where(Ticket.grid_id.in_(f.grid_id))
    if f.tier:
        q = q.where(Ticket.tier.in_(f.tier))
    if f.status:
        q = q.where(Ticket.status.in_(f.status))
    if f.class_name:
        q = q.where(Ticket.class_name.in_(f.class_name))
    if f.since:
        q = q.where(Ticket.created_at >= f.since)
    if f.until:
        q = q.where(Ticket.created_at < f.until)
    if f.bbox:
        x0, y0, x1, y1 = f.bbox
        q = q.where(Ticket.lon.between(x0, x1), Ticket.lat.between(y0, y1))
    if f.overdue is not None:
        q = q.where(Ticket.overdue.is_(f.overdue))
    if f.department:
        q = q.where(or_(Ticket.lead_department == f.department, Ticket.assigned_department == f.department))
    if f.priority:
        q = q.where(Ticket.priority.in_(f.priority))
    if f.ids:
        q = q.where(Ticket.id.in_(f.ids))
    if f.q:
        text = f.q.strip()
        like = f"%{text.lstrip('#')}%"
        conds = [Ticket.grid_id.ilike(like), Ticket.assignee.ilike(like), Ticket.instructions.ilike(like),
                 Ticket.grid_id.in_(select(Grid.id).where(or_(Grid.name.ilike(like), Grid.village.ilike(like),
                                                              Grid.township.ilike(like))))]
        if text.lstrip("#").isdigit():
            conds.append(Ticket.id == int(text.lstrip("#")))
        q = q.where(or_(*conds))
    return q


#: list orders: ``priority`` (P0 first, then overdue, then newest: the command room's
#: worklist, so a fresh P0 is always on top) or ``newest`` (id descending)
ORDERS = ("newest", "priority")


def _order(q, order: str):
    if order == "priority":
        return q.order_by(Ticket.priority.asc(), Ticket.overdue.desc(), Ticket.id.desc())
    return q.order_by(Ticket.id.desc())


def search_tickets(session: Session, f: TicketFilter, principal: Principal, limit: int = 100,
                   offset: int = 0, with_total: bool = True, order: str = "newest") -> tuple[list[Ticket], int]:
    """Tickets matching ``f`` that the principal may see, in ``order`` (see :data:`ORDERS`),
    and the total count (-1 when ``with_total`` is False: counting is the costly part on
    big tables)."""
    rows = session.scalars(_order(_where(select(Ticket), f, principal), order)
                           .limit(limit).offset(offset)).all()
    if not with_total:
        return list(rows), -1
    if offset == 0 and len(rows) < limit:
        return list(rows), len(rows)
    total = session.scalar(_where(select(func.count(Ticket.id)), f, principal)) or 0
    return list(rows), int(total)


def ticket_events(session: Session, ticket_id: int) -> list[TicketEvent]:
    return list(session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
                                .order_by(TicketEvent.id)).all())


def ticket_incidents(session: Session, ticket_id: int) -> list[Incident]:
    return list(session.scalars(select(Incident).where(Incident.ticket_id == ticket_id).order_by(Incident.id)))


def _stage_stats(durations: list[float], on_time: list[bool]) -> dict[str, Any]:
    n = len(durations)
    return {
        "count": n,
        "on_time": sum(on_time),
        "on_time_rate": round(sum(on_time) / n, 4) if n else None,
        "median_s": round(statistics.median(durations), 3) if n else None,
    }


def assessment_stats(session: Session, principal: Principal, group_by: str, f: TicketFilter) -> dict[str, Any]:
    """考核 figures per grid or per lead department (and in total): ticket counts by status,
    overdue and escalated counts, and per workflow stage the number completed, the on-time
    rate against the SLA clock, and the median seconds spent."""
    key_col = {"grid": Ticket.grid_id, "department": Ticket.lead_department, "class": Ticket.class_name,
               "tier": Ticket.tier}[group_by]
    tq = _where(select(Ticket.id, key_col, Ticket.status, Ticket.overdue, Ticket.escalations, Ticket.score), f,
                principal)
    tickets = session.execute(tq).all()
    key_of: dict[int, str] = {}
    groups: dict[str, dict[str, Any]] = {}

    def new_group() -> dict[str, Any]:
        return {"tickets": 0, "by_status": defaultdict(int), "overdue": 0, "escalated": 0, "_s": [],
                "_d": defaultdict(list), "_o": defaultdict(list)}

    total = new_group()
    for tid, key, status, overdue, esc, score in tickets:
        key_of[tid] = key
        for g in (groups.setdefault(key, new_group()), total):
            g["tickets"] += 1
            g["by_status"][status] += 1
            g["overdue"] += int(bool(overdue))
            g["escalated"] += int(esc > 0)
            if score is not None:
                g["_s"].append(score)
    if key_of:
        # A stage counts once per ticket: the time of every pass through it summed (a send-back
        # re-enters 处置), on time only if every pass was. A stay-in-state action (接单 while
        # 流转) records the clock so far but does not end the stage, so it is not a pass.
        eq = select(TicketEvent.ticket_id, TicketEvent.stage, TicketEvent.duration_s, TicketEvent.on_time).where(
            TicketEvent.kind == "transition", TicketEvent.stage.is_not(None),
            TicketEvent.from_status != TicketEvent.to_status)
        tid_subq = _where(select(Ticket.id), f, principal).scalar_subquery()
        passes: dict[tuple[int, str], list[float]] = {}
        for tid, stage, dur, ok in session.execute(eq.where(TicketEvent.ticket_id.in_(tid_subq))):
            if tid not in key_of or dur is None:
                continue
            p = passes.setdefault((tid, stage), [0.0, 1.0])
            p[0] += dur
            p[1] = min(p[1], float(bool(ok)))
        for (tid, stage), (dur, ok) in passes.items():
            for g in (groups[key_of[tid]], total):
                g["_d"][stage].append(dur)
                g["_o"][stage].append(bool(ok))

    def finish(g: dict[str, Any]) -> dict[str, Any]:
        return {"tickets": g["tickets"], "by_status": dict(g["by_status"]), "overdue": g["overdue"],
                "escalated": g["escalated"], "scored": len(g["_s"]),
                "score_avg": round(statistics.fmean(g["_s"]), 1) if g["_s"] else None,
                "stages": {s: _stage_stats(g["_d"][s], g["_o"][s]) for s in STAGES}}

    return {"group_by": group_by, "groups": [{"key": k, **finish(g)} for k, g in sorted(groups.items())],
            "total": finish(total)}
