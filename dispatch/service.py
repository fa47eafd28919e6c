"""Ticket services: ingest with grouping, workflow transitions, comments, photos, SLA checks.

Every function runs inside the caller's transaction (see
:func:`dispatch.core.db.write_transaction`), records a ticket event, appends to the audit
chain and writes a ``live_events`` outbox row, so a change and its traces commit together
or not at all. Times are UTC datetimes from the runtime's clock; distances metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch import audit, outbox
from dispatch.core.clock import Clock
from dispatch.core.config import Settings
from dispatch.core.security import Principal
from dispatch.errors import ApiError
from dispatch.evidence import CheckedImage, store
from dispatch.grids import GridIndex
from dispatch.models import Evidence, Incident, Ticket, TicketEvent
from dispatch.routing import Routing
from dispatch.workflow import IllegalTransition, Workflow, next_state

EARTH_R = 6_371_008.8  # mean Earth radius, metres


@dataclass
class Runtime:
    """What the services need besides a session: settings, rules, grids and a clock."""

    settings: Settings
    routing: Routing
    workflow: Workflow
    grids: GridIndex
    clock: Clock


@dataclass(frozen=True)
class IncidentData:
    """A validated incident as the API received it (WGS-84 degrees, metres, UTC)."""

    external_id: str
    source: str
    class_name: str
    lat: float
    lon: float
    error_m: float
    confidence: float
    observed_at: datetime
    drone_id: str | None = None
    sortie_id: str | None = None
    frames_seen: int = 1
    evidence: CheckedImage | None = None


@dataclass(frozen=True)
class IngestResult:
    incident_id: int
    ticket_id: int
    created: bool  # False: this external_id was already stored
    ticket_created: bool = False


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine), metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_R * math.asin(min(1.0, math.sqrt(a)))


def _weight(error_m: float) -> float:
    """Inverse-variance weight of a position with 1-sigma error ``error_m`` (floored at 1 m)."""
    return 1.0 / max(error_m, 1.0) ** 2


# ------------------------------------------------------------------------ public JSON


def ticket_json(rt: Runtime, t: Ticket) -> dict[str, Any]:
    """The ticket's public JSON (API answers and live events)."""
    wf = rt.workflow
    info = rt.grids.info.get(t.grid_id)
    rule = rt.routing.spec.classes.get(t.class_name)
    state = wf.states.get(t.status)
    iso = _iso
    return {
        "id": t.id,
        "class_name": t.class_name,
        "class_label": rule.label if rule else t.class_name,
        "status": t.status,
        "status_label": state.label if state else t.status,
        "tier": t.tier,
        "priority": t.priority,
        "priority_label": f"P{t.priority}",
        "lat": t.lat,
        "lon": t.lon,
        "error_m": round(t.error_m, 2),
        "grid_id": t.grid_id,
        "grid_name": info.name if info else None,
        "area_type": t.area_type,
        "worker": {"id": t.worker_id, "name": info.worker_name if info else None,
                   "phone": info.worker_phone if info else None},
        "lead_department": t.lead_department,
        "co_departments": list(t.co_departments or []),
        "departments": [t.lead_department, *(t.co_departments or [])],
        "checklist": t.checklist,
        "incident_count": t.incident_count,
        "max_confidence": round(t.max_confidence, 3),
        "first_seen_at": iso(t.first_seen_at),
        "last_seen_at": iso(t.last_seen_at),
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
        "sla": {"stage": t.sla_stage, "stage_started_at": iso(t.stage_started_at), "due_at": iso(t.sla_due_at)},
        "overdue": t.overdue,
        "escalations": t.escalations,
        "duplicate_of": t.duplicate_of,
        "closed_at": iso(t.closed_at),
        "evidence_url": f"/api/v1/evidence/{t.evidence_id}" if t.evidence_id else None,
        "allowed_actions": wf.allowed(t.status),
    }


def _iso(d: datetime | None) -> str | None:
    return d.isoformat().replace("+00:00", "Z") if d else None


def _emit(session: Session, rt: Runtime, t: Ticket, topic: str, change: str, now: datetime) -> None:
    payload = ticket_json(rt, t)
    payload["change"] = change
    outbox.emit(session, topic, payload, grid_id=t.grid_id, tier=t.tier, class_name=t.class_name,
                priority=t.priority, at=now)


