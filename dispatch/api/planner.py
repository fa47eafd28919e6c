"""The 飞手's planning API behind ``/planner``: upload grids / no-fly zones, plan, export.

Thin: every step is a call into ``geo`` (import and CRS resolution in :mod:`geo.grids`,
planning in :mod:`geo.planner`, files in :mod:`geo.outputs` / :mod:`geo.export_dji`).
Planning is CPU work (tens of ms to seconds), so it runs in the thread pool. Saving the
plan for the command room is the existing ``PUT /api/v1/plan``.
"""

from __future__ import annotations

import base64
import binascii
import warnings
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from dispatch.core.security import Principal
from dispatch.deps import require_roles
from dispatch.errors import ApiError
from geo.zh import zh_message

router = APIRouter(prefix="/api/v1/planner", tags=["planner"])
operator = require_roles("operator")
CrsName = Literal["wgs84", "gcj02", "bd09"]


class UploadIn(BaseModel):
    filename: str = Field(..., max_length=200, description="original file name; its suffix gives the format")
    data_b64: str = Field(..., description="the file's bytes, base64")
    crs: CrsName | None = Field(None, description="datum of the file; None: the file's own declaration")
    kind: Literal["grid", "zone"] = "grid"
    skip_bad: bool = False


class PlanIn(BaseModel):
    grids: dict[str, Any] = Field(..., description="GeoJSON FeatureCollection of the grids to fly, WGS-84")
    no_fly: dict[str, Any] | None = Field(None, description="GeoJSON FeatureCollection of no-fly zones, WGS-84")
    camera: str = "m3e"
    altitude_m: float | None = Field(None, gt=0, le=1000)
    gsd_cm: float | None = Field(None, gt=0, le=100)
    drones: int = Field(1, ge=1, le=20)
    speed_m_s: float = Field(10.0, gt=0, le=20)
    side_overlap: float = Field(0.2, ge=0, lt=1)
    front_overlap: float = Field(0.6, ge=0, lt=1)
    endurance_min: float = Field(35.0, gt=0, le=120)
    home: list[float] | None = Field(None, min_length=2, max_length=3, description="[lat, lon(, alt AMSL m)]")
    home_crs: CrsName = Field("wgs84", description="datum of home (the page's map datum)")


def _warned(fn, *args, **kwargs) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in caught]


@router.post("/upload", summary="Grids or no-fly zones from a file (GeoJSON, KML/KMZ, zipped shapefile)")
async def upload(body: UploadIn, _p: Principal = Depends(operator)) -> dict[str, Any]:
    from geo.grids import GridImportError, geojson_features, load_upload

    try:
        data = base64.b64decode(body.data_b64, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "data_b64: not valid base64", "body.data_b64", zh="文件内容不是有效的 base64 编码") from None
    try:
        (items, crs), warns = await run_in_threadpool(_warned, load_upload, body.filename, data, body.crs,
                                                     body.kind, body.skip_bad)
    except GridImportError as e:
        raise ApiError(422, str(e), "body.crs" if "coordinate system" in str(e) else "body.data_b64",
                       zh=zh_message(str(e))) from None
    return {"crs": crs, "warnings": warns, "warnings_zh": [zh_message(w) for w in warns], **geojson_features(items)}


def _plan(body: PlanIn) -> tuple[Any, list[str]]:
    from geo.camera import get_camera
    from geo.crs import to_wgs84
    from geo.grids import from_geojson
    from geo.planner import default_home, plan_patrol

    grids = from_geojson(body.grids, "grid")
    zones = from_geojson(body.no_fly, "zone") if body.no_fly and body.no_fly.get("features") else []
    if body.home:
        lon, lat = to_wgs84(body.home[1], body.home[0], body.home_crs)
        home = (float(lat), float(lon), float(body.home[2]) if len(body.home) > 2 else 0.0)
    else:
        home = (*default_home(grids, zones), 0.0)
    return plan_patrol(grids, home=home, camera=get_camera(body.camera), altitude_m=body.altitude_m,
                       gsd_cm=body.gsd_cm, speed_m_s=body.speed_m_s, side_overlap=body.side_overlap,
                       front_overlap=body.front_overlap, drones=body.drones, no_fly=zones,
                       endurance_s=body.endurance_min * 60.0, source="planner")


@router.post("/plan", summary="Plan routes, sorties and footprints for a preview (nothing is stored)")
async def plan(body: PlanIn, _p: Principal = Depends(operator)) -> dict[str, Any]:
    from geo.grids import GridImportError
    from geo.outputs import plan_features
    from geo.planner import PlanningError

    try:
        p, warns = await run_in_threadpool(_warned, _plan, body)
    except (GridImportError, PlanningError, KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise ApiError(422, msg, "body", zh=zh_message(msg)) from None
    makespan = max((sum(s.duration_s for s in p.sorties_for(d)) for d in range(p.drones)), default=0.0)
    summary = {"grids": len(p.grids), "sorties": len(p.sorties), "drones": p.drones,
               "km": round(sum(s.distance_m for s in p.sorties) / 1000, 2),
               "minutes": round(sum(s.duration_s for s in p.sorties) / 60, 1),
               "longest_drone_minutes": round(makespan / 60, 1), "altitude_m": p.altitude_m, "gsd_cm": p.gsd_cm}
    feats = await run_in_threadpool(plan_features, p)
    return {"plan": p.to_dict(), "summary": summary, "warnings": warns, "warnings_zh": [zh_message(w) for w in warns],
            "preview": {"type": "FeatureCollection", "features": feats}}


@router.post("/export/{fmt}", summary="A plan as plan JSON, QGC .plan, KML or DJI route KMZ (file download)")
async def export(fmt: Literal["json", "qgc", "kml", "dji"], body: dict[str, Any],
                 _p: Principal = Depends(operator)) -> Response:
    from geo.export_dji import DjiExportError
    from geo.outputs import export_bytes
    from geo.plan_schema import Plan, PlanFormatError

    try:
        p = Plan.from_dict(body, source="body")
        name, media, data = await run_in_threadpool(export_bytes, p, fmt)
    except (PlanFormatError, DjiExportError, ValueError) as e:
        raise ApiError(422, str(e), "body", zh=zh_message(str(e))) from None
    return Response(data, media_type=media,
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})
