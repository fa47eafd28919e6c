"""DJI route export: a plan sortie -> a KMZ in DJI's WPML format (DJI Pilot 2, FlightHub 2).

A WPML route is a zip holding ``wpmz/template.kml`` (the editable template) and
``wpmz/waylines.wpml`` (what the aircraft executes); both are KML 2.2 documents with DJI's
``wpml`` namespace (``http://www.dji.com/wpmz/1.0.2``), per DJI's Cloud API reference
("DJI WPML": template.kml, waylines.wpml, common elements). One KMZ holds one flight, so a
multi-sortie plan gives one KMZ per sortie (as QGC gives one ``.plan`` per sortie).

What is written, and why:

* ``missionConfig``: fly to the first point ``safely``, ``goHome`` at the end, on RC loss
  leave the route and go back (``executeLostAction`` / ``goBack``); take-off security
  height 20 m; transition speed = the plan's speed (DJI's range 1..15 m/s); RTH height =
  the survey altitude. ``droneInfo``/``payloadInfo`` carry DJI's enum values for the
  camera preset (:data:`DJI_MODELS`).
* Heights: the plan's altitudes are metres above the take-off point, so the template uses
  ``heightMode`` ``relativeToStartPoint`` and the waylines ``executeHeightMode``
  ``relativeToStartPoint`` with ``executeHeight`` = the waypoint's ``rel_alt_m``.
  Coordinates are WGS-84 (``coordinateMode`` WGS84), as in the plan.
* Camera: the gimbal is turned to -90° (nadir) at the first waypoint (``gimbalRotate``);
  each survey line (``line_start`` .. ``line_end``) gets an action group with a
  ``multipleDistance`` trigger at the line's trigger distance and a ``takePhoto`` action,
  the WPML equivalent of MAVLink's DO_SET_CAM_TRIGG_DIST; the line end gets one more photo.
* Waypoints stop at each point (``toPointAndStopWithDiscontinuityCurvature``) and fly
  straight along the line, heading along the route (``followWayline``).
"""

from __future__ import annotations

import io
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from geo.plan_schema import Plan, Sortie

KML_NS = "http://www.opengis.net/kml/2.2"
WPML_NS = "http://www.dji.com/wpmz/1.0.2"
#: DJI's speed range for autoFlightSpeed / waypointSpeed / globalTransitionalSpeed, m/s
DJI_SPEED_RANGE = (1.0, 15.0)
TAKEOFF_SECURITY_HEIGHT_M = 20.0


class DjiExportError(ValueError):
    """A plan that cannot become a DJI route (unsupported camera, empty sortie...)."""


@dataclass(frozen=True)
class DjiModel:
    """DJI enum values of an aircraft + camera pair (DJI Cloud API product enumeration)."""

    label: str
    drone_enum: int
    drone_sub_enum: int
    payload_enum: int
    payload_sub_enum: int | None
    #: which lens the photos are stored from (``imageFormat``/``payloadLensIndex``)
    lens: str = "wide"


#: camera preset (geo.camera.PRESETS) -> aircraft/payload enums. Values from DJI's WPML
#: common elements: droneEnumValue 77 = M3E/M3T/M3M (sub 0 = M3E), 67 = M30/M30T (sub 0 =
#: M30), 60 = M300 RTK; payloadEnumValue 66 = Mavic 3E camera, 52 = M30 camera, 50 =
#: Zenmuse P1 (its sub-type is not fixed by the reference, so it is left out).
DJI_MODELS: dict[str, DjiModel] = {
    "m3e": DjiModel("Mavic 3 Enterprise (M3E)", 77, 0, 66, 0),
    "m30-wide": DjiModel("Matrice 30 (M30)", 67, 0, 52, 0),
    "p1-35mm": DjiModel("Matrice 300 RTK + Zenmuse P1", 60, 0, 50, None),
}