def _event(session: Session, t: Ticket, now: datetime, kind: str, actor: Principal | None, **kw: Any) -> None:
    session.add(TicketEvent(ticket_id=t.id, at=now, kind=kind, actor=actor.name if actor else "system",
                            actor_role=actor.role if actor else "system", data=kw.pop("data", {}), **kw))


def _actor(p: Principal | None) -> str:
    return f"{p.role}:{p.name}#{p.token_id}" if p else "system"


# ------------------------------------------------------------------------ ingest


def _store_evidence(session: Session, rt: Runtime, img: CheckedImage, ticket_id: int | None, kind: str,
                    who: str, now: datetime) -> Evidence:
    rel = store(rt.settings.evidence_dir, img)
    ev = Evidence(sha256=img.sha256, content_type=img.content_type, size_bytes=len(img.data), width=img.width,
                  height=img.height, path=rel, ticket_id=ticket_id, kind=kind, uploaded_by=who, created_at=now)
    session.add(ev)
    session.flush()
    return ev


def find_group(session: Session, rt: Runtime, class_name: str, lat: float, lon: float,
               observed_at: datetime) -> Ticket | None:
    """The nearest open ticket of the same class within the grouping radius and time window."""
    radius = rt.settings.group_radius_m
    dlat = math.degrees(radius / EARTH_R)
    dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
    since = observed_at - timedelta(seconds=rt.settings.group_window_s)
    open_states = [s for s, st in rt.workflow.states.items() if not st.terminal]
    rows = session.scalars(
        select(Ticket).where(
            Ticket.class_name == class_name,
            Ticket.status.in_(open_states),
            Ticket.lat.between(lat - dlat, lat + dlat),
            Ticket.lon.between(lon - dlon, lon + dlon),
            Ticket.last_seen_at >= since,
        )
    ).all()
    best, best_d = None, radius
    for t in rows:
        d = distance_m(lat, lon, t.lat, t.lon)
        if d <= best_d:
            best, best_d = t, d
    return best


def ingest(session: Session, rt: Runtime, inc: IncidentData, principal: Principal | None) -> IngestResult:
    """Store one incident and attach it to its ticket (new or grouped); idempotent by external_id."""
    audit.lock_head(session)  # serialise writers first (PostgreSQL replicas)
    existing = session.execute(
        select(Incident.id, Incident.ticket_id).where(Incident.external_id == inc.external_id)
    ).first()
    if existing:
        return IngestResult(existing[0], existing[1], created=False)
    if inc.class_name not in rt.routing.spec.classes:
        raise ApiError(422, f"class_name: no routing rule for {inc.class_name!r}", "body.class_name")
    grid = rt.grids.locate(inc.lon, inc.lat)
    if grid is None:
        raise ApiError(422, f"lat/lon: position ({inc.lat:.6f}, {inc.lon:.6f}) is outside every grid "
                            f"({len(rt.grids)} grids loaded)", "body.lat")
    if principal and not principal.sees_grid(grid.id):
        raise ApiError(403, f"lat/lon: position lies in grid {grid.id!r}, not one of yours", "body.lat")
    now = rt.clock.now()
    who = _actor(principal)
    ticket = find_group(session, rt, inc.class_name, inc.lat, inc.lon, inc.observed_at)
    w = _weight(inc.error_m)
    ticket_created = ticket is None
    if ticket is None:
        ticket = _new_ticket(rt, inc, grid, now, w)
        session.add(ticket)
        session.flush()
    else:
        ticket.sum_w += w
        ticket.sum_wlat += w * inc.lat
        ticket.sum_wlon += w * inc.lon
        ticket.lat, ticket.lon = ticket.sum_wlat / ticket.sum_w, ticket.sum_wlon / ticket.sum_w
        ticket.error_m = 1.0 / math.sqrt(ticket.sum_w)
        ticket.incident_count += 1
        ticket.max_confidence = max(ticket.max_confidence, inc.confidence)
        ticket.first_seen_at = min(ticket.first_seen_at, inc.observed_at)
        ticket.last_seen_at = max(ticket.last_seen_at, inc.observed_at)
        ticket.updated_at = now
    ev = _store_evidence(session, rt, inc.evidence, ticket.id, "incident", who, now) if inc.evidence else None
    if ev and ticket.evidence_id is None:
        ticket.evidence_id = ev.id
    row = Incident(external_id=inc.external_id, source=inc.source, class_name=inc.class_name, lat=inc.lat,
                   lon=inc.lon, error_m=inc.error_m, confidence=inc.confidence, observed_at=inc.observed_at,
                   received_at=now, drone_id=inc.drone_id, sortie_id=inc.sortie_id, frames_seen=inc.frames_seen,
                   ticket_id=ticket.id, evidence_id=ev.id if ev else None, reported_by=who)
    session.add(row)
    session.flush()
    kind = "created" if ticket_created else "incident_merged"
    _event(session, ticket, now, kind, principal, to_status=ticket.status if ticket_created else None,
           data={"incident_id": row.id, "external_id": inc.external_id, "source": inc.source})
    audit.append(session, now, who, "incident.ingest", f"incident:{row.id}",
                 {"external_id": inc.external_id, "ticket_id": ticket.id, "class_name": inc.class_name,
                  "lat": inc.lat, "lon": inc.lon, "new_ticket": ticket_created})
    _emit(session, rt, ticket, "ticket.created" if ticket_created else "ticket.updated", kind, now)
    return IngestResult(row.id, ticket.id, created=True, ticket_created=ticket_created)


