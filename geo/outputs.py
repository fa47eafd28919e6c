"""Plan writers: QGroundControl ``.plan``, KML and GeoJSON of routes and camera footprints.

All read only the plan JSON (:class:`geo.plan_schema.Plan`), so a saved plan can be
exported again later. Footprints are recomputed from the plan's camera and altitude: each
survey line images a strip one footprint wide, from half a footprint before its start to
half a footprint after its end.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import LineString, Polygon

from geo.camera import CameraModel
from geo.plan_schema import Plan, Sortie
from geo.projection import LocalFrame

# MAVLink command ids used in the QGC mission
MAV_CMD_NAV_WAYPOINT = 16
MAV_CMD_NAV_RETURN_TO_LAUNCH = 20
MAV_CMD_NAV_TAKEOFF = 22
MAV_CMD_DO_CHANGE_SPEED = 178
MAV_CMD_DO_SET_CAM_TRIGG_DIST = 206
#: gimbal protocol v2 (the current MAVLink gimbal commands; DO_MOUNT_CONTROL 205 is deprecated)
MAV_CMD_DO_GIMBAL_MANAGER_PITCHYAW = 1000
MAV_CMD_DO_GIMBAL_MANAGER_CONFIGURE = 1001
MAV_FRAME_MISSION = 2
MAV_FRAME_GLOBAL_RELATIVE_ALT = 3
#: QGroundControl's firmware/vehicle enums: PX4, quadrotor
QGC_FIRMWARE_PX4 = 12
QGC_VEHICLE_QUADROTOR = 2
#: metres the per-sortie inclusion fence extends beyond the hull of its grids, home and waypoints
QGC_FENCE_BUFFER_M = 50.0


def _ring_lonlat_to_local(ring, frame: LocalFrame) -> np.ndarray:
    a = np.asarray(ring, dtype=np.float64)
    e, n = frame.to_local(a[:, 0], a[:, 1])
    return np.column_stack([e, n])


def _local_to_lonlat(coords, frame: LocalFrame) -> list[list[float]]:
    a = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    lon, lat = frame.to_wgs84(a[:, 0], a[:, 1])
    return [[round(float(x), 8), round(float(y), 8)] for x, y in zip(np.atleast_1d(lon), np.atleast_1d(lat), strict=True)]


def no_fly_rings_buffered(plan: Plan) -> list[tuple[str, str, list[list[float]]]]:
    """(zone id, name, exterior ring [lon, lat]) of each part of each no-fly zone grown by its buffer.

    A multi-part zone gives one entry per part, so no output drops a part.
    """
    frame = LocalFrame(plan.home.lat, plan.home.lon)
    out = []
    for z in plan.no_fly:
        for rings in z.all_parts():
            poly = Polygon(_ring_lonlat_to_local(rings[0], frame), [_ring_lonlat_to_local(r, frame) for r in rings[1:]])
            if z.buffer_m > 0:
                poly = poly.buffer(z.buffer_m, quad_segs=4)
            out.append((z.id, z.name, _local_to_lonlat(poly.exterior.coords, frame)))
    return out


def sortie_fence_ring(plan: Plan, sortie: Sortie, buffer_m: float = QGC_FENCE_BUFFER_M) -> list[list[float]]:
    """Inclusion fence of one sortie: the convex hull of its grids (every part), the home and
    its waypoints, grown by ``buffer_m`` metres; an exterior ring of [lon, lat]."""
    from shapely.geometry import MultiPoint

    frame = LocalFrame(plan.home.lat, plan.home.lon)
    pts = [np.zeros((1, 2))]
    ids = set(sortie.grid_ids)
    for g in plan.grids:
        if g.id in ids:
            pts += [_ring_lonlat_to_local(rings[0], frame) for rings in g.all_parts()]
    if sortie.waypoints:
        pts.append(_ring_lonlat_to_local([[w.lon, w.lat] for w in sortie.waypoints], frame))
    hull = MultiPoint(np.vstack(pts)).convex_hull.buffer(buffer_m, quad_segs=4)
    return _local_to_lonlat(hull.exterior.coords, frame)


def footprints(plan: Plan) -> list[dict[str, Any]]:
    """Imaged strips, one per survey line: dicts with sortie_id, drone, grid_id and a WGS-84 ``ring``."""
    frame = LocalFrame(plan.home.lat, plan.home.lon)
    cam = CameraModel.from_dict(plan.camera)
    w, h = cam.footprint_m(plan.altitude_m)
    out = []
    for s in plan.sorties:
        start = None
        for wp in s.waypoints:
            if wp.kind == "line_start":
                start = wp
            elif wp.kind == "line_end" and start is not None:
                e, n = frame.to_local(np.array([start.lon, wp.lon]), np.array([start.lat, wp.lat]))
                p0, p1 = np.array([e[0], n[0]]), np.array([e[1], n[1]])
                d = p1 - p0
                ln = float(np.hypot(*d))
                u = d / ln if ln > 1e-9 else np.array([1.0, 0.0])
                strip = LineString([p0 - u * h / 2, p1 + u * h / 2]).buffer(w / 2, cap_style="flat")
                out.append({"sortie_id": s.id, "drone": s.drone, "grid_id": wp.grid_id,
                            "ring": _local_to_lonlat(strip.exterior.coords, frame)})
                start = None
    return out


# --------------------------------------------------------------------------------------
# QGroundControl


def _item(seq: int, command: int, frame: int, params: list, alt: float | None = None) -> dict[str, Any]:
    it: dict[str, Any] = {
        "type": "SimpleItem",
        "autoContinue": True,
        "command": command,
        "doJumpId": seq,
        "frame": frame,
        "params": [None if isinstance(p, float) and math.isnan(p) else p for p in params],
    }
    if alt is not None:
        it.update({"AMSLAltAboveTerrain": None, "Altitude": alt, "AltitudeMode": 1})
    return it


def qgc_mission(plan: Plan, sortie: Sortie) -> dict[str, Any]:
    """The QGC ``.plan`` document (dict) for one sortie.

    Mission: take-off, speed, gimbal nadir by the gimbal-manager commands (configure 1001,
    pitch/yaw 1000), the waypoints with distance triggering per survey line, RTL. Geofence:
    one inclusion polygon around the sortie's grids (:func:`sortie_fence_ring`) and one
    exclusion polygon per buffered no-fly zone part.
    """
    items: list[dict[str, Any]] = []

    def add(command: int, frame: int, params: list, alt: float | None = None) -> None:
        items.append(_item(len(items) + 1, command, frame, params, alt))

    alt = plan.altitude_m
    home = plan.home
    first = sortie.waypoints[0] if sortie.waypoints else None
    add(MAV_CMD_NAV_TAKEOFF, MAV_FRAME_GLOBAL_RELATIVE_ALT,
        [0, 0, 0, math.nan, home.lat, home.lon, first.rel_alt_m if first else alt], first.rel_alt_m if first else alt)
    add(MAV_CMD_DO_CHANGE_SPEED, MAV_FRAME_MISSION, [1, plan.speed_m_s, -1, 0, 0, 0, 0])
    # take gimbal control (sysid/compid -2: the mission itself), then point it straight down
    add(MAV_CMD_DO_GIMBAL_MANAGER_CONFIGURE, MAV_FRAME_MISSION, [-2, -2, -1, -1, 0, 0, 0])
    add(MAV_CMD_DO_GIMBAL_MANAGER_PITCHYAW, MAV_FRAME_MISSION, [-90.0, 0.0, math.nan, math.nan, 0, 0, 0])
    for wp in sortie.waypoints:
        add(MAV_CMD_NAV_WAYPOINT, MAV_FRAME_GLOBAL_RELATIVE_ALT, [0, 0, 0, math.nan, wp.lat, wp.lon, wp.rel_alt_m],
            wp.rel_alt_m)
        if wp.camera == "start_distance":
            add(MAV_CMD_DO_SET_CAM_TRIGG_DIST, MAV_FRAME_MISSION, [wp.trigger_distance_m or plan.trigger_distance_m, 0, 1, 0, 0, 0, 0])
        elif wp.camera == "stop_distance":
            # distance 0 stops triggering; param3 = 1 takes a last photo at the line end (lines
            # are trimmed to half a footprint inside the grid, so the end photo matters)
            add(MAV_CMD_DO_SET_CAM_TRIGG_DIST, MAV_FRAME_MISSION, [0, 0, 1, 0, 0, 0, 0])
    add(MAV_CMD_NAV_RETURN_TO_LAUNCH, MAV_FRAME_MISSION, [0, 0, 0, 0, 0, 0, 0])
    fence = [{"inclusion": True, "polygon": [[lat, lon] for lon, lat in sortie_fence_ring(plan, sortie)[:-1]],
              "version": 1}]
    fence += [
        {"inclusion": False, "polygon": [[lat, lon] for lon, lat in ring[:-1]], "version": 1}
        for _, _, ring in no_fly_rings_buffered(plan)
    ]
    return {
        "fileType": "Plan",
        "version": 1,
        "groundStation": "SkyGrid",
        "mission": {
            "version": 2,
            "firmwareType": QGC_FIRMWARE_PX4,
            "vehicleType": QGC_VEHICLE_QUADROTOR,
            "cruiseSpeed": plan.speed_m_s,
            "hoverSpeed": plan.speed_m_s,
            "globalPlanAltitudeMode": 1,
            "plannedHomePosition": [home.lat, home.lon, home.alt_amsl_m],
            "items": items,
        },
        "geoFence": {"version": 2, "polygons": fence, "circles": []},
        "rallyPoints": {"version": 2, "points": []},
    }


def per_sortie_paths(plan: Plan, path: str | Path) -> list[tuple[Sortie, Path]]:
    """Where each sortie's file goes: ``<stem>.<sortie id><suffix>`` next to ``path``
    (e.g. ``out.d0-s1.plan``), or ``path`` itself when the plan has a single sortie."""
    p = Path(path)
    if len(plan.sorties) == 1:
        return [(plan.sorties[0], p)]
    return [(s, p.with_name(f"{p.stem}.{s.id}{p.suffix}")) for s in plan.sorties]


def write_qgc_plan(plan: Plan, path: str | Path) -> list[Path]:
    """Write QGroundControl ``.plan`` files; QGC holds one mission per file.

    The named ``path`` always exists: with one sortie it is that sortie; with several it
    holds the first sortie (d0-s1) and every sortie is also written to
    ``<stem>.<sortie id>.plan`` (:func:`per_sortie_paths`). Returns the paths written,
    ``path`` first.
    """
    p = Path(path)
    if not plan.sorties:
        raise ValueError("the plan has no sorties: nothing to write for QGroundControl")

    def dump(s: Sortie, target: Path) -> Path:
        target.write_text(json.dumps(qgc_mission(plan, s), indent=1, ensure_ascii=False), encoding="utf-8")
        return target

    written = [dump(plan.sorties[0], p)]
    if len(plan.sorties) > 1:
        written += [dump(s, t) for s, t in per_sortie_paths(plan, p)]
    return written


# --------------------------------------------------------------------------------------
# GeoJSON and KML


def plan_features(plan: Plan) -> list[dict[str, Any]]:
    """GeoJSON features: home, grids, buffered no-fly zones, one route per sortie, footprints."""
    feats: list[dict[str, Any]] = [{
        "type": "Feature", "properties": {"kind": "home", "alt_amsl_m": plan.home.alt_amsl_m},
        "geometry": {"type": "Point", "coordinates": [plan.home.lon, plan.home.lat]},
    }]
    for g in plan.grids:
        feats.append({"type": "Feature",
                      "properties": {"kind": "grid", "grid_id": g.id, "name": g.name, "area_m2": g.area_m2,
                                     "coverage_ratio": g.coverage_ratio, **{f"p_{k}": v for k, v in g.properties.items()}},
                      "geometry": _polygon_geometry(g.all_parts())})
    for zid, name, ring in no_fly_rings_buffered(plan):
        feats.append({"type": "Feature", "properties": {"kind": "no_fly", "zone_id": zid, "name": name},
                      "geometry": {"type": "Polygon", "coordinates": [ring]}})
    for s in plan.sorties:
        coords = [[plan.home.lon, plan.home.lat]] + [[w.lon, w.lat] for w in s.waypoints]
        feats.append({"type": "Feature",
                      "properties": {"kind": "route", "sortie_id": s.id, "drone": s.drone, "grid_ids": s.grid_ids,
                                     "distance_m": s.distance_m, "duration_s": s.duration_s,
                                     "altitude_m": plan.altitude_m},
                      "geometry": {"type": "LineString", "coordinates": coords}})
    for f in footprints(plan):
        feats.append({"type": "Feature",
                      "properties": {"kind": "footprint", "sortie_id": f["sortie_id"], "drone": f["drone"],
                                     "grid_id": f["grid_id"]},
                      "geometry": {"type": "Polygon", "coordinates": [f["ring"]]}})
    return feats


def _polygon_geometry(parts: list) -> dict[str, Any]:
    """GeoJSON Polygon for one part, MultiPolygon for several (no part is dropped)."""
    if len(parts) == 1:
        return {"type": "Polygon", "coordinates": parts[0]}
    return {"type": "MultiPolygon", "coordinates": parts}


def write_geojson(plan: Plan, path: str | Path) -> Path:
    """GeoJSON FeatureCollection (WGS-84) of home, grids, no-fly zones, routes and footprints."""
    p = Path(path)
    fc = {"type": "FeatureCollection", "name": "SkyGrid plan", "features": plan_features(plan)}
    p.write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    return p


def write_kml(plan: Plan, path: str | Path) -> Path:
    """KML with folders Grids, No-fly zones, Routes (3D, relative to ground) and Footprints."""
    from lxml import etree

    ns = "http://www.opengis.net/kml/2.2"
    E = lambda tag, text=None, **attrs: _el(etree, ns, tag, text, **attrs)  # noqa: E731
    kml = E("kml")
    doc = etree.SubElement(kml, f"{{{ns}}}Document")
    doc.append(E("name", "SkyGrid plan"))
    for sid, color in (("grid", "7f00ff00"), ("nofly", "7f0000ff"), ("route", "ff00ffff"), ("foot", "3fff8000")):
        st = E("Style", id=sid)
        ls = E("LineStyle")
        ls.append(E("color", color))
        ls.append(E("width", "2"))
        ps = E("PolyStyle")
        ps.append(E("color", color))
        ps.append(E("fill", "0" if sid == "grid" else "1"))
        st.extend([ls, ps])
        doc.append(st)

    def folder(name: str):
        f = E("Folder")
        f.append(E("name", name))
        doc.append(f)
        return f

    def polygon_pm(parent, name: str, style: str, rings, desc: str = "", parts=None) -> None:
        """A polygon Placemark; ``parts`` (several [exterior, holes...]) become a MultiGeometry."""
        pm = E("Placemark")
        pm.append(E("name", name))
        if desc:
            pm.append(E("description", desc))
        pm.append(E("styleUrl", f"#{style}"))
        polys = []
        for part in parts or [rings]:
            pg = E("Polygon")
            for i, ring in enumerate(part):
                b = E("outerBoundaryIs" if i == 0 else "innerBoundaryIs")
                lr = E("LinearRing")
                lr.append(E("coordinates", " ".join(f"{x},{y}" for x, y in ring)))
                b.append(lr)
                pg.append(b)
            polys.append(pg)
        if len(polys) == 1:
            pm.append(polys[0])
        else:
            mg = E("MultiGeometry")
            mg.extend(polys)
            pm.append(mg)
        parent.append(pm)

    fg = folder("Grids")
    for g in plan.grids:
        polygon_pm(fg, f"{g.id} {g.name}", "grid", g.rings, f"coverage {g.coverage_ratio:.1%}, {g.area_m2 / 1e4:.1f} ha",
                   parts=g.all_parts())
    fz = folder("No-fly zones (buffered)")
    for zid, name, ring in no_fly_rings_buffered(plan):
        polygon_pm(fz, f"{zid} {name}", "nofly", [ring])
    fr = folder("Routes")
    for s in plan.sorties:
        pm = E("Placemark")
        pm.append(E("name", s.id))
        pm.append(E("description", f"drone d{s.drone}, {s.distance_m / 1000:.2f} km, {s.duration_s / 60:.1f} min, "
                                   f"grids {', '.join(s.grid_ids)}"))
        pm.append(E("styleUrl", "#route"))
        ls = E("LineString")
        ls.append(E("altitudeMode", "relativeToGround"))
        pts = [(plan.home.lon, plan.home.lat, 0.0)] + [(w.lon, w.lat, w.rel_alt_m) for w in s.waypoints]
        ls.append(E("coordinates", " ".join(f"{x},{y},{z}" for x, y, z in pts)))
        pm.append(ls)
        fr.append(pm)
    ff = folder("Footprints")
    for f in footprints(plan):
        polygon_pm(ff, f"{f['sortie_id']} {f['grid_id']}", "foot", [f["ring"]])
    p = Path(path)
    p.write_bytes(etree.tostring(kml, xml_declaration=True, encoding="UTF-8", pretty_print=True))
    return p


def _el(etree, ns: str, tag: str, text=None, **attrs):
    el = etree.Element(f"{{{ns}}}{tag}", nsmap={None: ns}, **attrs)
    if text is not None:
        el.text = str(text)
    return el


def route_lines_local(plan: Plan) -> dict[str, LineString]:
    """Each sortie's flown path (home -> waypoints) in the plan's local metres, for checks."""
    frame = LocalFrame(plan.home.lat, plan.home.lon)
    out = {}
    for s in plan.sorties:
        lon = np.array([plan.home.lon] + [w.lon for w in s.waypoints])
        lat = np.array([plan.home.lat] + [w.lat for w in s.waypoints])
        e, n = frame.to_local(lon, lat)
        out[s.id] = LineString(np.column_stack([e, n]))
    return out


__all__ = ["write_qgc_plan", "per_sortie_paths", "export_bytes", "EXPORT_FORMATS", "sortie_fence_ring", "write_kml", "write_geojson", "qgc_mission", "footprints", "plan_features",
           "no_fly_rings_buffered", "route_lines_local"]


#: planner downloads: format -> (file suffix, media type)
EXPORT_FORMATS = {
    "json": (".json", "application/json"),
    "qgc": (".plan", "application/json"),
    "kml": (".kml", "application/vnd.google-earth.kml+xml"),
    "dji": (".kmz", "application/vnd.google-earth.kmz"),
}


def export_bytes(plan: Plan, fmt: str, stem: str = "skygrid-plan") -> tuple[str, str, bytes]:
    """(file name, media type, bytes) of ``plan`` as plan JSON, QGC ``.plan``, KML or DJI KMZ.

    QGC and DJI hold one flight per file: a plan of several sorties comes as a zip of one
    file per sortie (``<stem>.<sortie id>.plan`` / ``.kmz``), as the CLI writes them.
    """
    import io
    import tempfile
    import zipfile

    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    suffix, media = EXPORT_FORMATS[fmt]
    if fmt == "json":
        return stem + suffix, media, json.dumps(plan.to_dict(), ensure_ascii=False, indent=1).encode("utf-8")
    with tempfile.TemporaryDirectory(prefix="skygrid-export-") as tmp:
        target = Path(tmp) / (stem + suffix)
        if fmt == "kml":
            return target.name, media, write_kml(plan, target).read_bytes()
        if fmt == "qgc":
            paths = write_qgc_plan(plan, target)
        else:
            from geo.export_dji import write_dji_kmz

            paths = write_dji_kmz(plan, target)
        if len(paths) == 1:
            return target.name, media, paths[0].read_bytes()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for p in paths[1:]:  # one file per sortie (paths[0] repeats the first)
                z.write(p, p.name)
        return f"{stem}-{fmt}.zip", "application/zip", buf.getvalue()
