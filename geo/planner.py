"""Many grids, one patrol: coverage per grid, a tour from the launch point, sorties by battery, N drones.

Pipeline (all in a :class:`~geo.projection.LocalFrame` centred on home, metres):

1. each grid minus the buffered no-fly zones is covered by :func:`geo.coverage.plan_part`
   (one route per connected part; a zone that overlaps a grid becomes a hole and a
   :class:`PlanningWarning`, also when most of the grid lies in it; a grid entirely inside a
   zone, or beyond the optional strict ``max_no_fly_fraction``, is a :class:`PlanningError`
   naming grid and zone);
2. routes become jobs; a job too long for one battery is split between survey lines;
3. jobs are ordered into one tour from home (nearest neighbour + 2-opt, each job may be
   flown in either direction);
4. the tour is cut into sorties that fit ``endurance_s * (1 - reserve)`` with take-off,
   climb, descent, turns and the flight home counted; the number of sorties is rounded
   up to a multiple of ``drones`` and the cut limit lowered by bisection so the sorties are
   even, then sorties go to drones longest-first (LPT) to minimise the makespan;
5. transit between grids goes around buffered no-fly zones (visibility graph); each
   sortie ends with a transit waypoint above home so RTL never crosses a zone.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.ops import nearest_points

from geo.camera import DEFAULT_CAMERA, PRESETS, CameraModel
from geo.coverage import CellRoute, FlightModel, RoutePoint, SweepParams, plan_region
from geo.grids import Grid, NoFlyArea
from geo.plan_schema import Home, NoFlyZone, Plan, PlannedGrid, Sortie, Waypoint
from geo.projection import LocalFrame
from geo.routing import FreeSpace, NoPathError, polyline_length

#: legal ceiling above ground in China for unauthorised airspace (metres)
MAX_AGL_M = 120.0
DEFAULT_ENDURANCE_S = 35 * 60.0
DEFAULT_RESERVE = 0.2
#: a grid at least this fraction inside one buffered no-fly zone has nothing left to fly
ENTIRELY_INSIDE = 0.999
#: clearance in metres kept from grid edges and buffered no-fly zones (absorbs rounding)
SAFETY_M = 0.05

Point2 = tuple[float, float]
ProgressFn = Callable[[int, int], None]


class PlanningError(ValueError):
    """A patrol that cannot be planned safely; the message names the grid (and zone)."""


class PlanningWarning(UserWarning):
    """Something the operator should know about a plan that is still flyable."""


def resolve_altitude(camera: CameraModel, altitude_m: float | None, gsd_cm: float | None) -> tuple[float, float]:
    """(altitude_m, gsd_cm) from one of them; altitude defaults to 80 m when neither is given."""
    if altitude_m is not None and gsd_cm is not None:
        raise PlanningError("give either an altitude or a GSD, not both")
    if gsd_cm is not None:
        if not gsd_cm > 0:
            raise PlanningError(f"GSD must be > 0 cm/px, got {gsd_cm}")
        return camera.altitude_for_gsd(gsd_cm), gsd_cm
    alt = 80.0 if altitude_m is None else float(altitude_m)
    if not alt > 0:
        raise PlanningError(f"altitude must be > 0 m, got {alt}")
    return alt, camera.gsd_cm(alt)


def _to_local(geom, frame: LocalFrame):
    def f(c: np.ndarray) -> np.ndarray:
        e, n = frame.to_local(c[:, 0], c[:, 1])
        return np.column_stack([np.atleast_1d(e), np.atleast_1d(n)])

    return shapely.transform(geom, f)


def _polys(g) -> list[Polygon]:
    if g.is_empty:
        return []
    if isinstance(g, Polygon):
        return [g]
    return [p for p in getattr(g, "geoms", []) if isinstance(p, Polygon) and not p.is_empty]


def default_home(grids: Sequence[Grid], no_fly: Sequence[NoFlyArea] = (), inset_m: float = 5.0) -> tuple[float, float]:
    """A launch point inside a grid when none is given: (lat, lon) WGS-84.

    The centroid of all grids when it lies inside one (and outside every buffered no-fly
    zone), else the nearest point ``inset_m`` metres inside a grid. The plain centroid of
    two grids can be a field or a river between them, where no 飞手 would stand.
    """
    c = shapely.union_all([g.polygon for g in grids]).centroid
    frame = LocalFrame(c.y, c.x)
    area = shapely.union_all([_to_local(g.polygon, frame) for g in grids])
    if no_fly:
        area = area.difference(shapely.union_all([_to_local(z.polygon, frame).buffer(z.buffer_m + SAFETY_M)
                                                  for z in no_fly]))
    inner = area.buffer(-inset_m)
    target = inner if not inner.is_empty else area
    if target.is_empty:
        raise PlanningError("no place to launch from: every grid lies inside a no-fly zone; give --home")
    origin = shapely.points(0.0, 0.0)
    pt = origin if target.contains(origin) else nearest_points(target, origin)[0]
    lon, lat = frame.to_wgs84(np.array([pt.x]), np.array([pt.y]))
    return float(np.atleast_1d(lat)[0]), float(np.atleast_1d(lon)[0])


def _rings_of(geom) -> list[list[list[list[float]]]]:
    """Every polygon of ``geom`` (largest first) as [exterior, hole, ...] rings of rounded [lon, lat]."""
    out = []
    for p in sorted(_polys(geom), key=lambda p: -p.area):
        rings = [[[round(x, 8), round(y, 8)] for x, y in p.exterior.coords]]
        rings += [[[round(x, 8), round(y, 8)] for x, y in h.coords] for h in p.interiors]
        out.append(rings)
    return out


@dataclass
class _GridTask:
    grid_id: str
    local: Polygon | MultiPolygon
    obstacles: Polygon | MultiPolygon | None
    edge_margin_m: float
    params: SweepParams
    model: FlightModel


def _plan_grid(task: _GridTask) -> tuple[str, list[CellRoute], float, int]:
    """Routes for every connected part of one grid; returns (id, routes, allowed area, tiny parts)."""
    # keep SAFETY_M clear of walls so waypoint rounding (1e-8 deg ~ 1 mm) never crosses them
    inner = task.local.buffer(-SAFETY_M, join_style="mitre")
    obstacles = None if task.obstacles is None else task.obstacles.buffer(SAFETY_M)
    allowed = inner if obstacles is None else inner.difference(obstacles)
    if task.edge_margin_m > 0:
        free = task.local.buffer(task.edge_margin_m - SAFETY_M, join_style="mitre")
        if obstacles is not None:
            free = free.difference(obstacles)
    else:
        free = allowed
    free_parts = _polys(free)
    routes: list[CellRoute] = []
    skipped = 0
    for k, part in enumerate(sorted(_polys(allowed), key=lambda p: -p.area)):
        if part.area < 1.0:
            continue
        fp = max(free_parts, key=lambda f: f.intersection(part).area) if len(free_parts) > 1 else free_parts[0]
        try:
            r = plan_region(task.grid_id, k, part, fp, task.params, task.model)
        except NoPathError:
            raise PlanningError(
                f"grid {task.grid_id}: cannot join its survey lines without leaving the grid or entering a "
                "no-fly zone (a passage narrower than the clearance?); try --edge-margin"
            ) from None
        if r is None:
            skipped += 1
        else:
            routes.append(r)
    return task.grid_id, routes, float(allowed.area), skipped


@dataclass
class _Job:
    route: CellRoute
    flipped: bool = False

    @property
    def r(self) -> CellRoute:
        return self.route.reversed() if self.flipped else self.route


class _Transit:
    """Point-to-point transit around buffered no-fly zones, cached."""

    def __init__(self, obstacles, extent: Polygon) -> None:
        # graph nodes sit 3 m outside the buffered zones
        self.obstacles = obstacles
        if obstacles is not None:
            shapely.prepare(obstacles)
        self.fs = None if obstacles is None else FreeSpace(extent.difference(obstacles), inset_m=3.0)
        self._cache: dict[tuple, list[Point2]] = {}

    def path(self, p: Point2, q: Point2) -> list[Point2]:
        if self.fs is None or p == q:
            return []
        if not self.obstacles.intersects(shapely.linestrings([p, q])):
            return []
        key = (round(p[0], 2), round(p[1], 2), round(q[0], 2), round(q[1], 2))
        if key not in self._cache:
            self._cache[key] = self.fs.path(p, q)
        return self._cache[key]

    def dist(self, p: Point2, q: Point2) -> float:
        try:
            via = self.path(p, q)
        except NoPathError:
            return math.inf
        return math.dist(p, q) if not via else polyline_length([p, *via, q])

    def dists(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Transit lengths a[k] -> b[k] (m); straight unless the segment meets a zone (vectorised test)."""
        a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
        b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
        out = np.hypot(*(b - a).T)
        if self.obstacles is None or not len(a):
            return out
        moving = out > 1e-9
        hit = np.zeros(len(a), dtype=bool)
        if np.any(moving):
            hit[moving] = shapely.intersects(self.obstacles, shapely.linestrings(np.stack([a[moving], b[moving]], axis=1)))
        for k in np.flatnonzero(hit):
            out[k] = self.dist((float(a[k, 0]), float(a[k, 1])), (float(b[k, 0]), float(b[k, 1])))
        return out


