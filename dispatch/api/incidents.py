"""POST /api/v1/incidents: ingest one incident (idempotent by external_id)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from dispatch.api.common import AUTH_ERRORS, write
from dispatch.core.security import Principal
from dispatch.deps import get_runtime, require_roles
from dispatch.errors import ApiError
from dispatch.evidence import check_image, decode_b64
from dispatch.schemas import ErrorOut, IncidentIn, IncidentOut
from dispatch.service import IncidentData, Runtime, ingest

router = APIRouter(prefix="/api/v1", tags=["incidents"])


def to_data(body: IncidentIn, rt: Runtime) -> IncidentData:
    """Validate the evidence image and build the service record."""
    img = None
    if body.evidence is not None:
        limit = rt.settings.max_evidence_bytes
        if len(body.evidence.data_b64) > (limit * 4) // 3 + 8:
            raise ApiError(413, f"evidence.data_b64: image larger than {limit} bytes", "body.evidence.data_b64")
        data = decode_b64(body.evidence.data_b64, "body.evidence.data_b64")
        img = check_image(data, body.evidence.content_type, "body.evidence.data_b64", limit)
    return IncidentData(
        external_id=body.external_id, source=body.source, class_name=body.class_name, lat=body.lat,
        lon=body.lon, error_m=body.error_m, confidence=body.confidence, observed_at=body.observed_at,
        drone_id=body.drone_id, sortie_id=body.sortie_id, frames_seen=body.frames_seen, evidence=img,
    )


@router.post(
    "/incidents", status_code=201, response_model=IncidentOut,
    responses={200: {"model": IncidentOut, "description": "already stored (same external_id)"},
               413: {"model": ErrorOut}, 415: {"model": ErrorOut}, 422: {"model": ErrorOut}, **AUTH_ERRORS},
    summary="Report an incident (drone detection or grid worker)",
)
def create_incident(
    body: IncidentIn,
    request: Request,
    response: Response,
    principal: Principal = Depends(require_roles("operator", "dispatcher", "grid_worker")),
    rt: Runtime = Depends(get_runtime),
) -> IncidentOut:
    """Store the incident and attach it to a ticket: an open ticket of the same class within
    ``group_radius_m`` and ``group_window_s``, else a new one routed by the rules. Resending
    the same ``external_id`` answers 200 with the same ids and ``created: false``. Grid
    workers may report (source ``worker``) only inside their grids."""
    if principal.role == "grid_worker" and body.source != "worker":
        raise ApiError(403, "source: grid workers report with source 'worker'", "body.source")
    data = to_data(body, rt)
    res = write(request, lambda s: ingest(s, rt, data, principal))
    if not res.created:
        response.status_code = 200
    return IncidentOut(incident_id=res.incident_id, ticket_id=res.ticket_id, created=res.created)
