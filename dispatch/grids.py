"""Point-in-polygon lookup of grids and their workers, and syncing them into the store.

Grids come from :func:`geo.grids.load_grids` (WGS-84 shapely polygons). A worker's id is
derived from the phone number (``w-<phone>``) so one worker covering several grids is one
record; without a phone, from the grid (``w-<grid id>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shapely import STRtree
from shapely.geometry import Point
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.models import Grid as GridRow
from dispatch.models import GridWorker


@dataclass(frozen=True)
class GridInfo:
    """The parts of a grid the tickets need."""

    id: str
    name: str
    area_type: str
    worker_id: str | None
    worker_name: str | None
    worker_phone: str | None
    township: str | None
    village: str | None


def worker_id_for(grid_id: str, props: dict[str, Any]) -> str | None:
    if not props.get("grid_worker"):
        return None
    phone = str(props.get("grid_worker_phone") or "").strip()
    return f"w-{phone}" if phone else f"w-{grid_id}"


def _info(g: Any) -> GridInfo:
    p = dict(g.properties or {})
    area = str(p.get("area_type") or "countryside")
    return GridInfo(
        id=g.id,
        name=g.name,
        area_type=area if area in ("town", "countryside") else "countryside",
        worker_id=worker_id_for(g.id, p),
        worker_name=p.get("grid_worker"),
        worker_phone=str(p["grid_worker_phone"]) if p.get("grid_worker_phone") else None,
        township=p.get("township"),
        village=p.get("village"),
    )


class GridIndex:
    """STRtree over grid polygons: which grid contains a WGS-84 point."""

    def __init__(self, grids: list[Any]) -> None:
        self.grids = list(grids)
        self.info = {g.id: _info(g) for g in self.grids}
        self._tree = STRtree([g.polygon for g in self.grids]) if self.grids else None

    def locate(self, lon: float, lat: float) -> GridInfo | None:
        """The grid containing (lon, lat), else None; on a shared border the first in file order."""
        if self._tree is None:
            return None
        hits = self._tree.query(Point(lon, lat), predicate="intersects")
        if len(hits) == 0:
            return None
        return self.info[self.grids[int(min(hits))].id]

    def locate_many(self, lons: list[float], lats: list[float]) -> list[GridInfo | None]:
        """Vectorised :meth:`locate` for many points (one STRtree query)."""
        out: list[GridInfo | None] = [None] * len(lons)
        if self._tree is None or not lons:
            return out
        import numpy as np
        import shapely

        pts = shapely.points(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        src, hit = self._tree.query(pts, predicate="intersects")
        best: dict[int, int] = {}
        for i, g in zip(src.tolist(), hit.tolist(), strict=True):
            if i not in best or g < best[i]:
                best[i] = g
        for i, g in best.items():
            out[i] = self.info[self.grids[g].id]
        return out

    def __len__(self) -> int:
        return len(self.grids)


def load_grid_index(path: str | None, crs: str | None) -> GridIndex:
    """Load grids from a county file (GeoJSON/KML/Shapefile); None -> no grids.

    ``crs`` (``Settings.grids_crs``, i.e. ``SKYGRID_GRIDS_CRS`` or ``serve --crs``) is resolved
    as `skygrid plan` does (:func:`geo.grids.resolve_crs`): the file's own declaration when
    no CRS is given, an error naming the file when neither says.
    """
    if not path:
        return GridIndex([])
    from geo.grids import load_grids, resolve_crs

    return GridIndex(load_grids(path, resolve_crs(path, crs)))


def sync_grids(session: Session, index: GridIndex) -> None:
    """Upsert grids and workers into the store so tickets, directory and stats can join them."""
    workers = {w.id: w for w in session.scalars(select(GridWorker))}
    rows = {r.id: r for r in session.scalars(select(GridRow))}
    for g in index.grids:
        info = index.info[g.id]
        if info.worker_id:
            w = workers.get(info.worker_id) or GridWorker(id=info.worker_id, name="")
            workers[w.id] = w
            w.name, w.phone = info.worker_name or "", info.worker_phone
            session.add(w)
    session.flush()
    for g in index.grids:
        info = index.info[g.id]
        row = rows.get(g.id) or GridRow(id=g.id)
        row.name = g.name
        row.township, row.village, row.area_type = info.township, info.village, info.area_type
        row.worker_id = info.worker_id
        row.polygon_wkt = g.polygon.wkt
        row.properties = {k: v for k, v in (g.properties or {}).items() if _jsonable(v)}
        session.add(row)


def _jsonable(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)
