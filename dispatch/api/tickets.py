"""Tickets: search, detail, workflow actions, comments, photos."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from dispatch.api.common import AUTH_ERRORS, write
from dispatch.core.security import Principal
from dispatch.deps import current_principal, get_runtime, get_session, require_roles
from dispatch.errors import ApiError
from dispatch.evidence import check_image
from dispatch.queries import (
    TicketFilter,
    parse_bbox,
    parse_ids,
    parse_priorities,
    search_tickets,
    similar_tickets,
    split_list,
    ticket_events,
    ticket_incidents,
)
from dispatch.schemas import (
    ActionIn,
    CommentIn,
    ErrorOut,
    EventOut,
    IdPath,
    TicketDetail,
    TicketOut,
    TicketPage,
    VerdictIn,
    query_time,
)
from dispatch.service import (
    Assignment,
    Runtime,
    _iso,
    add_comment,
    add_photo,
    apply_action,
    get_ticket_for,
    set_verdict,
    ticket_json,
)

router = APIRouter(prefix="/api/v1", tags=["tickets"])
ACTORS = ("dispatcher", "department", "grid_worker")


def event_json(e) -> dict:  # noqa: ANN001 - TicketEvent
    return {"id": e.id, "at": _iso(e.at), "kind": e.kind, "action": e.action, "from_status": e.from_status,
            "to_status": e.to_status, "actor": e.actor, "actor_role": e.actor_role, "comment": e.comment,
            "stage": e.stage, "duration_s": e.duration_s, "on_time": e.on_time, "data": e.data or {}}


def ticket_filter(
    grid_id: str | None = Query(None, description="grid id(s), comma-separated"),
    tier: str | None = Query(None, description="village, town, district (comma-separated)"),
    status: str | None = Query(None, description="workflow state(s), comma-separated"),
    class_name: str | None = Query(None, description="patrol class(es), comma-separated"),
    since: datetime | None = Query(None, description="created at or after (ISO-8601)"),
    until: datetime | None = Query(None, description="created before (ISO-8601)"),
    bbox: str | None = Query(None, description="min_lon,min_lat,max_lon,max_lat (WGS-84)"),
    overdue: bool | None = Query(None),
    department: str | None = Query(None, description="lead or assigned department id"),
    q: str | None = Query(None, max_length=200, description="text: ticket id, grid id/name, assignee, instructions"),
    priority: str | None = Query(None, description="priorities, comma-separated (0 = P0)"),
    ids: str | None = Query(None, max_length=20_000, description="ticket ids, comma-separated (at most 1000)"),
) -> TicketFilter:
    return TicketFilter(grid_id=split_list(grid_id), tier=split_list(tier), status=split_list(status),
                        class_name=split_list(class_name), since=query_time(since, "query.since"),
                        until=query_time(until, "query.until"),
                        bbox=parse_bbox(bbox), overdue=overdue, department=department, q=q or None,
                        priority=parse_priorities(priority), ids=parse_ids(ids))


@router.get("/tickets", response_model=None,
            responses={200: {"model": TicketPage}, 422: {"model": ErrorOut}, **AUTH_ERRORS})
def list_tickets(
    f: TicketFilter = Depends(ticket_filter),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
    order: str = Query("newest", pattern="^(newest|priority)$",
                       description="newest first, or priority (P0 first, then overdue, then newest)"),
    principal: Principal = Depends(current_principal),
    session: Session = Depends(get_session),
    rt: Runtime = Depends(get_runtime),
) -> JSONResponse:
    """Tickets by grid, tier, status, class, priority, time range, bounding box and text,
    newest first or by priority. Grid workers see only their grids."""
    rows, total = search_tickets(session, f, principal, limit, offset, order=order)
    # built by ticket_json (the TicketOut shape); sent without re-validation: lists are hot
    body = {"items": [ticket_json(rt, t) for t in rows], "total": total, "limit": limit, "offset": offset}
    return JSONResponse(body)


@router.get("/tickets/{ticket_id}", response_model=TicketDetail, responses={404: {"model": ErrorOut}, **AUTH_ERRORS})
def get_ticket(ticket_id: IdPath, principal: Principal = Depends(current_principal),
               session: Session = Depends(get_session), rt: Runtime = Depends(get_runtime)) -> dict:
    """One ticket with its history (every transition: who, when, why) and its incidents."""
    t = get_ticket_for(session, ticket_id, principal)
    out = ticket_json(rt, t)
    out["events"] = [event_json(e) for e in ticket_events(session, t.id)]
    out["incidents"] = [
        {"id": i.id, "external_id": i.external_id, "source": i.source, "lat": i.lat, "lon": i.lon,
         "error_m": i.error_m, "confidence": i.confidence, "observed_at": _iso(i.observed_at),
         "drone_id": i.drone_id, "sortie_id": i.sortie_id, "frames_seen": i.frames_seen,
         "evidence_url": f"/api/v1/evidence/{i.evidence_id}" if i.evidence_id else None}
        for i in ticket_incidents(session, t.id)
    ]
    return out


@router.get("/tickets/{ticket_id}/similar", response_model=None, responses=AUTH_ERRORS)
def similar(ticket_id: IdPath, radius_m: float = Query(500.0, gt=0, le=20_000, description="search radius, m"),
            principal: Principal = Depends(current_principal), session: Session = Depends(get_session),
            rt: Runtime = Depends(get_runtime)) -> dict:
    """Other tickets of the same class within ``radius_m`` (nearest first, at most 20): the
    candidates a dispatcher picks from when marking this one 重复件."""
    t = get_ticket_for(session, ticket_id, principal)
    out = []
    for o, d in similar_tickets(session, t, principal, radius_m):
        j = ticket_json(rt, o)
        j["distance_m"] = round(d, 1)
        out.append(j)
    return {"items": out}


@router.get("/tickets/{ticket_id}/events", response_model=list[EventOut], responses=AUTH_ERRORS)
def get_events(ticket_id: IdPath, principal: Principal = Depends(current_principal),
               session: Session = Depends(get_session)) -> list[dict]:
    t = get_ticket_for(session, ticket_id, principal)
    return [event_json(e) for e in ticket_events(session, t.id)]


@router.post("/tickets/{ticket_id}/actions", response_model=TicketOut,
             responses={409: {"model": ErrorOut, "description": "not allowed in the current state"},
                        404: {"model": ErrorOut}, 422: {"model": ErrorOut}, **AUTH_ERRORS})
def act(ticket_id: IdPath, body: ActionIn, request: Request,
        principal: Principal = Depends(require_roles(*ACTORS)), rt: Runtime = Depends(get_runtime)) -> dict:
    """Move the ticket along 受理 → 分析 → 流转 → 处置 → 督办 → 考核 (or reject / mark
    duplicate / reopen / send back). An action not allowed now answers 409 with
    ``current_status`` and ``allowed_actions``."""
    assignment = Assignment(body.department, body.assignee, body.deadline, body.instructions)
    return write(request, lambda s: ticket_json(rt, apply_action(s, rt, ticket_id, body.action, principal,
                                                                   body.comment, body.duplicate_of,
                                                                   assignment=assignment, score=body.score)))


@router.post("/tickets/{ticket_id}/comments", response_model=EventOut, status_code=201,
             responses={404: {"model": ErrorOut}, **AUTH_ERRORS})
def comment(ticket_id: IdPath, body: CommentIn, request: Request,
            principal: Principal = Depends(require_roles(*ACTORS, "operator")),
            rt: Runtime = Depends(get_runtime)) -> dict:
    return write(request, lambda s: event_json(add_comment(s, rt, ticket_id, body.text, principal)))


@router.post("/tickets/{ticket_id}/verdict", response_model=EventOut, status_code=201,
             responses={404: {"model": ErrorOut}, **AUTH_ERRORS})
def verdict(ticket_id: IdPath, body: VerdictIn, request: Request,
            principal: Principal = Depends(require_roles("dispatcher", "operator")),
            rt: Runtime = Depends(get_runtime)) -> dict:
    """确认 / 标记误报: the verdict on the evidence becomes training data (`skygrid vision harvest`)."""
    return write(request, lambda s: event_json(set_verdict(s, rt, ticket_id, body.verdict, body.box, body.comment,
                                                           principal)))


@router.post("/tickets/{ticket_id}/photos", status_code=201,
             responses={413: {"model": ErrorOut}, 415: {"model": ErrorOut}, 404: {"model": ErrorOut}, **AUTH_ERRORS})
def photo(ticket_id: IdPath, request: Request, file: UploadFile = File(..., description="JPEG or PNG"),
          caption: str | None = Form(None, max_length=2000),
          principal: Principal = Depends(require_roles(*ACTORS)), rt: Runtime = Depends(get_runtime)) -> dict:
    """Attach an on-site photo (grid worker / department), multipart form field ``file``."""
    if caption and "\x00" in caption:  # multipart is not checked by the JSON edge; PostgreSQL refuses NUL
        raise ApiError(422, "caption: contains a NUL character", "form.caption")
    limit = rt.settings.max_evidence_bytes
    data = file.file.read(limit + 1)
    ctype = (file.content_type or "").split(";")[0].strip()
    if ctype not in ("image/jpeg", "image/png"):
        ctype = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg" if ctype in ("", "application/octet-stream") else ctype
    img = check_image(data, ctype, "form.file", limit, rt.settings.max_evidence_pixels)
    ev = write(request, lambda s: add_photo(s, rt, ticket_id, img, caption, principal))
    if ev is None:
        raise ApiError(500, "photo not stored")
    return {"evidence_id": ev.id, "url": f"/api/v1/evidence/{ev.id}", "sha256": ev.sha256,
            "width": ev.width, "height": ev.height}