def _split_route(route: CellRoute, max_s: float, model: FlightModel, home: Point2 = (0.0, 0.0)) -> list[CellRoute]:
    """Cut a route between survey lines so each piece plus the trip from/to home fits ``max_s``."""
    pts = route.points
    pieces: list[list[RoutePoint]] = []
    cur: list[RoutePoint] = []
    i = 0
    while i < len(pts):
        # one unit = leading transits + line_start + line_end
        j = i
        while j < len(pts) and pts[j].kind == "transit":
            j += 1
        unit = pts[i : j + 2]
        i = j + 2
        trial = cur + unit
        trial_clean = [p for p in trial if not (p is trial[0] and p.kind == "transit")]
        xy = [home, *[(p.x, p.y) for p in trial_clean], home]
        if cur and model.path_time_s(xy) > max_s:
            pieces.append(cur)
            cur = [p for p in unit if p.kind != "transit"]
        else:
            cur = trial
    if cur:
        pieces.append(cur)
    out = []
    for k, pc in enumerate(pieces):
        while pc and pc[0].kind == "transit":
            pc = pc[1:]
        xy = np.asarray([(p.x, p.y) for p in pc])
        r = CellRoute(route.grid_id, route.part * 1000 + k, pc, route.angle_deg, sum(p.kind == "line_start" for p in pc),
                      route.imaged_area_m2 * len(pc) / max(1, len(pts)), route.area_m2 * len(pc) / max(1, len(pts)),
                      polyline_length(xy), model.path_time_s(xy))
        out.append(r)
    return out


