"""GET /api/v1/evidence/{id}: evidence images, only for authorised roles and grids."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from dispatch.core.security import Principal
from dispatch.deps import get_runtime, get_session, require_roles
from dispatch.errors import ApiError
from dispatch.models import Evidence, Ticket
from dispatch.schemas import IdPath
from dispatch.service import Runtime

router = APIRouter(prefix="/api/v1", tags=["evidence"])
EVIDENCE_ROLES = ("operator", "dispatcher", "department", "grid_worker")


@router.get("/evidence/{evidence_id}", response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}, 403: {}, 404: {}})
def evidence(evidence_id: IdPath, principal: Principal = Depends(require_roles(*EVIDENCE_ROLES)),
             session: Session = Depends(get_session), rt: Runtime = Depends(get_runtime)) -> FileResponse:
    """The image bytes. Viewers get 403; grid workers only for tickets in their grids."""
    ev = session.get(Evidence, evidence_id)
    t = session.get(Ticket, ev.ticket_id) if ev is not None and ev.ticket_id else None
    if ev is None or not principal.sees_grid(t.grid_id if t else None):  # one answer across grids
        raise ApiError(404, f"evidence_id: no evidence {evidence_id}", "path.evidence_id")
    path = Path(rt.settings.evidence_dir) / ev.path
    if not path.is_file():
        raise ApiError(404, f"evidence_id: file for evidence {evidence_id} is missing on disk", "path.evidence_id")
    return FileResponse(path, media_type=ev.content_type, headers={"Cache-Control": "private, max-age=3600"})
