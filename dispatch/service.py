"""Ticket services: ingest with grouping, workflow transitions, comments, photos, SLA checks.

Every function runs inside the caller's transaction (see
:func:`dispatch.core.db.write_transaction`), records a ticket event, appends to the audit
chain and writes a ``live_events`` outbox row, so a change and its traces commit together
or not at all. Times are UTC datetimes from the runtime's clock; distances metres.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from dispatch import audit, outbox
from dispatch.core.clock import Clock
from dispatch.core.config import Settings
from dispatch.core.security import Principal
from dispatch.errors import ApiError
from dispatch.evidence import CheckedImage, store
from dispatch.grids import GridIndex
from dispatch.models import Evidence, Incident, LiveEvent, Ticket, TicketEvent
from dispatch.routing import Routing
from dispatch.workflow import IllegalTransition, Workflow, next_state
from geo.geodesy import distance_m


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
    evidence_box: tuple[float, ...] | None = None  # the detection in evidence pixels, for verdicts -> training data


def source_key(principal: Principal | None) -> str:
    """The scope of a poster's idempotency keys: ``"<role>:<token name>"`` ("system" without
    a token). By name, not token id, so a rotated token (same role and name) keeps its keys
    and several edge boxes or replicas sharing one token share one key space (their keys
    must then be globally unique, as vision's uuid5 keys are)."""
    return f"{principal.role}:{principal.name}" if principal else "system"


def payload_hash(inc: IncidentData) -> str:
    """SHA-256 (hex) of the incident's canonical payload: every field but ``external_id``,
    floats by ``repr``, times as UTC ISO-8601, evidence by its stored image's SHA-256 and
    box. An exact re-send hashes the same; any changed field changes it."""
    ev = inc.evidence
    doc = {
        "source": inc.source, "class_name": inc.class_name, "lat": repr(float(inc.lat)),
        "lon": repr(float(inc.lon)), "error_m": repr(float(inc.error_m)),
        "confidence": repr(float(inc.confidence)), "observed_at": inc.observed_at.astimezone(UTC).isoformat(),
        "drone_id": inc.drone_id, "sortie_id": inc.sortie_id, "frames_seen": int(inc.frames_seen),
        "evidence": None if ev is None else {"content_type": ev.content_type, "sha256": ev.sha256},
        "evidence_box": None if inc.evidence_box is None else [repr(float(v)) for v in inc.evidence_box],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def _key_conflict(inc: IncidentData, incident_id: int | None) -> ApiError:
    where = f" (incident {incident_id})" if incident_id else " (earlier in this batch)"
    return ApiError(409, f"external_id: {inc.external_id!r} was already stored from this source{where} with a "
                         "different payload; a new observation needs a new external_id", "body.external_id",
                    code="external_id_conflict")


@dataclass(frozen=True)
class IngestResult:
    incident_id: int
    ticket_id: int
    created: bool  # False: this external_id was already stored
    ticket_created: bool = False


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
        "assignment": {"department": getattr(t, "assigned_department", None),
                       "assignee": getattr(t, "assignee", None),
                       "deadline": iso(getattr(t, "assigned_due_at", None)),
                       "instructions": getattr(t, "instructions", None)},
        "score": getattr(t, "score", None),
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

CELL_M = 100.0  # grouping cell size, metres (north-south)
_CELL_DEG = CELL_M / 111_320.0


def cell_of(lat: float, lon: float) -> int:
    """Key of the ~100 m cell holding (lat, lon): row * 10^7 + column of a degree lattice."""
    return int(math.floor((lat + 90.0) / _CELL_DEG)) * 10_000_000 + int(math.floor((lon + 180.0) / _CELL_DEG))


def neighbour_cells(lat: float, lon: float, radius_m: float) -> list[int]:
    """Every cell key a point within ``radius_m`` of (lat, lon) can fall in."""
    iy = int(math.floor((lat + 90.0) / _CELL_DEG))
    ix = int(math.floor((lon + 180.0) / _CELL_DEG))
    ry = math.ceil(radius_m / CELL_M)
    rx = math.ceil(radius_m / (CELL_M * max(math.cos(math.radians(lat)), 0.01)))
    return [(iy + dy) * 10_000_000 + ix + dx for dy in range(-ry, ry + 1) for dx in range(-rx, rx + 1)]


def _store_evidence(session: Session, rt: Runtime, img: CheckedImage, ticket_id: int | None, kind: str,
                    who: str, now: datetime) -> Evidence:
    rel = store(rt.settings.evidence_dir, img)
    ev = Evidence(sha256=img.sha256, content_type=img.content_type, size_bytes=len(img.data), width=img.width,
                  height=img.height, path=rel, ticket_id=ticket_id, kind=kind, uploaded_by=who, created_at=now)
    session.add(ev)
    session.flush()
    return ev


def _chunks(seq: list, n: int):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


class _Candidates:
    """Open tickets near a batch, bucketed by cell, updated as the batch is grouped."""

    def __init__(self, radius_m: float, window_s: float, skew_s: float = 300.0) -> None:
        self.radius, self.window = radius_m, timedelta(seconds=window_s)
        self.skew = timedelta(seconds=skew_s)
        self.by_cell: dict[tuple[str, int], list[Ticket]] = {}

    def add(self, t: Ticket) -> None:
        self.by_cell.setdefault((t.class_name, t.cell), []).append(t)

    def move(self, t: Ticket, old_cell: int) -> None:
        if old_cell != t.cell:
            self.by_cell[(t.class_name, old_cell)].remove(t)
            self.add(t)

    def nearest(self, inc: IncidentData) -> Ticket | None:
        best, best_d = None, self.radius
        for c in neighbour_cells(inc.lat, inc.lon, self.radius):
            for t in self.by_cell.get((inc.class_name, c), ()):
                # seen within the window of the ticket's sightings, both ways; a ticket's
                # last sighting counts at most max_clock_skew_s after its last update (a
                # far-future observed_at stored before the bound must not make it absorb
                # every later report)
                last = min(t.last_seen_at, t.updated_at + self.skew)
                if last < inc.observed_at - self.window or t.first_seen_at > inc.observed_at + self.window:
                    continue
                d = distance_m(inc.lat, inc.lon, t.lat, t.lon)
                if d <= best_d:
                    best, best_d = t, d
        return best


def ingest(session: Session, rt: Runtime, inc: IncidentData, principal: Principal | None) -> IngestResult:
    """Store one incident and attach it to its ticket (new or grouped); idempotent by
    external_id. Raises :class:`ApiError` (nothing written) for a bad position or class."""
    res = ingest_many(session, rt, [inc], principal)[0]
    if isinstance(res, ApiError):
        raise res
    return res


def ingest_many(session: Session, rt: Runtime, items: list[IncidentData],
                principal: Principal | None) -> list[IngestResult | ApiError]:
    """Ingest incidents in the caller's transaction, as one batch.

    Per item, in order: a known ``external_id`` of the same source (:func:`source_key`)
    answers its stored ids (created False) when the payload is the same
    (:func:`payload_hash`), else a 409 :class:`ApiError`; an unknown class or a position outside every grid (or outside a grid worker's grids)
    gives an :class:`ApiError` for that item and writes nothing for it; otherwise the
    incident joins the nearest open ticket of its class within ``group_radius_m`` seen
    within ``group_window_s`` (tickets created earlier in the batch included), or opens a
    new routed ticket. Writes are batched: one candidate query per class, bulk inserts of
    incidents, events, audit entries (hash-chained) and one outbox row per touched ticket.
    """
    head = audit.lock_head(session)
    now = rt.clock.now()
    who = _actor(principal)
    results: list[IngestResult | ApiError | None] = [None] * len(items)
    scope = source_key(principal)
    hashes = [payload_hash(i) for i in items]
    existing: dict[str, tuple[int, int, str | None]] = {}
    for chunk in _chunks(list({i.external_id for i in items}), 500):
        q = select(Incident.external_id, Incident.id, Incident.ticket_id, Incident.payload_hash).where(
            Incident.source_key == scope, Incident.external_id.in_(chunk))
        for ext, iid, tid, h in session.execute(q):
            existing[ext] = (iid, tid, h)
    todo: list[tuple[int, IncidentData, Any]] = []
    first_of: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []
    located = rt.grids.locate_many([i.lon for i in items], [i.lat for i in items])
    for k, inc in enumerate(items):
        if inc.external_id in existing:
            iid, tid, h = existing[inc.external_id]
            same = h is None or h == hashes[k]  # rows stored before migration 0006 have no hash
            results[k] = IngestResult(iid, tid, created=False) if same else _key_conflict(inc, iid)
        elif inc.external_id in first_of:
            if hashes[first_of[inc.external_id]] != hashes[k]:
                results[k] = _key_conflict(inc, None)
            else:
                repeats.append((k, first_of[inc.external_id]))
        elif inc.class_name not in rt.routing.spec.classes:
            results[k] = ApiError(422, f"class_name: no routing rule for {inc.class_name!r}", "body.class_name")
        else:
            grid = located[k]
            if grid is None:
                results[k] = ApiError(422, f"lat/lon: position ({inc.lat:.6f}, {inc.lon:.6f}) is outside every "
                                           f"grid ({len(rt.grids)} grids loaded)", "body.lat")
            elif principal and not principal.sees_grid(grid.id):
                results[k] = ApiError(403, f"lat/lon: position lies in grid {grid.id!r}, not one of yours",
                                      "body.lat")
            else:
                first_of[inc.external_id] = k
                todo.append((k, inc, grid))
    if todo:
        _ingest_new(session, rt, todo, results, head, now, who, scope, hashes)
    for k, first in repeats:
        r = results[first]
        results[k] = IngestResult(r.incident_id, r.ticket_id, created=False) if isinstance(r, IngestResult) else r
    return results  # type: ignore[return-value]


_TICKET_UPDATE_COLS = ("lat", "lon", "cell", "sum_w", "sum_wlat", "sum_wlon", "error_m", "incident_count",
                       "max_confidence", "first_seen_at", "last_seen_at", "updated_at", "evidence_id")


def _load_candidates(session: Session, rt: Runtime, todo: list[tuple[int, IncidentData, Any]]) -> _Candidates:
    """Open tickets (as plain records) in the cells around the batch, locked for update."""
    cand = _Candidates(rt.settings.group_radius_m, rt.settings.group_window_s, rt.settings.max_clock_skew_s)
    open_states = [s for s, st in rt.workflow.states.items() if not st.terminal]
    since = min(inc.observed_at for _, inc, _ in todo) - cand.window
    by_class: dict[str, set[int]] = {}
    for _, inc, _ in todo:
        by_class.setdefault(inc.class_name, set()).update(neighbour_cells(inc.lat, inc.lon, cand.radius))
    table = Ticket.__table__
    cols = [table.c[c] for c in ("id", "class_name", "status", *_TICKET_UPDATE_COLS)]
    for cls, cells in by_class.items():
        for chunk in _chunks(sorted(cells), 900):
            q = select(*cols).where(table.c.class_name == cls, table.c.cell.in_(chunk),
                                    table.c.status.in_(open_states), table.c.last_seen_at >= since)
            for row in session.execute(q.with_for_update()).mappings():
                cand.add(SimpleNamespace(**row))
    return cand


def _insert_ids(session: Session, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows and return their new ids in row order.

    SQLite: ids are allocated as MAX(id)+1... under the writer lock (the embedded store is
    one process; a multi-row RETURNING in parameter order would cost one statement per
    row there). Elsewhere: one INSERT ... RETURNING sorted by parameter order."""
    if session.get_bind().dialect.name == "sqlite":
        base = session.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
        ids = list(range(base + 1, base + 1 + len(rows)))
        session.execute(insert(table), [{**r, "id": i} for r, i in zip(rows, ids, strict=True)])
        return ids
    return list(session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars())


def _ingest_new(session: Session, rt: Runtime, todo: list[tuple[int, IncidentData, Any]],
                results: list, head: Any, now: datetime, who: str, scope: str, hashes: list[str]) -> None:
    cand = _load_candidates(session, rt, todo)
    assigned: list[tuple[int, IncidentData, Any, bool]] = []
    new: list[Any] = []
    updated: dict[int, Any] = {}
    for k, inc, grid in todo:
        w = _weight(inc.error_m)
        t = cand.nearest(inc)
        created = False
        if t is None:
            t = _new_ticket(rt, inc, grid, now, w)
            cand.add(t)
            new.append(t)
            created = True
        else:
            old_cell = t.cell
            t.sum_w += w
            t.sum_wlat += w * inc.lat
            t.sum_wlon += w * inc.lon
            t.lat, t.lon = t.sum_wlat / t.sum_w, t.sum_wlon / t.sum_w
            t.cell = cell_of(t.lat, t.lon)
            t.error_m = 1.0 / math.sqrt(t.sum_w)
            t.incident_count += 1
            t.max_confidence = max(t.max_confidence, inc.confidence)
            t.first_seen_at = min(t.first_seen_at, inc.observed_at)
            t.last_seen_at = max(t.last_seen_at, inc.observed_at)
            t.updated_at = now
            cand.move(t, old_cell)
            if t.id is not None:
                updated[t.id] = t
        assigned.append((k, inc, t, created))
    table = Ticket.__table__
    if new:  # one multi-row INSERT ... RETURNING, ids in parameter order
        rows = [{c: getattr(t, c) for c in _TICKET_COLS} for t in new]
        for t, tid in zip(new, _insert_ids(session, table, rows), strict=True):
            t.id = tid
    evidence_ids: dict[int, int] = {}
    for k, inc, t, _ in assigned:
        if inc.evidence is None:
            continue
        img = inc.evidence
        rel = store(rt.settings.evidence_dir, img)
        evidence_ids[k] = session.execute(insert(Evidence.__table__).returning(Evidence.__table__.c.id), [{
            "sha256": img.sha256, "content_type": img.content_type, "size_bytes": len(img.data),
            "width": img.width, "height": img.height, "path": rel, "ticket_id": t.id, "kind": "incident",
            "uploaded_by": who, "created_at": now}]).scalar_one()
        if t.evidence_id is None:
            t.evidence_id = evidence_ids[k]
            if not any(t is n for n in new):
                updated[t.id] = t
    if new and evidence_ids:
        for t in new:
            if t.evidence_id is not None:
                session.execute(update(table).where(table.c.id == t.id).values(evidence_id=t.evidence_id))
    if updated:
        session.execute(
            update(table).where(table.c.id == bindparam("t_id")).values(
                {c: bindparam(f"t_{c}") for c in _TICKET_UPDATE_COLS}),
            [{"t_id": t.id, **{f"t_{c}": getattr(t, c) for c in _TICKET_UPDATE_COLS}} for t in updated.values()],
        )
    inc_table = Incident.__table__
    inc_rows = [{
        "external_id": inc.external_id, "source_key": scope, "payload_hash": hashes[k], "source": inc.source, "class_name": inc.class_name, "lat": inc.lat,
        "lon": inc.lon, "error_m": inc.error_m, "confidence": inc.confidence, "observed_at": inc.observed_at,
        "received_at": now, "drone_id": inc.drone_id, "sortie_id": inc.sortie_id, "frames_seen": inc.frames_seen,
        "ticket_id": t.id, "evidence_id": evidence_ids.get(k), "reported_by": who,
    } for k, inc, t, _ in assigned]
    ids = _insert_ids(session, inc_table, inc_rows)
    events, entries = [], []
    role, _, name = who.partition(":")
    name = name.rsplit("#", 1)[0] if name else role
    touched: dict[int, tuple[Any, bool]] = {}
    for (k, inc, t, created), iid in zip(assigned, ids, strict=True):
        results[k] = IngestResult(iid, t.id, created=True, ticket_created=created)
        touched.setdefault(t.id, (t, created))
        kind = "created" if created else "incident_merged"
        events.append({"ticket_id": t.id, "at": now, "kind": kind, "action": None, "from_status": None,
                       "to_status": t.status if created else None, "actor": name, "actor_role": role,
                       "comment": None, "stage": None, "duration_s": None, "on_time": None,
                       "data": {"incident_id": iid, "external_id": inc.external_id, "source": inc.source,
                                **({"evidence_id": evidence_ids.get(k), "evidence_box": list(inc.evidence_box)}
                                   if inc.evidence_box and evidence_ids.get(k) else {})}})
        entries.append((now, who, "incident.ingest", f"incident:{iid}",
                        {"external_id": inc.external_id, "ticket_id": t.id, "class_name": inc.class_name,
                         "lat": inc.lat, "lon": inc.lon, "new_ticket": created}))
    session.execute(insert(TicketEvent.__table__), events)
    audit.append_many(session, entries, head)
    # full records (JSON columns...) of the grouped-into tickets, for their live events
    full: dict[int, Any] = {}
    merged_ids = [tid for tid, (_, created) in touched.items() if not created]
    for chunk in _chunks(merged_ids, 500):
        for row in session.execute(select(table).where(table.c.id.in_(chunk))).mappings():
            rec = SimpleNamespace(**row)
            for c in _TICKET_UPDATE_COLS:
                setattr(rec, c, getattr(touched[rec.id][0], c))
            full[rec.id] = rec
    outbox_rows = []
    for t, created in touched.values():
        t = full.get(t.id, t)
        payload = ticket_json(rt, t)
        payload["change"] = "created" if created else "incident_merged"
        outbox_rows.append({"at": now, "topic": "ticket.created" if created else "ticket.updated",
                            "payload": payload, "grid_id": t.grid_id, "tier": t.tier, "class_name": t.class_name,
                            "priority": t.priority})
    session.execute(insert(LiveEvent.__table__), outbox_rows)


_TICKET_COLS = ("class_name", "status", "tier", "priority", "lat", "lon", "cell", "error_m", "sum_w", "sum_wlat",
                "sum_wlon", "grid_id", "worker_id", "area_type", "lead_department", "co_departments", "checklist",
                "incident_count", "max_confidence", "first_seen_at", "last_seen_at", "created_at", "updated_at",
                "stage_started_at", "sla_stage", "sla_due_at", "overdue", "escalations", "duplicate_of", "closed_at",
                "evidence_id")


def _new_ticket(rt: Runtime, inc: IncidentData, grid: Any, now: datetime, w: float) -> SimpleNamespace:
    """A new ticket record (inserted by the caller) routed by the rules for the incident's class."""
    rule = rt.routing.rule(inc.class_name)
    status = rt.workflow.initial
    stage = rt.workflow.states[status].stage
    due = now + timedelta(seconds=rt.routing.stage_seconds(inc.class_name, stage, grid.area_type)) if stage else None
    return SimpleNamespace(
        id=None, class_name=inc.class_name, status=status, tier=rt.routing.tiers[0], priority=rule.priority,
        lat=inc.lat, lon=inc.lon, cell=cell_of(inc.lat, inc.lon), error_m=max(inc.error_m, 1.0), sum_w=w,
        sum_wlat=w * inc.lat, sum_wlon=w * inc.lon,
        grid_id=grid.id, worker_id=grid.worker_id, area_type=grid.area_type, lead_department=rule.lead,
        co_departments=[d for d in rule.co if d != rule.lead], checklist=rt.routing.checklist(inc.class_name),
        incident_count=1, max_confidence=inc.confidence, first_seen_at=inc.observed_at,
        last_seen_at=inc.observed_at, created_at=now, updated_at=now, stage_started_at=now, sla_stage=stage,
        sla_due_at=due, overdue=False, escalations=0, evidence_id=None, duplicate_of=None, closed_at=None,
    )


# ------------------------------------------------------------------------ workflow


def get_ticket_for(session: Session, ticket_id: int, principal: Principal, lock: bool = False) -> Ticket:
    """Load a ticket the principal may see: 404 when missing and, with the same answer, when
    it lies outside a grid worker's grids (a 403 would confirm that the id exists elsewhere)."""
    q = select(Ticket).where(Ticket.id == ticket_id)
    if lock:
        q = q.with_for_update()
    t = session.scalar(q)
    if t is None or not principal.sees_grid(t.grid_id):
        raise ApiError(404, f"ticket_id: no ticket {ticket_id}", "path.ticket_id")
    return t


@dataclass(frozen=True)
class Assignment:
    """What 派单 (route) decides: the handling department, the person, a deadline (UTC) and
    the instructions. Every field optional: the department defaults to the rule's lead."""

    department: str | None = None
    assignee: str | None = None
    deadline: datetime | None = None
    instructions: str | None = None


def _photo_since(session: Session, ticket_id: int, since: datetime) -> bool:
    """Whether an on-site photo of the ticket was uploaded at or after ``since``."""
    q = select(Evidence.id).where(Evidence.ticket_id == ticket_id, Evidence.kind == "photo",
                                  Evidence.created_at >= since).limit(1)
    return session.scalar(q) is not None


def _check_requirements(session: Session, rt: Runtime, t: Ticket, action: str, score: int | None) -> None:
    """Refuse (422, with a ``code``) an action whose workflow ``requires`` are not met."""
    req = rt.workflow.actions[action].requires
    if "photo" in req and not _photo_since(session, t.id, t.stage_started_at):
        raise ApiError(422, f"action: {action!r} requires an on-site photo uploaded since the ticket entered "
                            f"{t.status!r} (POST /api/v1/tickets/{t.id}/photos first)", "body.action",
                       code="photo_required")
    if "score" in req and score is None:
        raise ApiError(422, f"score: {action!r} requires a 0-100 assessment score", "body.score",
                       code="score_required")


def apply_action(session: Session, rt: Runtime, ticket_id: int, action: str, principal: Principal,
                 comment: str | None = None, duplicate_of: int | None = None, *,
                 assignment: Assignment | None = None, score: int | None = None) -> Ticket:
    """Move a ticket along the workflow; 422 unknown action or unmet requirement (photo,
    score, duplicate target, department), 409 illegal now, 403 wrong role. Errors carry a
    ``code`` that pages map to Chinese messages."""
    audit.lock_head(session)
    t = get_ticket_for(session, ticket_id, principal, lock=True)
    wf = rt.workflow
    if action not in wf.actions:
        raise ApiError(422, f"action: unknown action {action!r}; known: {', '.join(wf.actions)}", "body.action",
                       code="unknown_action", current_status=t.status, allowed_actions=wf.allowed(t.status))
    try:
        target = next_state(wf, t.status, action)
    except IllegalTransition as e:
        raise ApiError(409, str(e), "body.action", code="illegal_transition", current_status=t.status,
                       allowed_actions=e.allowed) from None
    if principal.role not in wf.actions[action].roles:
        raise ApiError(403, f"action: role {principal.role!r} may not {action!r}; allowed roles: "
                            f"{', '.join(wf.actions[action].roles)}", "body.action", code="role_not_allowed")
    if action == "mark_duplicate":
        if duplicate_of is None:
            raise ApiError(422, "duplicate_of: name the ticket this one repeats", "body.duplicate_of",
                           code="duplicate_of_required")
        if duplicate_of == t.id:
            raise ApiError(422, "duplicate_of: a ticket cannot repeat itself", "body.duplicate_of",
                           code="duplicate_of_self")
        if session.get(Ticket, duplicate_of) is None:
            raise ApiError(422, f"duplicate_of: no ticket {duplicate_of}", "body.duplicate_of",
                           code="duplicate_of_unknown")
    if assignment and assignment.department and assignment.department not in rt.routing.departments:
        raise ApiError(422, f"department: unknown department {assignment.department!r}", "body.department",
                       code="unknown_department")
    _check_requirements(session, rt, t, action, score)
    now = rt.clock.now()
    from_status, stage = t.status, t.sla_stage
    duration = (now - t.stage_started_at).total_seconds()
    on_time = duration <= rt.routing.stage_seconds(t.class_name, stage, t.area_type) if stage else None
    t.status = target
    if target != from_status:  # a stay-in-state action (claim) must not restart or clear the clock
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
    data: dict[str, Any] = {"duplicate_of": duplicate_of} if duplicate_of else {}
    if action == "route":
        a = assignment or Assignment()
        t.assigned_department = a.department or t.lead_department
        t.assignee, t.assigned_due_at, t.instructions = a.assignee, a.deadline, a.instructions
        data.update(department=t.assigned_department, assignee=a.assignee, deadline=_iso(a.deadline),
                    instructions=a.instructions)
    if score is not None and action == "assess":
        t.score = score
        data["score"] = score
    if action == "reopen":
        t.score = None
    _event(session, t, now, "transition", principal, action=action, from_status=from_status, to_status=target,
           comment=comment, stage=stage, duration_s=duration if stage else None, on_time=on_time, data=data)
    audit.append(session, now, _actor(principal), f"ticket.{action}", f"ticket:{t.id}",
                 {"from": from_status, "to": target, "comment": comment, **data})
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


def set_verdict(session: Session, rt: Runtime, ticket_id: int, verdict: str, box: list[float] | None,
                comment: str | None, principal: Principal) -> TicketEvent:
    """Record the room's verdict (``confirmed`` / ``false_alarm``) on the ticket's evidence as a
    ``verdict`` event (the latest one counts); it does not move the ticket."""
    audit.lock_head(session)
    t = get_ticket_for(session, ticket_id, principal, lock=True)
    now = rt.clock.now()
    t.updated_at = now
    if box is None and t.evidence_id is not None:  # the drone sent the detection's box with its evidence
        for e in session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id,
                                                           TicketEvent.kind.in_(("created", "incident_merged")))):
            if (e.data or {}).get("evidence_id") == t.evidence_id and e.data.get("evidence_box"):
                box = list(e.data["evidence_box"])
    data = {"verdict": verdict, "evidence_id": t.evidence_id, "class_name": t.class_name, "box": box}
    _event(session, t, now, "verdict", principal, comment=comment, data=data)
    audit.append(session, now, _actor(principal), "ticket.verdict", f"ticket:{t.id}", data)
    _emit(session, rt, t, "ticket.updated", "verdict", now)
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