def _new_ticket(rt: Runtime, inc: IncidentData, grid: Any, now: datetime, w: float) -> Ticket:
    rule = rt.routing.rule(inc.class_name)
    status = rt.workflow.initial
    stage = rt.workflow.states[status].stage
    due = now + timedelta(seconds=rt.routing.stage_seconds(inc.class_name, stage, grid.area_type)) if stage else None
    return Ticket(
        class_name=inc.class_name, status=status, tier=rt.routing.tiers[0], priority=rule.priority,
        lat=inc.lat, lon=inc.lon, error_m=max(inc.error_m, 1.0), sum_w=w, sum_wlat=w * inc.lat, sum_wlon=w * inc.lon,
        grid_id=grid.id, worker_id=grid.worker_id, area_type=grid.area_type, lead_department=rule.lead,
        co_departments=[d for d in rule.co if d != rule.lead], checklist=rt.routing.checklist(inc.class_name),
        incident_count=1, max_confidence=inc.confidence, first_seen_at=inc.observed_at,
        last_seen_at=inc.observed_at, created_at=now, updated_at=now, stage_started_at=now, sla_stage=stage,
        sla_due_at=due, overdue=False, escalations=0,
    )


# ------------------------------------------------------------------------ workflow


def get_ticket_for(session: Session, ticket_id: int, principal: Principal, lock: bool = False) -> Ticket:
    """Load a ticket the principal may see: 404 when missing, 403 across grids."""
    q = select(Ticket).where(Ticket.id == ticket_id)
    if lock:
        q = q.with_for_update()
    t = session.scalar(q)
    if t is None:
        raise ApiError(404, f"ticket_id: no ticket {ticket_id}", "path.ticket_id")
    if not principal.sees_grid(t.grid_id):
        raise ApiError(403, f"ticket {ticket_id} is in grid {t.grid_id!r}, outside your grids", "path.ticket_id")
    return t


def apply_action(session: Session, rt: Runtime, ticket_id: int, action: str, principal: Principal,
                 comment: str | None = None, duplicate_of: int | None = None) -> Ticket:
    """Move a ticket along the workflow; 422 unknown action, 409 illegal now, 403 wrong role."""
    audit.lock_head(session)
    t = get_ticket_for(session, ticket_id, principal, lock=True)
    wf = rt.workflow
    if action not in wf.actions:
        raise ApiError(422, f"action: unknown action {action!r}; known: {', '.join(wf.actions)}", "body.action",
                       current_status=t.status, allowed_actions=wf.allowed(t.status))
    try:
        target = next_state(wf, t.status, action)
    except IllegalTransition as e:
        raise ApiError(409, str(e), "body.action", current_status=t.status, allowed_actions=e.allowed) from None
    if principal.role not in wf.actions[action].roles:
        raise ApiError(403, f"action: role {principal.role!r} may not {action!r}; allowed roles: "
                            f"{', '.join(wf.actions[action].roles)}", "body.action")
    if action == "mark_duplicate":
        if duplicate_of is None or duplicate_of == t.id or session.get(Ticket, duplicate_of) is None:
            raise ApiError(422, "duplicate_of: name another existing ticket id", "body.duplicate_of")
    now = rt.clock.now()
    from_status, stage = t.status, t.sla_stage
    duration = (now - t.stage_started_at).total_seconds()
    on_time = duration <= rt.routing.stage_seconds(t.class_name, stage, t.area_type) if stage else None
    t.status = target
    new_stage = wf.states[target].stage
    t.sla_stage = new_stage
    t.stage_started_at = now
    t.sla_due_at = (now + timedelta(seconds=rt.routing.stage_seconds(t.class_name, new_stage, t.area_type))
                    if new_stage else None)
    t.overdue = False
    t.updated_at = now
    if wf.states[target].terminal:
        t.closed_at = now
    else:
        t.closed_at = None
    t.duplicate_of = duplicate_of if action == "mark_duplicate" else (None if action == "reopen" else t.duplicate_of)
    _event(session, t, now, "transition", principal, action=action, from_status=from_status, to_status=target,
           comment=comment, stage=stage, duration_s=duration if stage else None, on_time=on_time,
           data={"duplicate_of": duplicate_of} if duplicate_of else {})
    audit.append(session, now, _actor(principal), f"ticket.{action}", f"ticket:{t.id}",
                 {"from": from_status, "to": target, "comment": comment, "duplicate_of": duplicate_of})
    _emit(session, rt, t, "ticket.updated", "transition", now)
    return t


