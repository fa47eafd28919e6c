"""Cell decomposition of a coverage region: boustrophedon cells and single cuts.

All geometry in local metres. A *cut* is a chord of the region through one of its vertices
along a given direction: the piece of the line through that vertex, clipped to the region,
that contains the vertex. Cutting a region along chords splits it into cells that can each
be swept at their own angle (Fields2Cover's "decomposition" stage).

The boustrophedon decomposition for a sweep direction ``angle_deg`` (Choset & Pignon) cuts
along that direction through every *critical* vertex: a vertex (or a run of vertices
collinear with the sweep direction) that is a local extremum across the sweep direction
and where the region continues on at least one side along the sweep line. Each resulting
cell is monotone across the sweep: every sweep line meets it in one interval, so a
serpentine covers it without transits, and no sweep line is cut by a cell boundary.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import LineString, Polygon

#: tolerance (m) for "on the line" / "touches the vertex"
EPS = 1e-6


def _rings(poly: Polygon) -> list[np.ndarray]:
    """Exterior and interior rings as (n, 2) arrays without the closing vertex."""
    return [np.asarray(r.coords)[:-1] for r in (poly.exterior, *poly.interiors)]


def chord(region: Polygon, vertex: tuple[float, float], angle_deg: float) -> LineString | None:
    """The chord of ``region`` along ``angle_deg`` (degrees from east) through ``vertex``.

    The line through the vertex is clipped to the region; the pieces that touch the vertex
    are joined. Returns None when the chord is a single point (the vertex is an extreme
    point along that direction) or runs only along the boundary.
    """
    minx, miny, maxx, maxy = region.bounds
    big = 2.0 * math.hypot(maxx - minx, maxy - miny) + 1.0
    t = math.radians(angle_deg)
    d = np.array([math.cos(t), math.sin(t)])
    v = np.asarray(vertex, dtype=np.float64)
    line = shapely.linestrings([v - d * big, v + d * big])
    inter = shapely.intersection(line, region)
    pt = shapely.points(v)
    pieces = [g for g in shapely.get_parts(inter)
              if g.geom_type == "LineString" and shapely.distance(g, pt) < 1e-3 and g.length > EPS]
    if not pieces:
        return None
    proj = np.concatenate([shapely.get_coordinates(g) @ d for g in pieces])
    lo, hi = float(proj.min()), float(proj.max())
    if hi - lo < 1e-3:
        return None
    c = LineString([v + d * (lo - v @ d), v + d * (hi - v @ d)])
    # a chord that only runs along the region's boundary splits nothing
    if shapely.difference(c, region.boundary.buffer(1e-4)).length < 1e-3:
        return None
    return c


def split(region: Polygon, chords: list[LineString]) -> list[Polygon]:
    """The faces of ``region`` cut along ``chords`` (holes stay holes), largest first."""
    if not chords:
        return [region]
    # extend each chord a hair so noding always meets the boundary it ends on
    ext = []
    for c in chords:
        a, b = np.asarray(c.coords[0]), np.asarray(c.coords[-1])
        u = (b - a) / max(float(np.hypot(*(b - a))), 1e-12)
        ext.append(LineString([a - u * 1e-4, b + u * 1e-4]))
    noded = shapely.union_all([region.boundary, *ext])
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    out = []
    shapely.prepare(region)
    for f in faces:
        if f.area <= 1e-6:
            continue
        if region.contains(f.representative_point()):
            # polygonize's faces may keep a hair of the chord extension: clip back to the region
            # snap to a 1 mm grid: polygonize leaves near-degenerate slivers where a chord meets
            # the boundary at a shallow angle, and GEOS overlay chokes on those later
            g = shapely.make_valid(shapely.set_precision(f.intersection(region), 1e-3))
            out.extend(p for p in shapely.get_parts(g) if isinstance(p, Polygon) and p.area > 1e-6 and p.is_valid)
    return sorted(out, key=lambda p: -p.area)


def critical_vertices(region: Polygon, angle_deg: float) -> list[tuple[float, float]]:
    """Vertices where the number of sweep-line intervals changes (boustrophedon events).

    For a run of vertices along the sweep direction both ends are returned.

    In a frame rotated so the sweep runs along +x, a vertex run (consecutive vertices with
    the same y, within 1 mm) is an extremum in y when its neighbours before and after lie on
    the same side; it is critical when the sweep line through it continues inside the
    region beyond the run (a reflex extremum: the region splits or merges there).
    """
    rot = affinity.rotate(region, -angle_deg, origin=(0.0, 0.0))
    out = []
    for ring in _rings(rot):
        n = len(ring)
        if n < 3:
            continue
        y = ring[:, 1]
        seen = set()
        for i in range(n):
            # extend the run of equal y around i
            j0 = i
            while abs(y[(j0 - 1) % n] - y[i]) < 1e-3 and (i - j0) < n:
                j0 -= 1
            j1 = i
            while abs(y[(j1 + 1) % n] - y[i]) < 1e-3 and (j1 - i) < n:
                j1 += 1
            key = j0 % n
            if key in seen or (j1 - j0) >= n - 1:
                continue
            seen.add(key)
            yp, yn = y[(j0 - 1) % n], y[(j1 + 1) % n]
            if (yp - y[i]) * (yn - y[i]) <= 0:
                continue  # monotone through the run: not an extremum
            run = ring[[k % n for k in range(j0, j1 + 1)]]
            xs = run[:, 0]
            v = run[int(np.argmin(xs))]
            c = chord(rot, (float(v[0]), float(v[1])), 0.0)
            if c is None:
                continue
            cx = shapely.get_coordinates(c)[:, 0]
            if cx.max() - cx.min() > xs.max() - xs.min() + 1e-3:
                out.append((float(v[0]), float(v[1])))
                if xs.max() - xs.min() > 1e-3:  # a run along the sweep: its chord may go on from either end
                    e = run[int(np.argmax(xs))]
                    out.append((float(e[0]), float(e[1])))
    t = math.radians(angle_deg)
    cs, sn = math.cos(t), math.sin(t)
    return [(x * cs - y_ * sn, x * sn + y_ * cs) for x, y_ in out]


def boustrophedon_cells(region: Polygon, angle_deg: float) -> list[Polygon]:
    """Boustrophedon decomposition of ``region`` for sweep lines along ``angle_deg``.

    Every cell is met by each sweep line in at most one interval; a convex region is one
    cell. Cells are returned largest first.
    """
    chords = [c for v in critical_vertices(region, angle_deg) if (c := chord(region, v, angle_deg)) is not None]
    return split(region, chords)


def reflex_vertices(region: Polygon, min_turn_deg: float = 5.0) -> list[tuple[tuple[float, float], float, float]]:
    """Reflex vertices of every ring: ((x, y), direction of the incoming edge, of the outgoing edge).

    Directions in degrees from east (mod 180). A vertex counts when the boundary turns away
    from the region by more than ``min_turn_deg`` there. Hole vertices are all reflex seen
    from the region, so only the sharp ones count; for smooth (many-sided) holes use the
    boustrophedon cuts instead.
    """
    out = []
    poly = shapely.geometry.polygon.orient(region, sign=1.0)  # exterior CCW, holes CW
    for ring in _rings(poly):
        n = len(ring)
        if n < 3:
            continue
        prev, nxt = np.roll(ring, 1, axis=0), np.roll(ring, -1, axis=0)
        a, b = ring - prev, nxt - ring
        cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
        ang = np.degrees(np.arctan2(cross, (a * b).sum(1)))  # signed turn, left positive
        for k in np.flatnonzero(ang < -min_turn_deg):
            din = math.degrees(math.atan2(a[k, 1], a[k, 0])) % 180.0
            dout = math.degrees(math.atan2(b[k, 1], b[k, 0])) % 180.0
            out.append(((float(ring[k, 0]), float(ring[k, 1])), din, dout))
    return out


def candidate_cuts(region: Polygon, sweep_angles: list[float], min_piece_m2: float) -> list[list[Polygon]]:
    """Ways to cut ``region`` in two or more cells, each a list of cells of at least ``min_piece_m2``.

    Cuts tried: at each reflex vertex of the outline, the extensions of its two edges (the
    classic convex-decomposition cut) and the chords along each of ``sweep_angles``; around
    each hole, the pair of boustrophedon chords at its extremes for each sweep angle (one
    chord alone does not disconnect a ring-shaped region).
    """
    seen: set[tuple] = set()
    out: list[list[Polygon]] = []

    def add(chords: list[LineString]) -> None:
        key = tuple(sorted(tuple(np.round(shapely.get_coordinates(c).ravel(), 1)) for c in chords))
        if key in seen:
            return
        seen.add(key)
        cells = split(region, chords)
        if len(cells) >= 2 and min(c.area for c in cells) >= min_piece_m2:
            out.append(cells)

    for v, din, dout in reflex_vertices(Polygon(region.exterior.coords)):
        for a in {round(din, 3), round(dout, 3), *(round(s % 180.0, 3) for s in sweep_angles)}:
            c = chord(region, v, a)
            if c is not None:
                add([c])
    for a in sweep_angles:
        crit = critical_vertices(region, a)
        for hole in region.interiors:
            hp = Polygon(hole.coords)
            hv = [v for v in crit if hp.exterior.distance(shapely.geometry.Point(v)) < 1e-3]
            chords = [c for v in hv if (c := chord(region, v, a)) is not None]
            if len(chords) >= 2:
                add(chords)
    return out
