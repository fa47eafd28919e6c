"""A QGroundControl-style survey baseline, for side-by-side benchmarks.

QGC's Survey item lays transects at one fixed angle and flies each from the first to the
last crossing of the polygon's outer edge, so it overflies concave notches and ignores
holes and no-fly zones. Lines alternate direction (serpentine) and are joined straight.
Works in local metres. Deliberately generous to the baseline: no turnaround distance (QGC
adds one beyond each transect end by default) and lines centred in the polygon like
SkyGrid's (QGC starts them from its bounding box). Flown cost uses the same
:class:`geo.coverage.FlightModel` as SkyGrid (length at cruise speed + time per degree of
turn), so each line end costs the same U-turn for both. ``angle_deg`` is the transect
direction counter-clockwise from east: 0 = east-west; QGC's own 0° (north-south) is 90 here.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import Polygon


def qgc_survey(polygon: Polygon, spacing_m: float, angle_deg: float = 0.0) -> np.ndarray:
    """Waypoints (k, 2) in local metres: line start/end pairs, first-to-last crossing, serpentine."""
    outer = Polygon(polygon.exterior.coords)  # QGC ignores holes
    rot = affinity.rotate(outer, -angle_deg, origin=(0.0, 0.0))
    minx, miny, maxx, maxy = rot.bounds
    h = maxy - miny
    n = max(1, math.ceil(h / spacing_m - 1e-9))
    v0 = miny + (h - (n - 1) * spacing_m) / 2.0
    pts = []
    for k in range(n):
        v = v0 + k * spacing_m
        inter = shapely.intersection(shapely.linestrings([[minx - 1, v], [maxx + 1, v]]), rot)
        xs = shapely.get_coordinates(inter)[:, 0]
        if len(xs) == 0:
            continue
        a, b = float(xs.min()), float(xs.max())
        if len(pts) // 2 % 2 == 1:
            a, b = b, a
        pts += [(a, v), (b, v)]
    arr = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    return np.column_stack([arr[:, 0] * c - arr[:, 1] * s, arr[:, 0] * s + arr[:, 1] * c])