def add_comment(session: Session, rt: Runtime, ticket_id: int, text: str, principal: Principal) -> TicketEvent:
    audit.lock_head(session)
    t = get_ticket_for(session, ticket_id, principal, lock=True)
    now = rt.clock.now()
    t.updated_at = now
    _event(session, t, now, "comment", principal, comment=text)
    audit.append(session, now, _actor(principal), "ticket.comment", f"ticket:{t.id}", {"text": text})
    _emit(session, rt, t, "ticket.updated", "comment", now)
    session.flush()
    return session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id)
                           .order_by(TicketEvent.id.desc()).limit(1)).one()


def add_photo(session: Session, rt: Runtime, ticket_id: int, img: CheckedImage, caption: str | None,
              principal: Principal) -> Evidence:
    audit.lock_head(session)
    t = get_ticket_for(session, ticket_id, principal, lock=True)
    now = rt.clock.now()
    who = _actor(principal)
    ev = _store_evidence(session, rt, img, t.id, "photo", who, now)
    t.updated_at = now
    if t.evidence_id is None:
        t.evidence_id = ev.id
    _event(session, t, now, "photo", principal, comment=caption,
           data={"evidence_id": ev.id, "url": f"/api/v1/evidence/{ev.id}"})
    audit.append(session, now, who, "ticket.photo", f"ticket:{t.id}", {"evidence_id": ev.id, "sha256": img.sha256})
    _emit(session, rt, t, "ticket.updated", "photo", now)
    return ev


# ------------------------------------------------------------------------ SLA timers


def check_sla(session: Session, rt: Runtime, now: datetime | None = None, batch: int = 500) -> list[int]:
    """Flag tickets whose stage clock ran out as overdue (督办) and escalate them one tier.

    The clock of that stage restarts at the new tier, so a ticket still untouched escalates
    again; at the top tier it stays overdue without a further deadline. Returns ticket ids.
    """
    now = now or rt.clock.now()
    audit.lock_head(session)
    due = session.scalars(
        select(Ticket).where(Ticket.sla_due_at.is_not(None), Ticket.sla_due_at <= now)
        .order_by(Ticket.sla_due_at).limit(batch).with_for_update()
    ).all()
    done: list[int] = []
    for t in due:
        stage, from_tier = t.sla_stage, t.tier
        to_tier = rt.routing.next_tier(t.tier)
        seconds = rt.routing.stage_seconds(t.class_name, stage, t.area_type) if stage else 0.0
        t.overdue = True
        t.updated_at = now
        if to_tier:
            t.tier = to_tier
            t.escalations += 1
            t.sla_due_at = now + timedelta(seconds=seconds)
        else:
            t.sla_due_at = None
        kind = "escalated" if to_tier else "overdue"
        data = {"stage": stage, "from_tier": from_tier, "to_tier": to_tier or from_tier,
                "next_due_at": _iso(t.sla_due_at)}
        _event(session, t, now, kind, None, stage=stage, data=data)
        audit.append(session, now, "system:sla", f"ticket.{kind}", f"ticket:{t.id}", data)
        _emit(session, rt, t, "ticket.updated", kind, now)
        done.append(t.id)
    return done
