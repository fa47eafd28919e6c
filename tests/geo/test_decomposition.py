"""Cell decomposition: boustrophedon cells, cuts, and per-cell sweeps in plan_region."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely import affinity
from shapely.geometry import LineString, Polygon, box

from geo.camera import PRESETS
from geo.coverage import FlightModel, SweepParams, plan_part, plan_region, sweep_segments
from geo.decomposition import boustrophedon_cells, candidate_cuts, critical_vertices

CAM = PRESETS["m3e"]
W, H = CAM.footprint_m(80)
P = SweepParams(CAM.line_spacing_m(80, 0.2), W, H)
U_SHAPE = Polygon([(0, 0), (600, 0), (600, 500), (400, 500), (400, 150), (200, 150), (200, 500), (0, 500)])


def _partition_ok(region: Polygon, cells: list[Polygon]) -> None:
    assert sum(c.area for c in cells) == pytest.approx(region.area, rel=1e-6)
    for i, a in enumerate(cells):
        assert region.buffer(1e-2).covers(a)
        for b in cells[i + 1:]:
            assert a.intersection(b).area < 1e-3


def _monotone(cell: Polygon, angle_deg: float) -> bool:
    """Every sweep line along ``angle_deg`` meets the cell in at most one interval."""
    rot = affinity.rotate(cell, -angle_deg, origin=(0.0, 0.0))
    segs = sweep_segments(rot, 7.0, 0.0)
    _, counts = np.unique(segs[:, 0], return_counts=True)
    return bool(np.all(counts <= 1))


@pytest.mark.parametrize(("angle", "min_cells"), [(0.0, 2), (33.0, 2), (90.0, 1)])
def test_u_shape_gives_monotone_cells_that_partition_it(angle, min_cells):
    """Across its arms the U needs cells (>= 2); along them (90°) every sweep line already
    meets it once, so it stays one cell."""
    cells = boustrophedon_cells(U_SHAPE, angle)
    _partition_ok(U_SHAPE, cells)
    assert len(cells) >= min_cells
    assert all(_monotone(c, angle) for c in cells)
    assert not _monotone(U_SHAPE, 0.0) and _monotone(U_SHAPE, 90.0)


def test_convex_grid_is_one_cell_at_any_angle():
    rect = affinity.rotate(box(0, 0, 800, 300), 17, origin=(0, 0))
    for a in (0.0, 17.0, 45.0, 90.0, 123.0):
        assert critical_vertices(rect, a) == []
        cells = boustrophedon_cells(rect, a)
        assert len(cells) == 1 and cells[0].symmetric_difference(rect).area < 1e-6


def test_hole_gives_cells_around_it():
    ring = Polygon(box(0, 0, 600, 400).exterior.coords, [box(250, 150, 350, 250).exterior.coords])
    cells = boustrophedon_cells(ring, 0.0)
    _partition_ok(ring, cells)
    assert len(cells) >= 3 and all(len(c.interiors) == 0 for c in cells)
    cuts = candidate_cuts(ring, [0.0], 1000.0)
    assert any(len(c) >= 2 for c in cuts)


def test_l_shape_is_swept_per_cell_inside_each_cell_and_faster():
    """Two long arms at right angles: one sweep angle gives one arm many short lines; a cell
    per arm, each swept along its length, is cheaper. Every survey line lies in its cell."""
    ell = Polygon([(0, 0), (1500, 0), (1500, 270), (270, 270), (270, 1500), (0, 1500)])
    model = FlightModel()
    whole = plan_part("L", 0, ell, ell, P, model)
    r = plan_region("L", 0, ell, ell, P, model)
    assert r is not None and len(r.cells) >= 2
    angles = sorted(a % 180.0 for _, a in r.cells)
    assert angles[-1] - angles[0] == pytest.approx(90.0, abs=5.0)
    assert r.time_s < whole.time_s * 0.95
    cells = [c for c, _ in r.cells]
    _partition_ok(ell, cells)
    pts = r.points
    lines = [LineString([(a.x, a.y), (b.x, b.y)]) for a, b in zip(pts[:-1], pts[1:], strict=True)
             if a.kind == "line_start" and b.kind == "line_end"]
    assert lines
    for ln in lines:
        assert any(c.buffer(1e-3).covers(ln) for c in cells)
    assert LineString(r.xy()).difference(ell.buffer(1e-3)).length == pytest.approx(0.0, abs=1e-6)
    assert r.imaged_area_m2 / r.area_m2 >= 0.995


def test_convex_part_keeps_the_single_sweep():
    rect = affinity.rotate(box(0, 0, 1200, 400), 25, origin=(0, 0))
    model = FlightModel()
    r = plan_region("R", 0, rect, rect, P, model)
    w = plan_part("R", 0, rect, rect, P, model)
    assert r.time_s == pytest.approx(w.time_s) and r.lines == w.lines
    assert shapely.equals(r.cells[0][0], rect) if r.cells else True


def test_wedge_lines_run_along_the_edge_inside_and_image_the_wedges():
    """A shallow slanted edge leaves a wedge beyond each line end; the wedge lines run along
    that edge (not across it), stay inside the region and image most of what was missed."""
    from geo.coverage import _line_swaths, _swath_boxes, _wedge_lines, trim_segments

    region = Polygon([(0, 0), (1200, 0), (1200, 450), (0, 120)])  # top edge rises ~15°
    segs = trim_segments(region, sweep_segments(region, P.spacing_m), P)
    covered = shapely.union_all(_swath_boxes(segs, W, H))
    missed = region.difference(covered).area
    assert missed > P.max_unimaged * region.area
    lines = _wedge_lines(region, covered, P)
    assert len(lines) >= 1
    edge = np.degrees(np.arctan2(330.0, 1200.0))
    for x0, y0, x1, y1 in lines:
        assert region.buffer(1e-6).covers(LineString([(x0, y0), (x1, y1)]))
        assert abs(np.degrees(np.arctan2(y1 - y0, x1 - x0)) % 180.0 - edge) < 1.0
    after = region.difference(shapely.union_all([covered, *_line_swaths(lines, W, H)])).area
    assert after <= P.max_unimaged * region.area + 1e-6