def line_triggers(xy: np.ndarray, kinds: Sequence[str], trigger_m: float) -> list[float | None]:
    """Per-line trigger distance (m) so that the last photo falls on the line end.

    Lines are trimmed to half a footprint inside the grid (:func:`geo.coverage.trim_segments`),
    which is only safe when a photo is taken at both ends. A line of length L gets
    ``L / ceil(L / trigger_m)`` (never more than the nominal distance, so front overlap only
    grows), rounded down to the millimetre. None for every point that does not start a line.
    """
    out: list[float | None] = [None] * len(kinds)
    if len(kinds) < 2:
        return out
    kk = np.asarray(kinds, dtype=object)
    starts = np.flatnonzero((kk[:-1] == "line_start") & (kk[1:] == "line_end"))
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    ln = np.hypot(*(xy[starts + 1] - xy[starts]).T)
    trig = np.floor(ln / np.ceil(ln / trigger_m - 1e-9) * 1000.0) / 1000.0
    for k, L, t in zip(starts.tolist(), ln.tolist(), trig.tolist(), strict=True):
        if L > 0.5:
            out[k] = t
    return out


def _tour(jobs: list[_Job], home: Point2, two_opt_max: int = 400) -> list[_Job]:
    """Order jobs from home: nearest entry/exit first, then 2-opt with direction flips."""
    n = len(jobs)
    if n == 0:
        return []
    ent = np.asarray([j.route.entry for j in jobs])
    ext = np.asarray([j.route.exit for j in jobs])
    # entries and exits in one array: row k < n enters job k forwards, row n + k flipped
    ex, ey = np.concatenate([ent[:, 0], ext[:, 0]]), np.concatenate([ent[:, 1], ext[:, 1]])
    penalty = np.zeros(2 * n)
    cx, cy = float(home[0]), float(home[1])
    order: list[_Job] = []
    for _ in range(n):
        d2 = (ex - cx) ** 2 + (ey - cy) ** 2 + penalty
        k2 = int(np.argmin(d2))
        k, flip = (k2, False) if k2 < n else (k2 - n, True)
        penalty[k] = penalty[k + n] = np.inf
        order.append(_Job(jobs[k].route, flip))
        cx, cy = (ent[k] if flip else ext[k])
    if n > two_opt_max or n < 3:
        return order
    # 2-opt on (entry, exit) pairs; home at both ends
    ent_o = [np.asarray(j.r.entry) for j in order]
    ext_o = [np.asarray(j.r.exit) for j in order]
    h = np.asarray(home, dtype=np.float64)
    improved = True
    passes = 0
    while improved and passes < 8:
        improved = False
        passes += 1
        for i in range(n - 1):
            a = h if i == 0 else ext_o[i - 1]
            for j in range(i + 1, n):
                b = h if j == n - 1 else ent_o[j + 1]
                before = math.dist(a, ent_o[i]) + math.dist(ext_o[j], b)
                after = math.dist(a, ext_o[j]) + math.dist(ent_o[i], b)
                if after < before - 1e-6:
                    seg = order[i : j + 1][::-1]
                    order[i : j + 1] = [_Job(x.route, not x.flipped) for x in seg]
                    e2, x2 = ext_o[i : j + 1][::-1], ent_o[i : j + 1][::-1]
                    ent_o[i : j + 1], ext_o[i : j + 1] = e2, x2
                    improved = True
    return order