def dji_model(camera_name: str) -> DjiModel:
    """The DJI enums for a camera preset; the error lists what DJI routes support."""
    base = camera_name.split("@", 1)[0]
    try:
        return DJI_MODELS[base]
    except KeyError:
        raise DjiExportError(
            f"camera {camera_name!r} has no DJI WPML route support (Pilot 2 / FlightHub 2 fly "
            f"{', '.join(m.label for m in DJI_MODELS.values())}); use one of {', '.join(DJI_MODELS)} "
            "or export QGC/KML instead") from None


def _speed(v: float) -> str:
    lo, hi = DJI_SPEED_RANGE
    return _num(min(hi, max(lo, float(v))))


def _num(v: float) -> str:
    """Numbers as DJI's samples write them: no trailing zeros, at most 8 decimals."""
    s = f"{float(v):.8f}".rstrip("0").rstrip(".")
    return s if s not in ("-0", "") else "0"


class _Doc:
    """Tiny builder for a KML + wpml element tree (lxml)."""

    def __init__(self) -> None:
        from lxml import etree

        self.etree = etree
        self.root = etree.Element(f"{{{KML_NS}}}kml", nsmap={None: KML_NS, "wpml": WPML_NS})
        self.document = self.kml(self.root, "Document")

    def kml(self, parent, tag: str, text: str | None = None):
        el = self.etree.SubElement(parent, f"{{{KML_NS}}}{tag}")
        if text is not None:
            el.text = text
        return el

    def w(self, parent, tag: str, text: object | None = None):
        el = self.etree.SubElement(parent, f"{{{WPML_NS}}}{tag}")
        if text is not None:
            el.text = text if isinstance(text, str) else _num(text) if isinstance(text, float) else str(text)
        return el

    def bytes(self) -> bytes:
        return self.etree.tostring(self.root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _mission_config(d: _Doc, plan: Plan, model: DjiModel) -> None:
    mc = d.w(d.document, "missionConfig")
    d.w(mc, "flyToWaylineMode", "safely")
    d.w(mc, "finishAction", "goHome")
    d.w(mc, "exitOnRCLost", "executeLostAction")
    d.w(mc, "executeRCLostAction", "goBack")
    d.w(mc, "takeOffSecurityHeight", TAKEOFF_SECURITY_HEIGHT_M)
    d.w(mc, "globalTransitionalSpeed", _speed(plan.speed_m_s))
    d.w(mc, "globalRTHHeight", float(plan.altitude_m))
    di = d.w(mc, "droneInfo")
    d.w(di, "droneEnumValue", model.drone_enum)
    d.w(di, "droneSubEnumValue", model.drone_sub_enum)
    pi = d.w(mc, "payloadInfo")
    d.w(pi, "payloadEnumValue", model.payload_enum)
    if model.payload_sub_enum is not None:
        d.w(pi, "payloadSubEnumValue", model.payload_sub_enum)
    d.w(pi, "payloadPositionIndex", 0)


def _line_groups(sortie: Sortie, trigger_default: float) -> list[tuple[int, int, float]]:
    """(start index, end index, trigger distance m) of each survey line in the sortie."""
    out = []
    start: tuple[int, float] | None = None
    for i, wp in enumerate(sortie.waypoints):
        if wp.camera == "start_distance" or wp.kind == "line_start":
            start = (i, float(wp.trigger_distance_m or trigger_default))
        elif (wp.camera == "stop_distance" or wp.kind == "line_end") and start is not None:
            out.append((start[0], i, start[1]))
            start = None
    return out


def _action_groups(d: _Doc, placemarks: list, sortie: Sortie, plan: Plan, model: DjiModel) -> int:
    """Gimbal nadir at waypoint 0, distance-triggered photos along every line; returns groups."""
    gid = 0

    def group(pm, start: int, end: int, trigger: str, param: float | None = None):
        nonlocal gid
        ag = d.w(pm, "actionGroup")
        d.w(ag, "actionGroupId", gid)
        d.w(ag, "actionGroupStartIndex", start)
        d.w(ag, "actionGroupEndIndex", end)
        d.w(ag, "actionGroupMode", "sequence")
        tr = d.w(ag, "actionTrigger")
        d.w(tr, "actionTriggerType", trigger)
        if param is not None:
            d.w(tr, "actionTriggerParam", float(param))
        gid += 1
        return ag

    def action(ag, aid: int, func: str):
        a = d.w(ag, "action")
        d.w(a, "actionId", aid)
        d.w(a, "actionActuatorFunc", func)
        return d.w(a, "actionActuatorFuncParam")

    def photo(ag, aid: int, suffix: str) -> None:
        p = action(ag, aid, "takePhoto")
        d.w(p, "payloadPositionIndex", 0)
        d.w(p, "fileSuffix", suffix)
        d.w(p, "payloadLensIndex", model.lens)
        d.w(p, "useGlobalPayloadLensIndex", 0)

    ag = group(placemarks[0], 0, 0, "reachPoint")
    p = action(ag, 0, "gimbalRotate")
    d.w(p, "gimbalHeadingYawBase", "north")
    d.w(p, "gimbalRotateMode", "absoluteAngle")
    d.w(p, "gimbalPitchRotateEnable", 1)
    d.w(p, "gimbalPitchRotateAngle", -90.0 if sortie.waypoints[0].gimbal_pitch_deg is None
        else float(sortie.waypoints[0].gimbal_pitch_deg))
    for name in ("gimbalRollRotateEnable", "gimbalRollRotateAngle", "gimbalYawRotateEnable",
                 "gimbalYawRotateAngle", "gimbalRotateTimeEnable", "gimbalRotateTime"):
        d.w(p, name, 0)
    d.w(p, "payloadPositionIndex", 0)
    for k, (start, end, trig) in enumerate(_line_groups(sortie, plan.trigger_distance_m), 1):
        ag = group(placemarks[start], start, end, "multipleDistance", trig)
        photo(ag, 0, f"{sortie.id}-L{k}")
        ag = group(placemarks[end], end, end, "reachPoint")  # the last photo at the line end
        photo(ag, 0, f"{sortie.id}-L{k}e")
    return gid


def template_kml(plan: Plan, sortie: Sortie, created_ms: int | None = None) -> bytes:
    """``wpmz/template.kml`` of one sortie: a ``waypoint`` template, heights above take-off."""
    model = dji_model(str(plan.camera.get("name", "")))
    if not sortie.waypoints:
        raise DjiExportError(f"sortie {sortie.id}: no waypoints to export")
    now = int(time.time() * 1000) if created_ms is None else created_ms
    d = _Doc()
    d.w(d.document, "author", "SkyGrid")
    d.w(d.document, "createTime", now)
    d.w(d.document, "updateTime", now)
    _mission_config(d, plan, model)
    f = d.kml(d.document, "Folder")
    d.w(f, "templateType", "waypoint")
    d.w(f, "templateId", 0)
    cs = d.w(f, "waylineCoordinateSysParam")
    d.w(cs, "coordinateMode", "WGS84")
    d.w(cs, "heightMode", "relativeToStartPoint")
    d.w(f, "autoFlightSpeed", _speed(plan.speed_m_s))
    d.w(f, "globalHeight", float(plan.altitude_m))
    d.w(f, "caliFlightEnable", 0)
    d.w(f, "gimbalPitchMode", "manual")
    hp = d.w(f, "globalWaypointHeadingParam")
    d.w(hp, "waypointHeadingMode", "followWayline")
    d.w(hp, "waypointHeadingAngle", 0)
    d.w(hp, "waypointPoiPoint", "0.000000,0.000000,0.000000")
    d.w(hp, "waypointHeadingPathMode", "followBadArc")
    d.w(f, "globalWaypointTurnMode", "toPointAndStopWithDiscontinuityCurvature")
    d.w(f, "globalUseStraightLine", 1)
    pms = []
    for i, wp in enumerate(sortie.waypoints):
        pm = d.kml(f, "Placemark")
        d.kml(d.kml(pm, "Point"), "coordinates", f"{_num(wp.lon)},{_num(wp.lat)}")
        d.w(pm, "index", i)
        d.w(pm, "ellipsoidHeight", float(wp.rel_alt_m))
        d.w(pm, "height", float(wp.rel_alt_m))
        d.w(pm, "useGlobalHeight", 1 if abs(wp.rel_alt_m - plan.altitude_m) < 1e-6 else 0)
        d.w(pm, "useGlobalSpeed", 1)
        d.w(pm, "useGlobalHeadingParam", 1)
        d.w(pm, "useGlobalTurnParam", 1)
        d.w(pm, "useStraightLine", 1)
        pms.append(pm)
    _action_groups(d, pms, sortie, plan, model)
    pp = d.w(f, "payloadParam")
    d.w(pp, "payloadPositionIndex", 0)
    d.w(pp, "imageFormat", model.lens)
    return d.bytes()


def waylines_wpml(plan: Plan, sortie: Sortie) -> bytes:
    """``wpmz/waylines.wpml`` of one sortie: the executable route (one Folder = one wayline)."""
    model = dji_model(str(plan.camera.get("name", "")))
    if not sortie.waypoints:
        raise DjiExportError(f"sortie {sortie.id}: no waypoints to export")
    d = _Doc()
    _mission_config(d, plan, model)
    f = d.kml(d.document, "Folder")
    d.w(f, "templateId", 0)
    d.w(f, "executeHeightMode", "relativeToStartPoint")
    d.w(f, "waylineId", 0)
    d.w(f, "distance", float(round(sortie.distance_m, 1)))
    d.w(f, "duration", float(round(sortie.duration_s, 1)))
    d.w(f, "autoFlightSpeed", _speed(plan.speed_m_s))
    pms = []
    for i, wp in enumerate(sortie.waypoints):
        pm = d.kml(f, "Placemark")
        d.kml(d.kml(pm, "Point"), "coordinates", f"{_num(wp.lon)},{_num(wp.lat)}")
        d.w(pm, "index", i)
        d.w(pm, "executeHeight", float(wp.rel_alt_m))
        d.w(pm, "waypointSpeed", _speed(wp.speed_m_s or plan.speed_m_s))
        hp = d.w(pm, "waypointHeadingParam")
        d.w(hp, "waypointHeadingMode", "followWayline")
        tp = d.w(pm, "waypointTurnParam")
        d.w(tp, "waypointTurnMode", "toPointAndStopWithDiscontinuityCurvature")
        d.w(tp, "waypointTurnDampingDist", 0)
        d.w(pm, "useStraightLine", 1)
        pms.append(pm)
    _action_groups(d, pms, sortie, plan, model)
    return d.bytes()


def dji_kmz_bytes(plan: Plan, sortie: Sortie, created_ms: int | None = None) -> bytes:
    """The KMZ (zip) of one sortie: ``wpmz/template.kml`` + ``wpmz/waylines.wpml``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("wpmz/template.kml", template_kml(plan, sortie, created_ms))
        z.writestr("wpmz/waylines.wpml", waylines_wpml(plan, sortie))
    return buf.getvalue()


def write_dji_kmz(plan: Plan, path: str | Path) -> list[Path]:
    """Write DJI route KMZ files: ``path`` for a single sortie; with several, ``path`` holds
    the first sortie and each sortie also goes to ``<stem>.<sortie id>.kmz`` (one flight per
    KMZ, as Pilot 2 imports them). Returns the paths written, ``path`` first."""
    from geo.outputs import per_sortie_paths

    if not plan.sorties:
        raise DjiExportError("the plan has no sorties: nothing to export")
    dji_model(str(plan.camera.get("name", "")))  # fail before writing anything
    p = Path(path)
    p.write_bytes(dji_kmz_bytes(plan, plan.sorties[0]))
    written = [p]
    if len(plan.sorties) > 1:
        for s, t in per_sortie_paths(plan, p):
            t.write_bytes(dji_kmz_bytes(plan, s))
            written.append(t)
    return written


__all__ = ["DJI_MODELS", "DjiExportError", "DjiModel", "dji_kmz_bytes", "dji_model", "template_kml",
           "waylines_wpml", "write_dji_kmz", "KML_NS", "WPML_NS"]
