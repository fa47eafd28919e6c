"""Grids, departments, workers, routing rules and the workflow definition (reads)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from shapely import wkt as shapely_wkt
from shapely.geometry import mapping
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.core.security import Principal
from dispatch.deps import current_principal, get_runtime, get_session
from dispatch.models import Department, Grid, GridWorker
from dispatch.service import Runtime

router = APIRouter(prefix="/api/v1", tags=["directory"])


@router.get("/grids")
def grids(format: str = Query("json", pattern="^(json|geojson)$", description="json list or GeoJSON"),
          principal: Principal = Depends(current_principal), session: Session = Depends(get_session)) -> dict:
    """Grids with their worker, area type and (geojson) WGS-84 polygon; grid workers see theirs."""
    rows = [g for g in session.scalars(select(Grid).order_by(Grid.id)) if principal.sees_grid(g.id)]
    items = [{"id": g.id, "name": g.name, "township": g.township, "village": g.village, "area_type": g.area_type,
              "worker_id": g.worker_id, "properties": g.properties} for g in rows]
    if format == "geojson":
        feats = [{"type": "Feature", "id": it["id"], "properties": it,
                  "geometry": mapping(shapely_wkt.loads(g.polygon_wkt))} for it, g in zip(items, rows, strict=True)]
        return {"type": "FeatureCollection", "features": feats}
    return {"items": items}


@router.get("/departments")
def departments(principal: Principal = Depends(current_principal), session: Session = Depends(get_session)) -> dict:
    """Departments with their inspection checklist items."""
    return {"items": [{"id": d.id, "name": d.name, "checklist": d.checklist}
                      for d in session.scalars(select(Department).order_by(Department.id))]}


@router.get("/workers")
def workers(principal: Principal = Depends(current_principal), session: Session = Depends(get_session)) -> dict:
    """Grid workers (网格员) with the grids they serve."""
    grids_of: dict[str, list[str]] = {}
    for gid, wid in session.execute(select(Grid.id, Grid.worker_id).order_by(Grid.id)):
        if wid and principal.sees_grid(gid):
            grids_of.setdefault(wid, []).append(gid)
    rows = session.scalars(select(GridWorker).order_by(GridWorker.id))
    return {"items": [{"id": w.id, "name": w.name, "phone": w.phone, "grid_ids": grids_of[w.id]}
                      for w in rows if w.id in grids_of]}


@router.get("/routing")
def routing(principal: Principal = Depends(current_principal), rt: Runtime = Depends(get_runtime)) -> dict:
    """The routing rules in force (class -> departments, priority, SLA seconds) and their source."""
    return {"source": rt.routing.source, **rt.routing.spec.model_dump()}


@router.get("/workflow")
def workflow(rt: Runtime = Depends(get_runtime)) -> dict:
    """The workflow states and actions (public: it is the process, not data)."""
    wf = rt.workflow
    return {
        "initial": wf.initial,
        "states": [{"id": s.id, "label": s.label, "stage": s.stage, "terminal": s.terminal} for s in wf.states.values()],
        "actions": [{"id": a.id, "label": a.label, "from": list(a.sources), "to": a.target, "roles": list(a.roles),
                     "requires": list(a.requires)}
                    for a in wf.actions.values()],
    }


@router.get("/me")
def me(principal: Principal = Depends(current_principal)) -> dict:
    """Who the token belongs to (role and grids), for pages."""
    return {"token_id": principal.token_id, "name": principal.name, "role": principal.role,
            "grid_ids": list(principal.grid_ids) if principal.grid_ids else None}
