"""Mission building: a plan ``Sortie`` -> autopilot mission steps + geofence (pure).

Nothing here imports mavsdk: the steps are small dataclasses that ``flight.link``
converts to ``mavsdk`` ``MissionItem`` / geofence ``Polygon`` at the edge, so the
planning logic is testable without the native library and reusable for other
autopilot adapters.

Units: degrees WGS-84, metres (altitudes relative to the home / take-off point, as
MAVSDK's ``relative_altitude_m``), metres per second, seconds.

Capacity: MAVSDK expands one mission item into several MAVLink items (a waypoint, a
``DO_CHANGE_SPEED`` when the item has a speed, a gimbal command — plus one
``DO_GIMBAL_MANAGER_CONFIGURE`` before the first and after the last with gimbal
protocol v2 —, a camera command, and a final ``NAV_RETURN_TO_LAUNCH``).
:func:`mavlink_item_count` mirrors that expansion so a sortie that does not fit the
vehicle (PX4 with an SD card: 2,000 items) is refused *before* the upload, with a
message saying how to split it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from geo.plan_schema import Plan, Sortie, Waypoint

#: PX4 on a flight controller with an SD card holds this many mission items.
DEFAULT_MISSION_CAPACITY = 2000
#: PX4 holds at most this many geofence vertices (all polygons together).
DEFAULT_FENCE_CAPACITY = 128

StepCamera = Literal["start_distance", "stop_distance", "photo", "start_interval", "stop_interval"]
CameraMode = Literal["distance", "interval"]


class MissionCapacityError(ValueError):
    """A sortie that needs more MAVLink mission items than the vehicle holds."""


class MissionBuildError(ValueError):
    """A sortie that cannot be turned into a mission (empty, bad coordinates...)."""


@dataclass(frozen=True)
class MissionStep:
    """One autopilot mission item (one MAVSDK ``MissionItem``).

    ``waypoint_index`` is the index of the plan waypoint this step flies to, in the
    *original* sortie, so progress on a resumed (partial) mission maps back to the plan.
    """

    lat: float
    lon: float
    rel_alt_m: float
    speed_m_s: float | None
    waypoint_index: int
    fly_through: bool = True
    acceptance_radius_m: float | None = None
    gimbal_pitch_deg: float | None = None
    camera: StepCamera | None = None
    #: metres between photos for ``camera == "start_distance"``
    trigger_distance_m: float | None = None
    #: seconds between photos for ``camera == "start_interval"``
    photo_interval_s: float | None = None
    kind: str = "survey"
    grid_id: str | None = None


@dataclass(frozen=True)
class FencePolygon:
    """A geofence polygon; ``points`` are (lat, lon) degrees, not closed (first != last)."""

    points: tuple[tuple[float, float], ...]
    inclusion: bool
    name: str = ""


@dataclass(frozen=True)
class MissionSpec:
    """Everything uploaded for one sortie (or the remaining part of one)."""

    sortie_id: str
    drone: int
    steps: tuple[MissionStep, ...]
    rtl_after: bool
    fence: tuple[FencePolygon, ...]
    #: index in the original sortie's waypoints of ``steps[0]`` (0 unless resumed)
    start_index: int
    #: MAVLink items this mission occupies on the vehicle (see :func:`mavlink_item_count`)
    mavlink_items: int

    @property
    def total_waypoints(self) -> int:
        return len(self.steps)

    def waypoint_index(self, step: int) -> int:
        """Original sortie waypoint index for mission step ``step`` (clamped to the end)."""
        if not self.steps:
            return self.start_index
        if step >= len(self.steps):
            return self.steps[-1].waypoint_index + 1
        return self.steps[max(0, step)].waypoint_index


# ---------------------------------------------------------------------------
# MAVLink item accounting
# ---------------------------------------------------------------------------


def mavlink_item_count(steps: Sequence[MissionStep], rtl_after: bool, gimbal_v2: bool = True) -> int:
    """MAVLink items MAVSDK 4 produces for ``steps`` (mirrors ``MissionImpl::convert_to_int_items``).

    Gimbal protocol v2 (what PX4 answers) adds a configure item before the first and
    after the last gimbal command; v1 adds none. Counting v2 is the safe upper bound.
    """
    n = 0
    gimbal_seen = False
    for s in steps:
        n += 1  # NAV_WAYPOINT
        if s.speed_m_s is not None:
            n += 1  # DO_CHANGE_SPEED
        if s.gimbal_pitch_deg is not None:
            if gimbal_v2 and not gimbal_seen:
                n += 1  # DO_GIMBAL_MANAGER_CONFIGURE (acquire)
            gimbal_seen = True
            n += 1  # DO_GIMBAL_MANAGER_PITCHYAW / DO_MOUNT_CONTROL
        if s.camera is not None:
            n += 1  # DO_SET_CAM_TRIGG_DIST / IMAGE_START_CAPTURE / IMAGE_STOP_CAPTURE
    if gimbal_v2 and gimbal_seen:
        n += 1  # DO_GIMBAL_MANAGER_CONFIGURE (release)
    if rtl_after:
        n += 1  # NAV_RETURN_TO_LAUNCH
    return n


def max_waypoints_per_sortie(capacity: int = DEFAULT_MISSION_CAPACITY, camera_fraction: float = 0.1) -> int:
    """Rough number of plan waypoints that fit ``capacity`` items (speed on every item,
    a camera action on ``camera_fraction`` of them, gimbal once, RTL once)."""
    per = 2.0 + camera_fraction
    return max(1, int((capacity - 4) / per))


# ---------------------------------------------------------------------------
# Camera state along a sortie
# ---------------------------------------------------------------------------


def camera_active_before(waypoints: Sequence[Waypoint], index: int) -> float | None:
    """Trigger distance (m) if distance triggering is running when the vehicle leaves
    waypoint ``index - 1`` (i.e. on the leg into ``index``), else None."""
    active: float | None = None
    for wp in waypoints[:index]:
        if wp.camera == "start_distance":
            active = wp.trigger_distance_m or active or 0.0
        elif wp.camera == "stop_distance":
            active = None
    return active


# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------


def _check_waypoint(sortie: Sortie, i: int, wp: Waypoint) -> None:
    where = f"sortie {sortie.id!r} waypoint {i}"
    if not (-90.0 <= wp.lat <= 90.0 and -180.0 <= wp.lon <= 180.0) or not (
        math.isfinite(wp.lat) and math.isfinite(wp.lon)
    ):
        raise MissionBuildError(f"{where}: position ({wp.lat}, {wp.lon}) is not a valid WGS-84 lat/lon")
    if not math.isfinite(wp.rel_alt_m) or wp.rel_alt_m <= 0:
        raise MissionBuildError(f"{where}: rel_alt_m {wp.rel_alt_m} must be > 0 (metres above home)")
    if not math.isfinite(wp.speed_m_s) or wp.speed_m_s <= 0:
        raise MissionBuildError(f"{where}: speed_m_s {wp.speed_m_s} must be > 0")
    if wp.camera == "start_distance" and not (wp.trigger_distance_m and wp.trigger_distance_m > 0):
        raise MissionBuildError(f"{where}: camera 'start_distance' needs trigger_distance_m > 0")


def build_steps(
    sortie: Sortie,
    start_index: int = 0,
    camera_mode: CameraMode = "distance",
    acceptance_radius_m: float | None = None,
) -> list[MissionStep]:
    """Mission steps for ``sortie.waypoints[start_index:]``.

    Every step carries its planned speed (so a mission resumed anywhere flies at the
    planned speed); the gimbal pitch is set on the first step and whenever it changes.
    When resuming in the middle of a camera line, the first step re-starts the camera
    (distance triggering does not survive a re-upload). ``camera_mode="interval"``
    turns distance triggering into a photo interval of ``distance / speed`` seconds,
    for cameras that only take time-lapse commands.
    """
    wps = sortie.waypoints
    if not wps:
        raise MissionBuildError(f"sortie {sortie.id!r}: has no waypoints")
    if not 0 <= start_index < len(wps):
        raise MissionBuildError(
            f"sortie {sortie.id!r}: resume index {start_index} outside 0..{len(wps) - 1}"
        )
    steps: list[MissionStep] = []
    last_pitch: float | None = None
    # the camera state when *leaving* the resume waypoint (it is flown to with the camera off)
    resume_trigger = camera_active_before(wps, start_index + 1) if start_index > 0 else None
    for i in range(start_index, len(wps)):
        wp = wps[i]
        _check_waypoint(sortie, i, wp)
        pitch = wp.gimbal_pitch_deg
        step_pitch = pitch if (pitch is not None and pitch != last_pitch) else None
        if pitch is not None:
            last_pitch = pitch
        camera: StepCamera | None = None
        trig: float | None = None
        interval: float | None = None
        if wp.camera == "start_distance":
            camera, trig = "start_distance", wp.trigger_distance_m
        elif wp.camera == "stop_distance":
            camera = "stop_distance"
        elif wp.camera == "photo":
            camera = "photo"
        elif i == start_index and resume_trigger:
            camera, trig = "start_distance", resume_trigger
        if camera_mode == "interval":
            if camera == "start_distance":
                camera, interval, trig = "start_interval", max(0.1, (trig or 0.0) / wp.speed_m_s), None
            elif camera == "stop_distance":
                camera = "stop_interval"
        steps.append(
            MissionStep(
                lat=wp.lat,
                lon=wp.lon,
                rel_alt_m=wp.rel_alt_m,
                speed_m_s=wp.speed_m_s,
                waypoint_index=i,
                fly_through=True,
                acceptance_radius_m=acceptance_radius_m,
                gimbal_pitch_deg=step_pitch,
                camera=camera,
                trigger_distance_m=trig,
                photo_interval_s=interval,
                kind=wp.kind,
                grid_id=wp.grid_id,
            )
        )
    return steps


def capacity_message(sortie: Sortie, needed: int, capacity: int) -> str:
    """Why a sortie is refused and how to split it."""
    fit = max_waypoints_per_sortie(capacity)
    parts = math.ceil(needed / max(1, capacity))
    return (
        f"sortie {sortie.id!r} (drone d{sortie.drone}, grids {', '.join(sortie.grid_ids) or '-'}) needs "
        f"{needed} MAVLink mission items ({len(sortie.waypoints)} waypoints) but the vehicle holds {capacity}. "
        f"Split it into at least {parts} sorties of about {fit} waypoints: re-plan with a lower "
        f"`skygrid plan --endurance-min`, more drones (`--drones`), or smaller grids; "
        f"or raise --mission-capacity if this autopilot holds more."
    )


def build_mission(
    sortie: Sortie,
    plan: Plan | None = None,
    *,
    start_index: int = 0,
    capacity: int = DEFAULT_MISSION_CAPACITY,
    rtl_after: bool = True,
    camera_mode: CameraMode = "distance",
    fence: bool = True,
    fence_buffer_m: float = 150.0,
    acceptance_radius_m: float | None = None,
) -> MissionSpec:
    """The mission (steps + geofence) for one sortie, from waypoint ``start_index`` on.

    Raises :class:`MissionCapacityError` when it needs more than ``capacity`` MAVLink
    items, :class:`MissionBuildError` for bad waypoints.
    """
    steps = build_steps(sortie, start_index, camera_mode, acceptance_radius_m)
    needed = mavlink_item_count(steps, rtl_after)
    if needed > capacity:
        raise MissionCapacityError(capacity_message(sortie, needed, capacity))
    polys: tuple[FencePolygon, ...] = ()
    if fence and plan is not None:
        polys = tuple(build_geofence(plan, buffer_m=fence_buffer_m))
    return MissionSpec(
        sortie_id=sortie.id,
        drone=sortie.drone,
        steps=tuple(steps),
        rtl_after=rtl_after,
        fence=polys,
        start_index=start_index,
        mavlink_items=needed,
    )


# ---------------------------------------------------------------------------
# Geofence
# ---------------------------------------------------------------------------


def _ring_points(geom, frame) -> tuple[tuple[float, float], ...]:
    xs, ys = geom.exterior.coords.xy
    lon, lat = frame.to_wgs84(list(xs), list(ys))
    pts = [(float(a), float(o)) for a, o in zip(lat, lon, strict=True)]
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]
    return tuple(pts)


def _fit(geom, max_points: int):
    """Simplify ``geom`` (metres) until its exterior has at most ``max_points`` vertices."""
    tol = 1.0
    g = geom
    while len(g.exterior.coords) - 1 > max_points and tol < 1e5:
        g = geom.simplify(tol, preserve_topology=True)
        tol *= 2
    if len(g.exterior.coords) - 1 > max_points:
        g = geom.convex_hull.simplify(tol)
    return g


def patrol_area_local(plan: Plan, buffer_m: float = 150.0):
    """The patrol area in the plan's local metric frame (shapely polygon, frame).

    The convex hull of all the plan's grids and its home point, buffered by
    ``buffer_m``: a single simple polygon (a union of grids can be disjoint), which is
    what the autopilot's inclusion fence needs; the buffer leaves room for turns
    outside a cell and GPS error.
    """
    from shapely.geometry import MultiPoint

    from geo.projection import LocalFrame

    frame = LocalFrame(plan.home.lat, plan.home.lon)
    pts: list[tuple[float, float]] = [(0.0, 0.0)]
    for g in plan.grids:
        for part in g.all_parts():  # every part of a multi-part grid
            if not part:
                continue
            xs, ys = frame.to_local([p[0] for p in part[0]], [p[1] for p in part[0]])
            pts.extend(zip(map(float, xs), map(float, ys), strict=True))
    for s in plan.sorties:
        if s.waypoints:
            xs, ys = frame.to_local([w.lon for w in s.waypoints], [w.lat for w in s.waypoints])
            pts.extend(zip(map(float, xs), map(float, ys), strict=True))
    hull = MultiPoint(pts).convex_hull.buffer(max(1.0, buffer_m), quad_segs=4)
    return hull, frame


def inside_patrol_area(plan: Plan, lat: float, lon: float, buffer_m: float = 150.0) -> bool:
    """Whether (lat, lon) lies in :func:`patrol_area_local` (e.g. the vehicle's home)."""
    from shapely.geometry import Point

    area, frame = patrol_area_local(plan, buffer_m)
    x, y = frame.to_local(lon, lat)
    return bool(area.contains(Point(x, y)))


def build_geofence(
    plan: Plan, buffer_m: float = 150.0, max_points: int = DEFAULT_FENCE_CAPACITY
) -> list[FencePolygon]:
    """Inclusion polygon = patrol area; one exclusion polygon per no-fly zone (buffered
    by its ``buffer_m``). Vertices are simplified so all polygons fit ``max_points``."""

    area, frame = patrol_area_local(plan, buffer_m)
    zones = []
    for z, poly in _zone_parts_local(plan, frame):
        if not poly.is_valid:
            poly = poly.buffer(0)
        if z.buffer_m > 0:
            poly = poly.buffer(z.buffer_m, quad_segs=4)
        if poly.geom_type != "Polygon" or poly.is_empty:
            poly = poly.convex_hull
        zones.append((z, poly))
    n_polys = 1 + len(zones)
    if n_polys * 3 > max_points:
        raise MissionBuildError(
            f"geofence: {len(zones)} no-fly zones need more than the vehicle's {max_points} fence points"
        )
    budget = max(3, max_points // n_polys)
    out = [FencePolygon(_ring_points(_fit(area, budget), frame), True, "patrol area")]
    for z, poly in zones:
        out.append(FencePolygon(_ring_points(_fit(poly, budget), frame), False, z.name or z.id))
    return out


# ---------------------------------------------------------------------------
# Resuming and re-planning
# ---------------------------------------------------------------------------


def _zone_parts_local(plan: Plan, frame) -> list:
    """(zone, exterior polygon in local metres) for every part of every no-fly zone.

    Holes are ignored (a zone's hole is still kept out of: the conservative reading), and
    every part of a multi-part zone is its own exclusion, so none is dropped.
    """
    from shapely.geometry import Polygon

    out = []
    for z in plan.no_fly:
        for part in z.all_parts():
            if not part or len(part[0]) < 3:
                continue
            xs, ys = frame.to_local([p[0] for p in part[0]], [p[1] for p in part[0]])
            out.append((z, Polygon(zip(map(float, xs), map(float, ys), strict=True))))
    return out


def _no_fly_local(plan: Plan, frame):
    from shapely.ops import unary_union

    zones = []
    for z, poly in _zone_parts_local(plan, frame):
        poly = poly.buffer(0)
        zones.append(poly.buffer(max(0.0, z.buffer_m), quad_segs=4) if z.buffer_m > 0 else poly)
    return unary_union(zones) if zones else None


def transit_waypoints(plan: Plan, target: Waypoint, margin_m: float = 10.0) -> list[Waypoint]:
    """Waypoints from the plan's home to ``target`` around the buffered no-fly zones
    (none when the straight leg is clear), at the target's altitude and speed."""
    from shapely.geometry import LineString

    from geo.projection import LocalFrame
    from geo.routing import FreeSpace, NoPathError

    frame = LocalFrame(plan.home.lat, plan.home.lon)
    zones = _no_fly_local(plan, frame)
    if zones is None:
        return []
    q = frame.to_local(target.lon, target.lat)
    if not zones.buffer(margin_m).intersects(LineString([(0.0, 0.0), q])):
        return []
    area, _ = patrol_area_local(plan, 100.0)  # inside the geofence (buffered 150 m by default)
    try:
        via = FreeSpace(area.difference(zones.buffer(margin_m)), inset_m=3.0).path((0.0, 0.0), q)
    except NoPathError:
        raise MissionBuildError(
            f"no transit from home to ({target.lat:.6f}, {target.lon:.6f}) around the no-fly zones"
        ) from None
    out = []
    for e, n in via:
        lon, lat = frame.to_wgs84(e, n)
        out.append(Waypoint(lat=float(lat), lon=float(lon), rel_alt_m=target.rel_alt_m, speed_m_s=target.speed_m_s,
                            kind="transit", grid_id=None, camera=None, gimbal_pitch_deg=target.gimbal_pitch_deg))
    return out


def follow_up_sortie(sortie: Sortie, resume_index: int, suffix: str | None = None, plan: Plan | None = None) -> Sortie:
    """A new sortie that flies ``sortie.waypoints[resume_index:]`` (the unfinished part).

    The resume waypoint is the last one the vehicle reached (the leg after it was not
    finished), so the leg is flown again from its start and the ground under it is
    covered. The vehicle flies to it with the camera off; triggering is re-started
    there if the interrupted leg was being photographed.
    The id is ``<sortie>-r<n>`` so logs and tickets show where it came from. With
    ``plan``, transit waypoints around the no-fly zones are put before the resume point
    when the straight leg from home would cross one.
    """
    if not 0 <= resume_index < len(sortie.waypoints):
        raise MissionBuildError(
            f"sortie {sortie.id!r}: cannot re-plan from waypoint {resume_index} "
            f"(it has {len(sortie.waypoints)})"
        )
    wps = [replace(w) for w in sortie.waypoints[resume_index:]]
    trig = camera_active_before(sortie.waypoints, resume_index + 1)
    if trig and wps[0].camera is None:
        wps[0] = replace(wps[0], camera="start_distance", trigger_distance_m=trig)
    if suffix is not None:
        sid = f"{sortie.id}-{suffix}"
    else:
        base, _, n = sortie.id.rpartition("-r")
        sid = f"{base}-r{int(n) + 1}" if base and n.isdigit() else f"{sortie.id}-r1"
    if plan is not None:
        wps = transit_waypoints(plan, wps[0]) + wps
    grids: list[str] = []
    for w in wps:
        if w.grid_id and w.grid_id not in grids:
            grids.append(w.grid_id)
    frac = ((len(sortie.waypoints) - resume_index) / len(sortie.waypoints)) if sortie.waypoints else 0.0
    return Sortie(
        id=sid,
        drone=sortie.drone,
        index=sortie.index,
        grid_ids=grids or list(sortie.grid_ids),
        waypoints=wps,
        distance_m=sortie.distance_m * frac,
        duration_s=sortie.duration_s * frac,
        battery_fraction=sortie.battery_fraction * frac,
    )
