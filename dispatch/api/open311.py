"""Open311 GeoReport v2 read endpoints (services, requests) for interoperability.

Authenticated like the rest of the API (any role; grid workers see their grids). Tickets
map to service requests: ``service_code`` = patrol class, ``status`` open/closed,
``agency_responsible`` = lead department, ``address`` = grid name.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from dispatch.core.security import Principal
from dispatch.deps import current_principal, get_runtime, get_session
from dispatch.errors import ApiError
from dispatch.models import Ticket
from dispatch.queries import TicketFilter, search_tickets, split_list
from dispatch.schemas import MAX_ID, IdPath, query_time
from dispatch.service import Runtime, _iso

router = APIRouter(prefix="/open311/v2", tags=["open311"])


def _request_json(rt: Runtime, t: Ticket) -> dict:
    rule = rt.routing.spec.classes.get(t.class_name)
    state = rt.workflow.states.get(t.status)
    info = rt.grids.info.get(t.grid_id)
    dep = rt.routing.departments.get(t.lead_department)
    return {
        "service_request_id": str(t.id),
        "status": state.open311 if state else "open",
        "status_notes": f"{state.label if state else t.status} ({t.status}); tier {t.tier}"
                        + ("; overdue" if t.overdue else ""),
        "service_name": rule.label if rule else t.class_name,
        "service_code": t.class_name,
        "description": f"{rule.label if rule else t.class_name}: {t.incident_count} report(s), P{t.priority}",
        "agency_responsible": dep.name if dep else t.lead_department,
        "service_notice": None,
        "requested_datetime": _iso(t.created_at),
        "updated_datetime": _iso(t.updated_at),
        "expected_datetime": _iso(t.sla_due_at),
        "address": info.name if info else t.grid_id,
        "address_id": t.grid_id,
        "zipcode": None,
        "lat": t.lat,
        "long": t.lon,
        "media_url": f"/api/v1/evidence/{t.evidence_id}" if t.evidence_id else None,
    }


@router.get("/services.json")
def services(rt: Runtime = Depends(get_runtime), principal: Principal = Depends(current_principal)) -> list[dict]:
    """The patrol classes as Open311 services."""
    return [{"service_code": code, "service_name": rule.label, "description": f"{rule.label} ({code})",
             "metadata": False, "type": "realtime", "keywords": code.replace("_", ","),
             "group": rt.routing.departments[rule.lead].name} for code, rule in rt.routing.spec.classes.items()]


def _open311_status(status: str | None, rt: Runtime) -> list[str] | None:
    wanted = split_list(status)
    if not wanted:
        return None
    if any(s not in ("open", "closed") for s in wanted):
        raise ApiError(400, "status: expected open or closed", "query.status")
    return [s.id for s in rt.workflow.states.values() if s.open311 in wanted]


@router.get("/requests.json")
def requests(
    service_request_id: str | None = Query(None, description="comma-separated ids"),
    service_code: str | None = Query(None),
    start_date: datetime | None = Query(None),
    end_date: datetime | None = Query(None),
    status: str | None = Query(None, description="open or closed"),
    limit: int = Query(200, ge=1, le=1000),
    rt: Runtime = Depends(get_runtime),
    principal: Principal = Depends(current_principal),
    session: Session = Depends(get_session),
) -> list[dict]:
    """Service requests (tickets), newest first (GeoReport v2 GET Service Requests)."""
    if service_request_id:
        ids = []
        for x in split_list(service_request_id) or []:
            # ASCII digits only: str.isdigit() also passes '²' (int() then fails: 500)
            if not (x.isascii() and x.isdigit() and 1 <= int(x) <= MAX_ID):
                raise ApiError(400, f"service_request_id: {x!r} is not a request id (1..{MAX_ID})",
                               "query.service_request_id")
            ids.append(int(x))
        out = []
        for i in ids:
            t = session.get(Ticket, i)
            if t is not None and principal.sees_grid(t.grid_id):
                out.append(_request_json(rt, t))
        return out

    f = TicketFilter(class_name=split_list(service_code), since=query_time(start_date, "query.start_date"),
                     until=query_time(end_date, "query.end_date"),
                     status=_open311_status(status, rt))
    rows, _ = search_tickets(session, f, principal, limit=limit, with_total=False)
    return [_request_json(rt, t) for t in rows]


@router.get("/requests/{request_id}.json")
def request_one(request_id: IdPath, rt: Runtime = Depends(get_runtime), principal: Principal = Depends(current_principal),
                session: Session = Depends(get_session)) -> list[dict]:
    """One service request (a list of one, as GeoReport v2 answers)."""
    t = session.get(Ticket, request_id)
    if t is None or not principal.sees_grid(t.grid_id):  # one answer: no id confirmed across grids
        raise ApiError(404, f"request_id: no service request {request_id}", "path.request_id")
    return [_request_json(rt, t)]
