"""GET /api/v1/stats: figures for assessment (考核)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from dispatch.api.tickets import ticket_filter
from dispatch.core.security import Principal
from dispatch.deps import current_principal, get_session
from dispatch.queries import TicketFilter, assessment_stats

router = APIRouter(prefix="/api/v1", tags=["stats"])


@router.get("/stats")
def stats(group_by: str = Query("grid", pattern="^(grid|department|class|tier)$"),
          f: TicketFilter = Depends(ticket_filter), principal: Principal = Depends(current_principal),
          session: Session = Depends(get_session)) -> dict:
    """Per grid / lead department / class / tier and in total: tickets by status, overdue and
    escalated counts, and per stage (sign, dispatch, on_site, handle, supervise) the number
    completed, the on-time rate against the SLA clock and the median seconds spent.
    Filters as for ``GET /api/v1/tickets`` (``since``/``until`` on creation time)."""
    return assessment_stats(session, principal, group_by, f)
