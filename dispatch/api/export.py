"""Ticket export for the county office: CSV (UTF-8 with BOM, so Excel reads the Chinese)
and a real Excel workbook (.xlsx, written with openpyxl), with Chinese column headers and
times in Beijing time (UTC+8). Filters as for ``GET /api/v1/tickets``."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy.orm import Session

from dispatch.api.common import AUTH_ERRORS
from dispatch.api.tickets import ticket_filter
from dispatch.core.security import Principal
from dispatch.deps import current_principal, get_runtime, get_session
from dispatch.models import Ticket
from dispatch.queries import TicketFilter, search_tickets
from dispatch.service import Runtime

router = APIRouter(prefix="/api/v1", tags=["export"])
BEIJING = timezone(timedelta(hours=8), "UTC+8")
MAX_ROWS = 50_000  # one export; a county's year of tickets fits, a runaway query does not


def _time(d: datetime | None) -> str:
    return d.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S") if d else ""


def export_columns(rt: Runtime) -> list[tuple[str, Callable[[Ticket], Any]]]:
    """(Chinese header, value of a ticket) for every exported column, in order."""
    wf, spec = rt.workflow, rt.routing.spec
    depts = rt.routing.departments
    tiers = {"village": "村级", "town": "镇街", "district": "区级"}

    def dept(d: str | None) -> str:
        return depts[d].name if d and d in depts else (d or "")

    def grid_name(t: Ticket) -> str:
        info = rt.grids.info.get(t.grid_id)
        return info.name if info else ""

    return [
        ("工单号", lambda t: t.id),
        ("类别", lambda t: spec.classes[t.class_name].label if t.class_name in spec.classes else t.class_name),
        ("优先级", lambda t: f"P{t.priority}"),
        ("状态", lambda t: wf.states[t.status].label if t.status in wf.states else t.status),
        ("层级", lambda t: tiers.get(t.tier, t.tier)),
        ("网格编号", lambda t: t.grid_id),
        ("网格名称", grid_name),
        ("牵头部门", lambda t: dept(t.lead_department)),
        ("协同部门", lambda t: "、".join(dept(d) for d in (t.co_departments or []))),
        ("承办部门", lambda t: dept(t.assigned_department)),
        ("承办人", lambda t: t.assignee or ""),
        ("办理时限(UTC+8)", lambda t: _time(t.assigned_due_at)),
        ("处置要求", lambda t: t.instructions or ""),
        ("发现次数", lambda t: t.incident_count),
        ("最高置信度", lambda t: round(t.max_confidence, 3)),
        ("纬度(WGS-84)", lambda t: round(t.lat, 7)),
        ("经度(WGS-84)", lambda t: round(t.lon, 7)),
        ("定位误差(米)", lambda t: round(t.error_m, 1)),
        ("创建时间(UTC+8)", lambda t: _time(t.created_at)),
        ("办结时间(UTC+8)", lambda t: _time(t.closed_at)),
        ("是否超时", lambda t: "是" if t.overdue else "否"),
        ("升级次数", lambda t: t.escalations),
        ("考核得分", lambda t: "" if t.score is None else t.score),
        ("重复于工单", lambda t: t.duplicate_of or ""),
    ]


def tickets_csv(rt: Runtime, rows: list[Ticket]) -> bytes:
    """The tickets as CSV bytes (UTF-8 with BOM, CRLF rows)."""
    cols = export_columns(rt)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([h for h, _ in cols])
    for t in rows:
        w.writerow([fn(t) for _, fn in cols])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def tickets_xlsx(rt: Runtime, rows: list[Ticket]) -> bytes:
    """The tickets as an .xlsx workbook (one sheet 工单, frozen bold header, sized columns)."""
    from openpyxl import Workbook  # only the export needs it
    from openpyxl.styles import Font

    cols = export_columns(rt)
    wb = Workbook()
    ws = wb.active
    ws.title = "工单"
    ws.append([h for h, _ in cols])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for t in rows:
        ws.append([fn(t) for _, fn in cols])
    ws.freeze_panes = "A2"
    for i, (h, _) in enumerate(cols, start=1):
        ws.column_dimensions[ws.cell(1, i).column_letter].width = max(8, min(40, 2 * len(h) + 2))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


@router.get("/export/tickets", response_class=Response, responses={
    200: {"content": {"text/csv": {}, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}},
    **AUTH_ERRORS})
def export_tickets(format: str = Query("csv", pattern="^(csv|xlsx)$", description="csv or xlsx"),
                   order: str = Query("priority", pattern="^(newest|priority)$"),
                   f: TicketFilter = Depends(ticket_filter), principal: Principal = Depends(current_principal),
                   session: Session = Depends(get_session), rt: Runtime = Depends(get_runtime)) -> Response:
    """Every ticket matching the filters (at most 50,000), as a download."""
    rows, _ = search_tickets(session, f, principal, MAX_ROWS, 0, with_total=False, order=order)
    stamp = rt.clock.now().astimezone(BEIJING).strftime("%Y%m%d-%H%M")
    if format == "xlsx":
        body, ctype = tickets_xlsx(rt, rows), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        body, ctype = tickets_csv(rt, rows), "text/csv; charset=utf-8"
    return Response(body, media_type=ctype, headers={
        "Content-Disposition": f'attachment; filename="skygrid-tickets-{stamp}.{format}"',
        "Cache-Control": "no-store"})
