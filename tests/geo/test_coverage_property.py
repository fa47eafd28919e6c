"""The safety property over many random grids: never outside the grid, never in a no-fly zone.

Random star-shaped (often concave) grids with a hole and a no-fly circle that may overlap
them are planned end to end (WGS-84 in, rounded waypoints out) and the flown path is
checked in metres.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point, Polygon

from geo.camera import PRESETS
from geo.coverage import FlightModel, SweepParams, plan_part
from geo.grids import Grid, NoFlyArea
from geo.planner import PlanningError, plan_patrol
from geo.projection import LocalFrame

FRAME = LocalFrame(30.09, 120.33)


def _to_wgs(geom):
    return shapely.transform(geom, lambda c: np.column_stack(FRAME.to_wgs84(c[:, 0], c[:, 1])))


def _to_local(geom):
    return shapely.transform(geom, lambda c: np.column_stack(FRAME.to_local(c[:, 0], c[:, 1])))


@st.composite
def scenes(draw):
    n = draw(st.integers(5, 11))
    radii = draw(st.lists(st.floats(120, 520), min_size=n, max_size=n))
    jitter = draw(st.lists(st.floats(-0.25, 0.25), min_size=n, max_size=n))
    angles = [2 * math.pi * (k + 0.5 + j * 0.8) / n for k, j in enumerate(jitter)]
    grid = Polygon([(r * math.cos(a), r * math.sin(a)) for r, a in zip(radii, angles, strict=True)])
    assume(grid.is_valid and grid.area > 20_000)
    if draw(st.booleans()):
        inner = grid.buffer(-60)
        if not inner.is_empty:
            c = inner.representative_point()
            hole = Point(c.x, c.y).buffer(draw(st.floats(15, 50)), quad_segs=4)
            if grid.contains(hole.buffer(5)):
                grid = Polygon(grid.exterior.coords, [hole.exterior.coords])
    zone = None
    if draw(st.booleans()):
        minx, miny, maxx, maxy = grid.bounds
        zx, zy = draw(st.floats(minx, maxx)), draw(st.floats(miny, maxy))
        zone = Point(zx, zy).buffer(draw(st.floats(20, 120)), quad_segs=6)
    return grid, zone, draw(st.floats(0, 180))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(scenes())
def test_path_never_outside_grid_nor_in_no_fly(scene):
    grid_local, zone_local, home_bearing = scene
    buf = 10.0
    home_local = (900 * math.cos(math.radians(home_bearing)), 900 * math.sin(math.radians(home_bearing)))
    hlon, hlat = FRAME.to_wgs84(*home_local)
    grid = Grid("G", "random", _to_wgs(grid_local))
    no_fly = [NoFlyArea("Z", "zone", _to_wgs(zone_local), buffer_m=buf)] if zone_local is not None else []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = plan_patrol([grid], home=(hlat, hlon, 0.0), camera=PRESETS["m3e"], altitude_m=60, no_fly=no_fly)
    except PlanningError as e:
        # only allowed when the zone swallows most of the grid; the message names both
        assert zone_local is not None and "grid G" in str(e) and "zone Z" in str(e)
        return
    grid_m = _to_local(grid.polygon).buffer(0.01)
    zone_m = _to_local(no_fly[0].polygon).buffer(buf) if no_fly else None
    for s in plan.sorties:
        pts = [FRAME.to_local(plan.home.lon, plan.home.lat)] + [FRAME.to_local(w.lon, w.lat) for w in s.waypoints]
        path = LineString(pts)
        if zone_m is not None:
            assert path.intersection(zone_m).length < 1e-6
        grid_legs = [
            LineString([pts[i + 1], pts[i + 2]])
            for i in range(len(s.waypoints) - 1)
            if s.waypoints[i].grid_id == "G" and s.waypoints[i + 1].grid_id == "G" and pts[i + 1] != pts[i + 2]
        ]
        for leg in grid_legs:
            assert leg.difference(grid_m).length < 1e-6
    assert plan.grids[0].coverage_ratio >= 0.97


def test_concave_grid_with_hole_covered_and_inside():
    u_shape = Polygon([(0, 0), (600, 0), (600, 500), (400, 500), (400, 150), (200, 150), (200, 500), (0, 500)],
                      [[(50, 30), (120, 30), (120, 100), (50, 100)]])
    cam = PRESETS["m3e"]
    w, h = cam.footprint_m(80)
    r = plan_part("U", 0, u_shape, u_shape, SweepParams(cam.line_spacing_m(80, 0.2), w, h), FlightModel(), (0, -100))
    path = LineString(r.xy())
    assert path.difference(u_shape.buffer(1e-3)).length == pytest.approx(0, abs=1e-6)
    assert r.imaged_area_m2 / r.area_m2 > 0.995
    kinds = [p.kind for p in r.points if p.kind != "transit"]
    assert kinds == ["line_start", "line_end"] * (len(kinds) // 2)


def test_sweep_angle_follows_long_axis():
    rect = shapely.affinity.rotate(shapely.box(0, 0, 1500, 270), 30, origin=(0, 0))
    cam = PRESETS["m3e"]
    w, h = cam.footprint_m(80)
    r = plan_part("R", 0, rect, rect, SweepParams(cam.line_spacing_m(80, 0.2), w, h), FlightModel())
    assert r.angle_deg == pytest.approx(30, abs=0.5)
    assert r.lines == 3  # 270 m across / 90 m spacing


def test_line_ends_trimmed_to_half_a_footprint_inside():
    """A rectangle swept along its long side: each line starts and ends half a footprint
    inside the short edges (the camera images that far ahead/behind), still fully imaged."""
    cam = PRESETS["m3e"]
    w, h = cam.footprint_m(80)
    rect = shapely.box(0, 0, 1000, 270)
    r = plan_part("R", 0, rect, rect, SweepParams(cam.line_spacing_m(80, 0.2), w, h), FlightModel(), angle_deg=0.0)
    xs = [p.x for p in r.points if p.kind != "transit"]
    assert min(xs) == pytest.approx(h / 2, abs=0.01) and max(xs) == pytest.approx(1000 - h / 2, abs=0.01)
    assert r.imaged_area_m2 / r.area_m2 > 0.999
    untrimmed = plan_part("R", 0, rect, rect, SweepParams(cam.line_spacing_m(80, 0.2), w, h, trim_ends=False),
                          FlightModel(), angle_deg=0.0)
    assert r.time_s < untrimmed.time_s - 3 * h / FlightModel().speed_m_s * 0.99  # 3 lines, h shorter each


def test_per_line_trigger_puts_a_photo_on_the_line_end():
    from geo.planner import line_triggers

    xy = np.asarray([[0, 0], [100, 0], [100, 90], [0.6, 90], [0, 90]], dtype=float)
    trig = line_triggers(xy, ["line_start", "line_end", "line_start", "line_end", "transit"], 33.85)
    assert trig[0] == pytest.approx(100 / 3, abs=1e-3) and trig[0] <= 33.85
    assert trig[2] == pytest.approx(99.4 / 3, abs=1e-3)
    assert trig[1] is None and trig[3] is None and trig[4] is None


def test_edge_lines_fill_wedges_along_a_slanted_edge_inside_the_region():
    """Horizontal sweep lines end where a shallow slanted edge crosses them, leaving a wedge at
    each line end; lines along that edge, inside the region, image the wedges."""
    from geo.coverage import _edge_gap_lines, _swath_boxes, sweep_segments, trim_segments

    cam = PRESETS["m3e"]
    w, h = cam.footprint_m(80)
    p = SweepParams(cam.line_spacing_m(80, 0.2), w, h)
    region = Polygon([(0, 0), (1200, 0), (1200, 450), (0, 120)])  # top edge rises ~15°
    segs = trim_segments(region, sweep_segments(region, p.spacing_m), p)
    covered = shapely.union_all(_swath_boxes(segs, w, h))
    missed = region.difference(covered).area
    assert missed > 0.003 * region.area  # the wedges are real
    lines, covered2 = _edge_gap_lines(region, covered, p, 0.003 * region.area)
    assert len(lines) >= 1
    for x0, y0, x1, y1 in lines:
        assert region.buffer(1e-6).covers(LineString([(x0, y0), (x1, y1)]))
    assert region.difference(covered2).area < missed / 2