def plan_patrol(
    grids: Sequence[Grid],
    home: tuple[float, float, float] | tuple[float, float],
    camera: CameraModel | None = None,
    altitude_m: float | None = None,
    gsd_cm: float | None = None,
    speed_m_s: float = 10.0,
    side_overlap: float = 0.2,
    front_overlap: float = 0.6,
    drones: int = 1,
    no_fly: Sequence[NoFlyArea] = (),
    edge_margin_m: float = 0.0,
    endurance_s: float = DEFAULT_ENDURANCE_S,
    reserve: float = DEFAULT_RESERVE,
    authorised_airspace: bool = False,
    progress: ProgressFn | None = None,
    turn_s: float = 6.0,
    battery_swap_s: float = 300.0,
    max_no_fly_fraction: float | None = None,
    workers: int | None = None,
    source: str = "",
    home_label: str | None = None,
) -> Plan:
    """Plan a patrol over ``grids`` from ``home`` = (lat, lon[, alt_amsl_m]) in WGS-84.

    Altitude (m above home/ground, flat ground assumed) comes from ``altitude_m`` or
    ``gsd_cm`` (cm/px) with ``camera`` (default preset m3e); above 120 m needs
    ``authorised_airspace=True``. ``edge_margin_m`` is how far (m) a path may stray outside
    its grid (default 0: never). ``endurance_s`` is flight time per battery; ``reserve``
    the fraction kept for the return. ``progress(done, total)`` is called per grid.
    A grid partly inside a buffered no-fly zone is planned around the zone with a
    :class:`PlanningWarning` (the 飞手 gets the flyable part of the county); a grid entirely
    inside one (>= 99.9 %) is an error, and so is one whose fraction inside reaches
    ``max_no_fly_fraction`` when that strict limit is given (0..1; default None: no limit).
    Raises :class:`PlanningError` naming grid/zone; issues :class:`PlanningWarning`.
    """
    camera = camera or PRESETS[DEFAULT_CAMERA]
    if not grids:
        raise PlanningError("no grids to plan")
    if drones < 1:
        raise PlanningError(f"drones must be >= 1, got {drones}")
    if not speed_m_s > 0:
        raise PlanningError(f"speed must be > 0 m/s, got {speed_m_s}")
    if not 0 <= reserve < 1:
        raise PlanningError(f"reserve must be in [0, 1), got {reserve}")
    if edge_margin_m < 0:
        raise PlanningError(f"edge margin must be >= 0 m, got {edge_margin_m}")
    alt, gsd = resolve_altitude(camera, altitude_m, gsd_cm)
    if alt > MAX_AGL_M and not authorised_airspace:
        raise PlanningError(
            f"altitude {alt:.1f} m AGL is above the {MAX_AGL_M:.0f} m limit; lower it (or coarser GSD), "
            "or pass authorised_airspace / --authorised-airspace if you hold an airspace approval"
        )
    spacing = camera.line_spacing_m(alt, side_overlap)
    trigger = camera.trigger_distance_m(alt, front_overlap)
    fw, fh = camera.footprint_m(alt)
    params = SweepParams(spacing, fw, fh)
    model = FlightModel(speed_m_s=speed_m_s, turn_s=turn_s)
    hlat, hlon = float(home[0]), float(home[1])
    halt = float(home[2]) if len(home) > 2 else 0.0
    frame = LocalFrame(hlat, hlon)
    h0: Point2 = (0.0, 0.0)
    plan_warnings: list[str] = []

    def warn(msg: str) -> None:
        plan_warnings.append(msg)
        warnings.warn(msg, PlanningWarning, stacklevel=3)

    # --- no-fly zones ------------------------------------------------------------------
    zones_local = []
    for z in no_fly:
        zl = _to_local(z.polygon, frame)
        zones_local.append((z, zl.buffer(z.buffer_m + SAFETY_M)))
    obstacles = shapely.union_all([zl for _, zl in zones_local]) if zones_local else None
    if obstacles is not None and obstacles.contains(shapely.points(h0)):
        z = next(z for z, zl in zones_local if zl.contains(shapely.points(h0)))
        where = home_label or f"({hlat:.6f}, {hlon:.6f})"
        raise PlanningError(f"home {where} is inside no-fly zone {z.id} ({z.name}) or its buffer")

    # --- grids -------------------------------------------------------------------------
    tasks = []
    grid_local = {}
    # one projection call for every grid's coordinates (a pyproj call per grid costs more than
    # the projection itself at city scale); an STRtree finds the zones near each grid
    all_local = _to_local(np.asarray([g.polygon for g in grids], dtype=object), frame)
    zone_tree = shapely.STRtree([zl for _, zl in zones_local]) if zones_local else None
    for g, gl in zip(grids, all_local, strict=True):
        grid_local[g.id] = gl
        obs = None
        near = zone_tree.query(gl) if zone_tree is not None else []
        for zi in sorted(int(i) for i in near):
            z, zl = zones_local[zi]
            if not gl.intersects(zl):
                continue
            inter = gl.intersection(zl).area
            if inter <= 0:
                continue
            frac = inter / gl.area
            if frac >= ENTIRELY_INSIDE or (max_no_fly_fraction is not None and frac >= max_no_fly_fraction):
                what = ("nothing is left to fly" if frac >= ENTIRELY_INSIDE else
                        f"at most {max_no_fly_fraction:.0%} is allowed (--max-no-fly-fraction); drop the limit to fly "
                        f"the remaining {1 - frac:.0%}")
                raise PlanningError(
                    f"grid {g.id} ({g.name}) lies {frac:.0%} inside no-fly zone {z.id} ({z.name}, buffer {z.buffer_m:g} m): "
                    f"{what}; drop it from the patrol (--grids) or patrol it on foot"
                )
            if frac >= 0.5:
                warn(f"grid {g.id} ({g.name}): {frac:.0%} lies inside no-fly zone {z.id} ({z.name}, buffer "
                     f"{z.buffer_m:g} m); only the remaining {1 - frac:.0%} is planned, around the zone as a hole — "
                     "the rest is not imaged, patrol it on foot")
            else:
                warn(f"grid {g.id}: {inter:.0f} m² ({frac:.0%}) overlaps no-fly zone {z.id} ({z.name}, buffer "
                     f"{z.buffer_m:g} m); planned around it as a hole — that area is not imaged")
            obs = zl if obs is None else obs.union(zl)
        tasks.append(_GridTask(g.id, gl, obs, edge_margin_m, params, model))

    results: dict[str, tuple[list[CellRoute], float, int]] = {}
    total = len(tasks)
    n_workers = workers if workers is not None else (min(2, os.cpu_count() or 1) if total >= 200 else 1)
    if n_workers > 1:
        with ProcessPoolExecutor(n_workers) as ex:
            for done, (gid, routes, area, skipped) in enumerate(ex.map(_plan_grid, tasks, chunksize=32), 1):
                results[gid] = (routes, area, skipped)
                if progress:
                    progress(done, total)
    else:
        for done, t in enumerate(tasks, 1):
            gid, routes, area, skipped = _plan_grid(t)
            results[gid] = (routes, area, skipped)
            if progress:
                progress(done, total)

    # --- jobs, tour, sorties ----------------------------------------------------------
    vertical = model.vertical_time_s(alt)
    budget = endurance_s * (1.0 - reserve) - vertical
    if budget <= 0:
        raise PlanningError(f"endurance {endurance_s:.0f} s with {reserve:.0%} reserve leaves no time after climb/descent")
    allb = [gl.bounds for gl in grid_local.values()]
    minx = min(b[0] for b in allb + [(0, 0, 0, 0)])
    miny = min(b[1] for b in allb + [(0, 0, 0, 0)])
    maxx = max(b[2] for b in allb + [(0, 0, 0, 0)])
    maxy = max(b[3] for b in allb + [(0, 0, 0, 0)])
    extent = box(minx - 2000, miny - 2000, maxx + 2000, maxy + 2000)
    if obstacles is not None:
        extent = extent.union(obstacles.envelope.buffer(2000))
    transit = _Transit(obstacles, extent)

    jobs: list[_Job] = []
    all_routes = [(g, r) for g in grids for r in results[g.id][0]]
    for g in grids:
        routes, _, skipped = results[g.id]
        if skipped:
            warn(f"grid {g.id}: {skipped} part(s) too small or narrow for a survey line were skipped")
        if not routes:
            raise PlanningError(f"grid {g.id} ({g.name}): nothing to fly (no part wider than the minimum line)")
    ent = np.asarray([r.entry for _, r in all_routes])
    ext = np.asarray([r.exit for _, r in all_routes])
    hz = np.zeros_like(ent)
    trips = (transit.dists(hz, ent) + transit.dists(ext, hz)) / speed_m_s
    for (g, r), trip in zip(all_routes, trips, strict=True):
        if not math.isfinite(trip):
            raise PlanningError(f"grid {g.id} ({g.name}): unreachable from home without crossing a no-fly zone")
        if trip + r.time_s + 2 * turn_s > budget:
            far = max(math.dist(h0, r.entry), math.dist(h0, r.exit))
            if 2 * far / speed_m_s + 2 * turn_s >= budget:
                raise PlanningError(
                    f"grid {g.id} ({g.name}): {far / 1000:.1f} km from home is beyond reach of a "
                    f"{endurance_s / 60:.0f} min battery with {reserve:.0%} reserve; move the launch point"
                )
            for piece in _split_route(r, budget - 2 * turn_s, model, h0):
                jobs.append(_Job(piece))
        else:
            jobs.append(_Job(r))
    order = _tour(jobs, h0)
    flown = [j.r for j in order]  # routes in flying direction
    n_jobs = len(flown)
    o_ent = np.asarray([r.entry for r in flown])
    o_ext = np.asarray([r.exit for r in flown])
    work = np.asarray([r.time_s for r in flown])
    hz = np.zeros_like(o_ent)
    # leg times (s): home -> entry i, exit i -> home, exit i -> entry i+1 (each with one turn)
    out_s = transit.dists(hz, o_ent) / speed_m_s + turn_s
    back_s = transit.dists(o_ext, hz) / speed_m_s + turn_s
    link_s = (transit.dists(o_ext[:-1], o_ent[1:]) / speed_m_s + turn_s) if n_jobs > 1 else np.zeros(0)

    def chunks(limit: float) -> list[list[int]]:
        out: list[list[int]] = []
        cur: list[int] = []
        t = 0.0
        for i in range(n_jobs):
            if not cur:
                cur, t = [i], out_s[i] + work[i]
                continue
            add = link_s[i - 1] + work[i]
            if t + add + back_s[i] > limit:
                out.append(cur)
                cur, t = [i], out_s[i] + work[i]
            else:
                cur.append(i)
                t += add
        if cur:
            out.append(cur)
        return out

    def chunk_time(c: list[int]) -> float:
        return float(out_s[c[0]] + work[c].sum() + link_s[c[0] : c[-1]].sum() + back_s[c[-1]] + vertical)

    base = chunks(budget)
    k_target = drones * math.ceil(len(base) / drones)
    lo = float(np.max(out_s + work + back_s))
    hi = budget
    best = base
    if drones > 1 and n_jobs > 1:
        for _ in range(30):
            mid = (lo + hi) / 2
            c = chunks(mid)
            if len(c) <= k_target:
                best, hi = c, mid
            else:
                lo = mid
            if hi - lo < 1.0:
                break
    # LPT: longest sortie first to the least-loaded drone
    times = [chunk_time(c) for c in best]
    load = [0.0] * drones
    assign: list[list[int]] = [[] for _ in range(drones)]
    for ci in sorted(range(len(best)), key=lambda i: -times[i]):
        d = min(range(drones), key=lambda k: load[k] + (battery_swap_s if assign[k] else 0.0))
        load[d] += times[ci] + (battery_swap_s if assign[d] else 0.0)
        assign[d].append(ci)

    alt_r, trigger_r = round(alt, 2), round(trigger, 3)

    def wp(lon: float, lat: float, kind: str, grid_id: str | None, trig: float | None = None) -> Waypoint:
        cam = {"line_start": "start_distance", "line_end": "stop_distance"}.get(kind)
        return Waypoint(
            lat=lat, lon=lon, rel_alt_m=alt_r, speed_m_s=speed_m_s, kind=kind, grid_id=grid_id, camera=cam,
            trigger_distance_m=(trig or trigger_r) if kind == "line_start" else None, gimbal_pitch_deg=-90.0,
        )

    sorties: list[Sortie] = []
    for d in range(drones):
        for idx, ci in enumerate(sorted(assign[d])):
            c = best[ci]
            pts: list[tuple[float, float, str, str | None]] = []
            prev_pt = h0
            for i in c:
                r = flown[i]
                pts += [(q[0], q[1], "transit", None) for q in transit.path(prev_pt, r.entry)]
                pts += [(p.x, p.y, p.kind, r.grid_id) for p in r.points]
                prev_pt = r.exit
            pts += [(q[0], q[1], "transit", None) for q in transit.path(prev_pt, h0)]
            pts.append((0.0, 0.0, "transit", None))  # above home: RTL from here descends vertically
            xy = np.asarray([(0.0, 0.0)] + [(x, y) for x, y, _, _ in pts])
            lon, lat = frame.to_wgs84(xy[1:, 0], xy[1:, 1])
            lon, lat = np.round(np.atleast_1d(lon), 8).tolist(), np.round(np.atleast_1d(lat), 8).tolist()
            trig = line_triggers(xy[1:], [k for _, _, k, _ in pts], trigger)
            wps = [wp(lo_, la_, kind, gid, tg)
                   for lo_, la_, (_, _, kind, gid), tg in zip(lon, lat, pts, trig, strict=True)]
            dist = polyline_length(xy)
            dur = model.path_time_s(xy) + vertical
            gids = list(dict.fromkeys(flown[i].grid_id for i in c))
            s = Sortie(id=f"d{d}-s{idx + 1}", drone=d, index=idx, grid_ids=gids, waypoints=wps,
                       distance_m=round(dist, 1), duration_s=round(dur, 1),
                       battery_fraction=round(dur / endurance_s, 4))
            if dur > endurance_s * (1 - reserve) * 1.02:
                warn(f"sortie {s.id}: {dur / 60:.1f} min exceeds the {endurance_s * (1 - reserve) / 60:.1f} min budget")
            sorties.append(s)

    planned = []
    for g in grids:
        routes, allowed_area, _ = results[g.id]
        imaged = sum(r.imaged_area_m2 for r in routes)
        parts = _rings_of(g.polygon)
        planned.append(PlannedGrid(
            id=g.id, name=g.name, rings=parts[0], area_m2=round(float(grid_local[g.id].area), 1),
            coverage_ratio=round(min(1.0, imaged / allowed_area) if allowed_area > 0 else 0.0, 5),
            properties=dict(g.properties), parts=parts if len(parts) > 1 else [],
        ))
    nfz = []
    for z in no_fly:
        parts = _rings_of(z.polygon)
        nfz.append(NoFlyZone(id=z.id, name=z.name, rings=parts[0], buffer_m=z.buffer_m,
                             parts=parts if len(parts) > 1 else []))
    plan = Plan(
        home=Home(hlat, hlon, halt), camera=camera.to_dict(), altitude_m=round(alt, 2), gsd_cm=round(gsd, 3),
        speed_m_s=speed_m_s, side_overlap=side_overlap, front_overlap=front_overlap,
        line_spacing_m=round(spacing, 3), trigger_distance_m=round(trigger, 3), drones=drones,
        grids=planned, sorties=sorties, no_fly=nfz,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), source=source, warnings=plan_warnings,
    )
    return plan
