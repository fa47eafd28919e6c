"""Coverage of one grid: boustrophedon survey lines, a cell decomposition where it pays.

Everything here is in local metres (see :class:`geo.projection.LocalFrame`). The region to
image is ``grid - buffered no-fly zones``; the region one may fly in is ``grid grown by
edge_margin_m - buffered no-fly zones``. Each connected part is planned in stages, each a
small strategy with the flight-time objective (after Fields2Cover):

1. swaths (:func:`plan_part`): lines in a frame rotated to the sweep angle, clipped to the
   region with shapely (concave outlines and holes split a line into segments), ends
   trimmed to half a footprint inside, the cheapest angle and line phase by routed cost;
2. route: segments chained nearest-end-first from many starts, improved by 2-opt and
   Or-opt with the turn cost in every connection; every connection that would leave the
   free space is replaced by a shortest path inside it (:class:`geo.routing.FreeSpace`);
   areas the swaths miss (wedges at slanted edges, slivers in narrow lobes) get extra
   short lines or lines along the edge until the coverage goal is met;
3. decomposition (:func:`plan_region`): concave parts are also cut into cells
   (:mod:`geo.decomposition`), each swept at its own angle, all lines ordered together;
   the cut is kept only where the whole route is faster than the single sweep.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon

from geo.routing import FreeSpace, polyline_length, turn_angles_deg

Point2 = tuple[float, float]


@dataclass(frozen=True)
class FlightModel:
    """Multicopter time model. Speeds in m/s, times in seconds.

    A waypoint with a heading change of ``a`` degrees costs ``turn_s * a / 180`` extra seconds
    (deceleration, yaw, acceleration). Climb and descent happen over home.
    """

    speed_m_s: float = 10.0
    turn_s: float = 6.0
    climb_m_s: float = 3.0
    descend_m_s: float = 2.0
    #: take-off, landing and arming overhead per sortie
    overhead_s: float = 30.0

    def path_time_s(self, points) -> float:
        """Seconds to fly a polyline of local metres at cruise speed, turns included."""
        return polyline_length(points) / self.speed_m_s + float(turn_angles_deg(points).sum()) / 180.0 * self.turn_s

    def vertical_time_s(self, rel_alt_m: float) -> float:
        """Climb to and descend from ``rel_alt_m`` plus the per-sortie overhead."""
        return rel_alt_m / self.climb_m_s + rel_alt_m / self.descend_m_s + self.overhead_s


@dataclass
class RoutePoint:
    x: float
    y: float
    kind: str  # "line_start" | "line_end" | "transit"


@dataclass
class CellRoute:
    """The route over one connected part of one grid, in local metres."""

    grid_id: str
    part: int
    points: list[RoutePoint]
    angle_deg: float
    lines: int
    imaged_area_m2: float
    area_m2: float
    length_m: float = 0.0
    time_s: float = 0.0
    #: the cells this route sweeps, in flying order: (cell polygon in local metres, sweep angle deg)
    cells: list[tuple[Polygon | None, float]] = field(default_factory=list)

    @property
    def entry(self) -> Point2:
        return (self.points[0].x, self.points[0].y)

    @property
    def exit(self) -> Point2:
        return (self.points[-1].x, self.points[-1].y)

    def reversed(self) -> CellRoute:
        """The same route flown backwards (line starts and ends swap roles)."""
        swap = {"line_start": "line_end", "line_end": "line_start", "transit": "transit"}
        pts = [RoutePoint(p.x, p.y, swap[p.kind]) for p in reversed(self.points)]
        return CellRoute(self.grid_id, self.part, pts, self.angle_deg, self.lines, self.imaged_area_m2,
                         self.area_m2, self.length_m, self.time_s, list(reversed(self.cells)))

    def xy(self) -> np.ndarray:
        return np.asarray([(p.x, p.y) for p in self.points], dtype=np.float64).reshape(-1, 2)


@dataclass(frozen=True)
class SweepParams:
    """Camera-derived spacing (m) and footprint (m), plus planning knobs."""

    spacing_m: float
    footprint_w_m: float
    footprint_h_m: float
    min_segment_m: float = 1.0
    angle_step_deg: float = 10.0
    fill_gaps: bool = True
    #: gaps between swaths are filled with extra lines until at most this fraction stays unimaged:
    #: 99.7 % planned, so the promised >= 99.5 % holds for the frames actually captured (a
    #: video stream sampled by distance images slightly less than the planned photos; at 0.005
    #: one demo grid of 18 ended at 99.4 %). Costs 0.003x of path (bench_geo 0.843x -> 0.846x).
    max_unimaged: float = 0.003
    #: shorten lines whose ends the footprint can image from inside (saves length, same imaging)
    trim_ends: bool = True
    #: fill wedges along slanted edges with one line along the edge where that is cheaper
    edge_gap_lines: bool = True
    #: a part without holes whose area is within this fraction of its convex hull's gets the
    #: small angle/phase search (4 angles x 2 phases instead of 12 x 4)
    nearly_convex: float = 0.05
    #: try cutting concave parts into cells swept at their own angles (:func:`plan_region`)
    decompose: bool = True
    #: seconds per m² left unimaged below the goal: ranks bare sweeps (``fill_gaps=False``,
    #: a cell's lines before wedges are judged on the union of cells) by time plus this, so
    #: a sweep that leaves big wedges loses to a slightly longer one that leaves none (a
    #: wedge line costs a U-turn and a detour, ~20 s, for ~1,000 m²)
    gap_s_per_m2: float = 0.02


def _rotate_xy(a: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate points of the sweep frame (u along lines, v across) back to local x/y."""
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    return np.column_stack([a[:, 0] * c - a[:, 1] * s, a[:, 0] * s + a[:, 1] * c])


def sweep_segments(region_rot: Polygon | MultiPolygon, spacing: float, min_len: float = 1.0, phase: float = 0.0) -> np.ndarray:
    """Horizontal lines ``spacing`` apart clipped to ``region_rot``: rows (line_index, u0, u1, v).

    Lines are centred in the region's height so both outer margins are equal and at most
    half a spacing.
    """
    minx, miny, maxx, maxy = region_rot.bounds
    height = maxy - miny
    n = max(1, math.ceil(height / spacing - 1e-9))
    v0 = miny + (height - (n - 1) * spacing) / 2.0
    vs = v0 + spacing * np.arange(n)
    if phase:
        # shifted by a fraction of the spacing (one more line so both edges stay swept)
        vs = v0 + spacing * (phase + np.arange(-1, n + 1))
        vs = vs[(vs > miny) & (vs < maxy)]
        n = len(vs)
        if n == 0:
            return np.zeros((0, 4))
    coords = np.empty((n, 2, 2))
    coords[:, 0, 0], coords[:, 1, 0] = minx - 1.0, maxx + 1.0
    coords[:, 0, 1] = coords[:, 1, 1] = vs
    lines = shapely.linestrings(coords)
    inter = shapely.intersection(lines, region_rot)
    parts, idx = shapely.get_parts(inter, return_index=True)
    keep = (shapely.get_type_id(parts) == 1) & (shapely.length(parts) >= min_len)  # 1 = LineString
    if not np.any(keep):
        return np.zeros((0, 4))
    b = shapely.bounds(parts[keep])
    ii = idx[keep]
    a = np.column_stack([ii.astype(np.float64), b[:, 0], b[:, 2], vs[ii]])
    a = a[np.lexsort((a[:, 1], a[:, 0]))]
    # pieces that only touch (a line running along a hole's edge) are one segment
    touch = (a[1:, 0] == a[:-1, 0]) & (a[1:, 1] <= a[:-1, 2] + 1e-6)
    if not np.any(touch):
        return a
    merged = [a[0].copy()]
    for r in a[1:]:
        last = merged[-1]
        if r[0] == last[0] and r[1] <= last[2] + 1e-6:
            last[2] = max(last[2], r[2])
        else:
            merged.append(r.copy())
    return np.asarray(merged)


def trim_segments(region_rot, segs: np.ndarray, p: SweepParams) -> np.ndarray:
    """Pull each line's ends inwards as far as the camera footprint still images the region.

    The camera sees ``footprint_h_m / 2`` ahead of the first photo and behind the last, so a
    line need not run to the edge: it starts half a footprint inside the region's extent
    within its strip (``v ± spacing / 2``, the band this line is responsible for) and ends
    half a footprint before it. Slanted edges trim less (the strip reaches further than the
    centre line). Lines are never lengthened beyond their clipped extent, so they stay inside
    the region. This relies on a photo at both line ends: the planner gives every line its
    own trigger distance ``length / ceil(length / d)`` (<= the nominal ``d``, so front overlap
    only grows) so the last photo falls on the line end. Returns a new (n, 4) array.
    """
    if not len(segs) or not p.trim_ends:
        return segs
    h2, s2 = p.footprint_h_m / 2.0, p.spacing_m / 2.0
    u0, u1, v = segs[:, 1], segs[:, 2], segs[:, 3]
    # one strip per line (not per segment): its pieces' extents bound what each segment images
    lines, inv = np.unique(v, return_inverse=True)
    minx, _, maxx, _ = region_rot.bounds
    inter = shapely.intersection(shapely.box(minx - 1.0, lines - s2, maxx + 1.0, lines + s2), region_rot)
    parts, idx = shapely.get_parts(inter, return_index=True)
    lo, hi = u0.copy(), u1.copy()
    if len(parts):
        b = shapely.bounds(parts)
        single = np.bincount(idx, minlength=len(lines)) == 1
        first = np.full(len(lines), -1)
        first[idx[::-1]] = np.arange(len(idx))[::-1]
        for k in range(len(segs)):
            li = inv[k]
            if single[li]:
                j = first[li]
            else:  # several pieces on this line: the one holding the segment's midpoint
                mid = shapely.points((u0[k] + u1[k]) / 2.0, v[k])
                cand = np.flatnonzero(idx == li)
                hit = cand[shapely.intersects(parts[cand], mid)]
                if not len(hit):
                    continue
                j = hit[0]
            lo[k], hi[k] = min(u0[k], b[j, 0]), max(u1[k], b[j, 2])
    a = np.maximum(u0, np.minimum(lo + h2, u1))
    b_ = np.minimum(u1, np.maximum(hi - h2, a))
    # keep a minimum length so line start and end stay distinct waypoints
    short = (b_ - a) < p.min_segment_m
    if np.any(short):
        mid = (a + b_) / 2.0
        half = np.minimum(p.min_segment_m, u1 - u0) / 2.0
        a = np.where(short, np.maximum(u0, np.minimum(mid - half, u1 - 2 * half)), a)
        b_ = np.where(short, np.minimum(u1, a + 2 * half), b_)
    out = segs.copy()
    out[:, 1], out[:, 2] = a, b_
    return out


def _angle_candidates(region: Polygon | MultiPolygon, step: float) -> list[float]:
    """Sweep angles worth trying: along every convex-hull edge, plus a coarse fan."""
    hull = region.convex_hull
    cands = list(np.arange(0.0, 180.0, step)) if step > 0 else []
    if isinstance(hull, Polygon):
        c = np.asarray(hull.exterior.coords)
        d = np.diff(c, axis=0)
        lengths = np.hypot(*d.T)
        for (dx, dy), ln in zip(d, lengths, strict=True):
            if ln > 1e-6:
                cands.append(math.degrees(math.atan2(dy, dx)) % 180.0)
    out: list[float] = []
    for a in sorted(cands):
        if not out or min(abs(a - b) % 180.0 for b in out) > 1.0:
            out.append(a)
    if len(out) > 1 and (180.0 - out[-1] + out[0]) < 1.0:
        out.pop()
    return out


def _estimate_cost_m(segs: np.ndarray, spacing: float, turn_m: float) -> float:
    """Cheap cost of a segment set: lengths + one connection and two turns per segment."""
    if not len(segs):
        return math.inf
    return float((segs[:, 2] - segs[:, 1]).sum() + len(segs) * (spacing + turn_m))


def _order_segments(ends: np.ndarray, dmat: np.ndarray, dstart: np.ndarray) -> list[tuple[int, bool]]:
    """Chain segments nearest-endpoint-first (serpentine within a cell, then the nearest cell).

    ``ends`` holds segment i's start at row 2i and end at 2i+1; ``dmat`` the connection
    lengths between endpoints; ``dstart`` the distance from the start point. Returns
    (segment, flipped) pairs.
    """
    m = len(ends) // 2
    left = np.ones(2 * m, dtype=bool)
    d = dstart.astype(np.float64).copy()
    out = []
    for _ in range(m):
        dd = np.where(left, d, np.inf)
        k = int(np.argmin(dd))
        i, e = divmod(k, 2)
        out.append((i, e == 1))
        left[2 * i : 2 * i + 2] = False
        d = dmat[2 * i + (1 - e)]
    return out


def _chain_length(order: list[tuple[int, bool]], dmat: np.ndarray) -> float:
    """Sum of connection lengths (m) of a chain of (segment, flipped) pairs."""
    total = 0.0
    for (i, fi), (j, fj) in zip(order[:-1], order[1:], strict=True):
        total += float(dmat[2 * i + (0 if fi else 1), 2 * j + (1 if fj else 0)])
    return total


def _turn_penalty_m(ends: np.ndarray, turn_m: float, dirs: np.ndarray | None = None) -> np.ndarray:
    """(2m, 2m) turn cost in metre-equivalents of connecting exit endpoint a to entry endpoint b.

    Segment i runs from row 2i to row 2i+1 in direction ``dirs[i]`` (unit; default +x, the
    sweep frame's line direction). Leaving at row 2i+1 heads ``dirs[i]``, at row 2i (flown
    reversed) ``-dirs[i]``; entering at row 2j heads ``dirs[j]``, at 2j+1 ``-dirs[j]``. The cost
    is ``turn_m / 180°`` times the heading change into the straight connection and out of
    it (a wall-hugging transit turns more; this is the lower bound). Symmetric under
    reversing the connection, so 2-opt stays valid.
    """
    n = len(ends)
    if turn_m <= 0:
        return np.zeros((n, n))
    if dirs is None:
        dirs = np.tile([1.0, 0.0], (n // 2, 1))
    sign = np.where(np.arange(n) % 2 == 1, 1.0, -1.0)[:, None]
    out_h = np.repeat(dirs, 2, axis=0) * sign  # exit heading at row a
    in_h = -out_h  # entry heading at row b
    d = ends[None, :, :] - ends[:, None, :]  # a -> b
    ln = np.hypot(d[..., 0], d[..., 1])
    safe = np.where(ln > 1e-9, ln, 1.0)
    cx, cy = d[..., 0] / safe, d[..., 1] / safe
    a1 = np.degrees(np.arccos(np.clip(out_h[:, None, 0] * cx + out_h[:, None, 1] * cy, -1.0, 1.0)))
    a2 = np.degrees(np.arccos(np.clip(in_h[None, :, 0] * cx + in_h[None, :, 1] * cy, -1.0, 1.0)))
    direct = np.degrees(np.arccos(np.clip(out_h @ in_h.T, -1.0, 1.0)))
    ang = np.where(ln > 1e-9, a1 + a2, direct)
    return ang / 180.0 * turn_m


def _serpentine(segs: np.ndarray, ends: np.ndarray, start: Point2) -> list[tuple[int, bool]]:
    """Order for a convex part (one segment per line, any straight connection allowed):
    lines bottom-up or top-down, alternating direction; of the four variants the one whose
    entry is nearest ``start`` is flown. O(m), no distance matrix needed."""
    m = len(segs)
    idx = np.argsort(segs[:, 3], kind="stable")
    best: tuple[float, list[tuple[int, bool]]] | None = None
    for seq in (idx, idx[::-1]):
        for first_flip in (False, True):
            order = [(int(i), bool(first_flip ^ (k % 2 == 1))) for k, i in enumerate(seq)]
            i, f = order[0]
            d = math.dist(start, ends[2 * i + (1 if f else 0)])
            if best is None or d < best[0]:
                best = (d, order)
    assert best is not None and len(best[1]) == m
    return best[1]


def _best_open_chain(ends: np.ndarray, dmat: np.ndarray, start: Point2, keep: int = 3,
                     starts: np.ndarray | None = None, or_opt: bool = True) -> list[tuple[int, bool]]:
    """Segment order for one part with a free entry: the route is a job the patrol tour may
    enter from either end, so starting it where a serpentine naturally begins (an extreme
    line) beats starting at the line end nearest to some outside point, which can force a
    long transit back across the part. Every endpoint is tried as the start of a
    nearest-end chain, the ``keep`` shortest are improved by 2-opt, and the shortest wins;
    ``start`` only breaks ties. ``starts`` limits the endpoints tried (default: all).
    """
    m = len(ends) // 2
    if m == 1:
        d0 = math.dist(start, ends[0]), math.dist(start, ends[1])
        return [(0, d0[1] < d0[0])]
    tries = []
    for e in (range(2 * m) if starts is None else starts.tolist()):
        ds = np.full(2 * m, np.inf)
        ds[e] = 0.0
        order = _order_segments(ends, dmat, ds)
        tries.append((_chain_length(order, dmat), e, order))
    tries.sort(key=lambda t: (t[0], t[1]))
    free = np.zeros(2 * m)
    best: tuple[float, float, list[tuple[int, bool]]] | None = None
    for _, _, order in tries[:keep]:
        order = _two_opt(order, dmat, free)
        for _ in range(3 if or_opt else 0):
            moved = _or_opt(order, dmat)
            if _chain_length(moved, dmat) >= _chain_length(order, dmat) - 1e-6:
                break
            order = _two_opt(moved, dmat, free)
        i, f = order[0]
        s0 = ends[2 * i + (1 if f else 0)]
        key = (round(_chain_length(order, dmat), 6), math.dist(start, s0))
        if best is None or key < best[:2]:
            best = (*key, order)
    assert best is not None
    return best[2]


def _or_opt(order: list[tuple[int, bool]], dmat: np.ndarray, max_block: int = 3) -> list[tuple[int, bool]]:
    """Move blocks of up to ``max_block`` consecutive segments elsewhere in the open chain,
    flown either way (Or-opt): catches a line left behind that 2-opt cannot reinsert
    (a wedge line near a far line end, the other side of a pond). First improvement, repeated
    until no move helps; returns a new order."""

    def head(x: tuple[int, bool]) -> int:
        return 2 * x[0] + (1 if x[1] else 0)

    def tail(x: tuple[int, bool]) -> int:
        return 2 * x[0] + (0 if x[1] else 1)

    def link(a: tuple[int, bool] | None, b: tuple[int, bool] | None) -> float:
        return 0.0 if a is None or b is None else float(dmat[tail(a), head(b)])

    seq = list(order)
    m = len(seq)
    improved = True
    passes = 0
    while improved and passes < 10:
        improved = False
        passes += 1
        for L in range(1, min(max_block, m - 1) + 1):
            i = 0
            while i + L <= m:
                block = seq[i : i + L]
                prev = seq[i - 1] if i > 0 else None
                nxt = seq[i + L] if i + L < m else None
                gain = link(prev, block[0]) + link(block[-1], nxt) - link(prev, nxt)
                rest = seq[:i] + seq[i + L :]
                rev = [(k, not f) for k, f in reversed(block)]
                best = (1e-6, -1, block)
                for j in range(len(rest) + 1):
                    a = rest[j - 1] if j > 0 else None
                    b = rest[j] if j < len(rest) else None
                    base = link(a, b)
                    for blk in (block, rev):
                        d = gain - (link(a, blk[0]) + link(blk[-1], b) - base)
                        if d > best[0]:
                            best = (d, j, blk)
                if best[1] >= 0 and not (best[1] == i and best[2] is block):
                    seq = rest[: best[1]] + best[2] + rest[best[1] :]
                    improved = True
                i += 1
    return seq


def _two_opt(order: list[tuple[int, bool]], dmat: np.ndarray, dstart: np.ndarray, max_passes: int = 6) -> list[tuple[int, bool]]:
    """Improve a chain by reversing sub-chains (2-opt with orientation; far end free).

    Reversing positions ``i..j`` flips each segment's direction.
    """
    m = len(order)
    if m < 3:
        return order
    seq = [i for i, _ in order]
    flip = [f for _, f in order]

    def head(k: int) -> int:  # endpoint index where position k starts
        return 2 * seq[k] + (1 if flip[k] else 0)

    def tail(k: int) -> int:
        return 2 * seq[k] + (0 if flip[k] else 1)

    for _ in range(max_passes):
        improved = False
        for i in range(m - 1):
            for j in range(i + 1, m):
                hi, tj = head(i), tail(j)
                if i == 0:
                    before, after = dstart[hi], dstart[tj]
                else:
                    tp = tail(i - 1)
                    before, after = dmat[tp, hi], dmat[tp, tj]
                if j + 1 < m:
                    hn = head(j + 1)
                    before += dmat[tj, hn]
                    after += dmat[hi, hn]
                if after < before - 1e-6:
                    seq[i : j + 1] = seq[i : j + 1][::-1]
                    flip[i : j + 1] = [not f for f in flip[i : j + 1][::-1]]
                    improved = True
        if not improved:
            break
    return list(zip(seq, flip, strict=True))


def _swath_boxes(segs: np.ndarray, w: float, h: float) -> np.ndarray:
    """Imaged rectangles (sweep frame) of each segment: photos from start to end, footprint w x h."""
    return shapely.box(segs[:, 1] - h / 2, segs[:, 3] - w / 2, segs[:, 2] + h / 2, segs[:, 3] + w / 2)


def _gap_segments(region_rot, covered, segs: np.ndarray, p: SweepParams) -> np.ndarray:
    """Extra short lines through areas the swaths miss (narrow lobes between lines)."""
    gaps = shapely.difference(region_rot, covered)
    if gaps.is_empty:
        return np.zeros((0, 4))
    extra = []
    thresh = max(0.5, 1e-4 * region_rot.area)
    # fill the largest gaps first, only until what stays unimaged is below the target:
    # every extra line costs two turns and a transit
    remaining = gaps.area
    allowed_left = p.max_unimaged * region_rot.area
    for g in sorted(getattr(gaps, "geoms", [gaps]), key=lambda x: -x.area):
        if g.area < thresh or remaining <= allowed_left:
            break
        remaining -= g.area
        pt = g.representative_point()
        gu0, gv0, gu1, gv1 = g.bounds
        v = (gv0 + gv1) / 2.0 if gv1 - gv0 < p.footprint_w_m else pt.y
        row = sweep_segments_at(region_rot, v, p.min_segment_m * 0.1)
        for (u0, u1) in row:
            if u0 - 1e-6 <= pt.x <= u1 + 1e-6 or (u0 <= gu1 and u1 >= gu0):
                a = max(u0, gu0 + p.footprint_h_m / 2)
                b = min(u1, gu1 - p.footprint_h_m / 2)
                if a > b:
                    mid = min(max((gu0 + gu1) / 2, u0), u1)
                    half = min(p.min_segment_m / 2, (u1 - u0) / 2)
                    a, b = max(u0, mid - half), min(u1, mid + half)
                extra.append((-1.0, a, b, v))
                break
    return np.asarray(extra).reshape(-1, 4)


def _ring_edges(region) -> np.ndarray:
    """Every edge of the region's rings as rows (x0, y0, x1, y1), metres."""
    rings = [region.exterior, *region.interiors]
    return np.vstack([np.column_stack([np.asarray(r.coords)[:-1], np.asarray(r.coords)[1:]]) for r in rings])


def _nearest_edge(edges: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edge (rows of :func:`_ring_edges`) nearest to point ``c``: (the foot of the
    perpendicular from ``c`` on it, its unit direction), metres."""
    a = edges[:, 0:2]
    ab = edges[:, 2:4] - a
    ab2 = np.maximum((ab * ab).sum(1), 1e-12)
    t = np.clip(((c - a) * ab).sum(1) / ab2, 0, 1)
    foot = a + ab * t[:, None]
    k = int(np.argmin(np.hypot(*(c - foot).T)))
    return foot[k], ab[k] / math.sqrt(ab2[k])


def _wedge_lines(region_rot, covered, p: SweepParams) -> np.ndarray:
    """Short lines along the nearest edge through the largest gaps, until at most
    ``p.max_unimaged`` of the region stays unimaged; (k, 4) x0, y0, x1, y1 in the frame.

    A wedge left at a line end by a slanted edge lies along that edge, and so does the
    connection that the route flies from this line's end to the next line's start: a
    gap line along the edge fits into that connection at almost no extra time (no U-turn),
    where a line in the sweep direction costs a U-turn and a detour. The line passes
    through the gap's representative point, spans the gap's extent along the edge less
    half a footprint at both ends (at least ``min_segment_m``), and stays inside the
    region; if it would not, the gap gets a line in the sweep direction instead.
    """
    gaps = shapely.difference(region_rot, covered)
    if gaps.is_empty:
        return np.zeros((0, 4))
    thresh = max(0.5, 1e-4 * region_rot.area)
    remaining = gaps.area
    allowed_left = p.max_unimaged * region_rot.area
    edges = _ring_edges(region_rot)
    inside = region_rot.buffer(1e-6)
    shapely.prepare(inside)
    out = []
    for g in sorted(getattr(gaps, "geoms", [gaps]), key=lambda x: -x.area):
        if g.area < thresh or remaining <= allowed_left:
            break
        remaining -= g.area
        c = np.asarray(g.representative_point().coords[0])
        _foot, d = _nearest_edge(edges, c)
        proj = shapely.get_coordinates(g) @ d
        c0 = float(c @ d)
        lo, hi = float(proj.min()) + p.footprint_h_m / 2, float(proj.max()) - p.footprint_h_m / 2
        if hi - lo < p.min_segment_m:
            mid = min(max((lo + hi) / 2, float(proj.min())), float(proj.max()))
            lo, hi = mid - p.min_segment_m / 2, mid + p.min_segment_m / 2
        a, b = c + d * (lo - c0), c + d * (hi - c0)
        seg = shapely.linestrings([a, b])
        if not inside.covers(seg):
            # clip to the piece through the gap's point; fall back to the sweep direction
            pieces = [q for q in shapely.get_parts(shapely.intersection(seg, region_rot))
                      if q.geom_type == "LineString" and q.length >= min(p.min_segment_m, 0.5)]
            if pieces:
                q = min(pieces, key=lambda q: q.distance(shapely.points(c)))
                xy = shapely.get_coordinates(q)
                a, b = xy[0], xy[-1]
            else:
                row = _gap_segments(region_rot, shapely.difference(region_rot, g), np.zeros((0, 4)), p)
                if not len(row):
                    continue
                a, b = np.array([row[0, 1], row[0, 3]]), np.array([row[0, 2], row[0, 3]])
        out.append((float(a[0]), float(a[1]), float(b[0]), float(b[1])))
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


def _line_swaths(lines: np.ndarray, w: float, h: float):
    """Imaged rectangles of arbitrary lines (x0, y0, x1, y1): the line grown by h/2 at both
    ends, w/2 to each side."""
    out = []
    for x0, y0, x1, y1 in np.asarray(lines).reshape(-1, 4):
        d = np.array([x1 - x0, y1 - y0])
        ln = float(np.hypot(*d))
        u = d / ln if ln > 1e-9 else np.array([1.0, 0.0])
        a, b = np.array([x0, y0]) - u * h / 2, np.array([x1, y1]) + u * h / 2
        out.append(shapely.buffer(shapely.linestrings([a, b]), w / 2, cap_style="flat"))
    return out


def _edge_gap_lines(region_rot, covered, p: SweepParams, allowed_left: float, max_lines: int = 8):
    """Lines along the region's edges through the wedges that the sweep leaves.

    A slanted edge leaves a thin wedge beyond the end of every line that meets it; one line
    parallel to that edge, half a footprint inside, images all of them, where lines in the
    sweep direction would need one each (two turns and a transit apiece). Returns
    ((k, 4) lines x0, y0, x1, y1 in the sweep frame, the new covered geometry).
    """
    w, h = p.footprint_w_m, p.footprint_h_m
    edges = _ring_edges(region_rot)
    lines: list[tuple[float, float, float, float]] = []
    big = 2.0 * float(np.hypot(region_rot.bounds[2] - region_rot.bounds[0], region_rot.bounds[3] - region_rot.bounds[1]))
    for _ in range(max_lines):
        gaps = shapely.difference(region_rot, covered)
        if gaps.is_empty or gaps.area <= allowed_left:
            break
        g = max(getattr(gaps, "geoms", [gaps]), key=lambda x: x.area)
        if g.area < max(0.5, 1e-4 * region_rot.area):
            break
        c = np.asarray(g.representative_point().coords[0])
        foot, d = _nearest_edge(edges, c)
        nrm = np.array([-d[1], d[0]])
        if np.dot(c - foot, nrm) < 0:
            nrm = -nrm
        p0 = foot + nrm * (w / 2 - 1.0)
        full = shapely.intersection(shapely.linestrings([p0 - d * big, p0 + d * big]), region_rot)
        near = shapely.intersection(gaps, shapely.buffer(shapely.linestrings([p0 - d * big, p0 + d * big]), w / 2 - 0.5,
                                                         cap_style="flat"))
        if near.is_empty:
            break
        proj = shapely.get_coordinates(near) @ d
        lo, hi = float(proj.min()) + h / 2, float(proj.max()) - h / 2
        added = False
        for piece in shapely.get_parts(full):
            if piece.geom_type != "LineString" or piece.is_empty:
                continue
            q = shapely.get_coordinates(piece)
            tq = q @ d
            s0, s1 = float(tq.min()), float(tq.max())
            a_, b_ = max(s0, min(lo, hi)), min(s1, max(hi, lo))
            if a_ > b_:
                mid = min(max((lo + hi) / 2, s0), s1)
                half = min(p.min_segment_m, s1 - s0) / 2
                a_, b_ = max(s0, mid - half), min(s1, mid + half)
            if b_ - a_ < 0.5 or not shapely.intersects(near, piece.buffer(w / 2)):
                continue
            base = q[int(np.argmin(tq))] - d * s0  # point of the line at t = 0
            x0y0, x1y1 = base + d * a_, base + d * b_
            lines.append((float(x0y0[0]), float(x0y0[1]), float(x1y1[0]), float(x1y1[1])))
            added = True
        if not added:
            break
        covered = shapely.union_all([covered, *_line_swaths(np.asarray(lines[-1:]), w, h)])
    return np.asarray(lines, dtype=np.float64).reshape(-1, 4), covered


def sweep_segments_at(region_rot, v: float, min_len: float) -> list[tuple[float, float]]:
    """(u0, u1) pieces of the horizontal line at ``v`` inside ``region_rot``."""
    minx, _, maxx, _ = region_rot.bounds
    g = shapely.intersection(shapely.linestrings([[minx - 1, v], [maxx + 1, v]]), region_rot)
    out = []
    for part in shapely.get_parts(g):
        if part.geom_type == "LineString" and part.length >= min_len:
            xs = shapely.get_coordinates(part)[:, 0]
            out.append((float(xs.min()), float(xs.max())))
    return out


def _route_in_frame(segs: np.ndarray, fs: FreeSpace | None, start: Point2, angle_deg: float = 0.0,
                    turn_m: float = 0.0, extras: np.ndarray | None = None,
                    polish: bool = True) -> list[tuple[float, float, str]]:
    """Order the segments (sweep frame) and connect them; returns sweep-frame points.

    ``fs`` is the free space in local x/y (not rotated), so one visibility graph serves every
    candidate angle; None means every straight connection is free (convex part). The order
    minimises connection length plus ``turn_m`` metres per 180° of heading change at both
    ends of each connection (:func:`_turn_penalty_m`), the flight model's two cost terms.
    """
    m = len(segs)
    ends = np.empty((2 * m, 2))
    ends[0::2, 0], ends[1::2, 0] = segs[:, 1], segs[:, 2]
    ends[0::2, 1] = ends[1::2, 1] = segs[:, 3]
    dirs = None
    if extras is not None and len(extras):
        # lines along edges (x0, y0, x1, y1): appended as rows (idx -2, ...) with their own direction
        ex = np.asarray(extras, dtype=np.float64).reshape(-1, 4)
        e2 = np.empty((2 * len(ex), 2))
        e2[0::2], e2[1::2] = ex[:, 0:2], ex[:, 2:4]
        ends = np.vstack([ends, e2])
        dv = ex[:, 2:4] - ex[:, 0:2]
        dirs = np.vstack([np.tile([1.0, 0.0], (m, 1)), dv / np.maximum(np.hypot(dv[:, 0], dv[:, 1]), 1e-9)[:, None]])
        segs = np.vstack([segs, np.column_stack([np.full(len(ex), -2.0), ex[:, 0], ex[:, 2], ex[:, 1]])])
        m = len(segs)
    if fs is None and not np.any(segs[:, 0] < 0):
        order = _serpentine(segs, ends, start)
    else:
        starts = None
        if fs is None or m > 8:
            # a good chain starts at an outermost line (or, concave, at an extreme end of a lobe)
            by_v = np.argsort(segs[:, 3], kind="stable")
            outer = [by_v[:2], by_v[-2:]]
            if fs is not None:
                outer += [np.argsort(segs[:, 1])[:2], np.argsort(-segs[:, 2])[:2]]
            outer = np.concatenate(outer)
            starts = np.unique(np.concatenate([2 * outer, 2 * outer + 1]))
        if fs is None:
            dmat = np.hypot(*(ends[:, None, :] - ends[None, :, :]).transpose(2, 0, 1))
        else:
            ends_xy = _rotate_xy(ends, angle_deg)
            dmat = fs.distance_matrix(ends_xy, ends_xy)
        order = _best_open_chain(ends, dmat + _turn_penalty_m(ends, turn_m, dirs), start, starts=starts, or_opt=polish)
    pts: list[tuple[float, float, str]] = []
    for k, (i, f) in enumerate(order):
        e0, e1 = (2 * i + 1, 2 * i) if f else (2 * i, 2 * i + 1)
        s0, s1 = ends[e0], ends[e1]
        if k and fs is not None:
            prev = _rotate_xy(np.asarray([pts[-1][:2]]), angle_deg)[0]
            via = fs.path((float(prev[0]), float(prev[1])), (float(ends_xy[e0, 0]), float(ends_xy[e0, 1])))
            if via:
                for q in _rotate_xy(np.asarray(via), -angle_deg):
                    pts.append((float(q[0]), float(q[1]), "transit"))
        pts.append((float(s0[0]), float(s0[1]), "line_start"))
        pts.append((float(s1[0]), float(s1[1]), "line_end"))
    return pts


def plan_part(
    grid_id: str,
    part: int,
    region: Polygon,
    free: Polygon | MultiPolygon,
    p: SweepParams,
    model: FlightModel,
    start: Point2 = (0.0, 0.0),
    angle_deg: float | None = None,
    full_evaluations: int = 12,
) -> CellRoute | None:
    """Route over one connected ``region`` (local metres) that stays inside ``free``.

    ``angle_deg`` fixes the sweep direction (degrees from east, counter-clockwise); by
    default every angle of :func:`_angle_candidates` is scored cheaply and the best
    ``full_evaluations`` (one for convex regions) are routed in full; the fastest wins.
    Returns None for a region too small to hold a line.
    """
    turn_m = model.turn_s * model.speed_m_s
    hull_area = region.convex_hull.area
    convex = len(region.interiors) == 0 and region.area >= hull_area * (1 - 1e-9)
    convex = convex and free.covers(region.convex_hull)
    # a nearly convex part (a jittered quad with one shallow reflex corner) has few distinct
    # routes: search its angles and phases like a convex one's neighbourhood, not exhaustively
    nearly = not convex and len(region.interiors) == 0 and region.area >= hull_area * (1 - p.nearly_convex)
    # a convex region's narrowest direction is parallel to a hull edge (rotating calipers),
    # so the fan of extra angles only matters for concave regions
    cands = [angle_deg] if angle_deg is not None else _angle_candidates(region, 0.0 if convex else p.angle_step_deg)
    if len(cands) > 1:
        # pre-rank by the number of lines (hull width across the sweep / spacing): cheap, and
        # line count dominates cost (two turns per line); only the best few get clipped
        hull = np.asarray(region.convex_hull.exterior.coords) if region.convex_hull.geom_type == "Polygon" else None
        if hull is not None:
            t = np.radians(np.asarray(cands))
            across = -hull[:, 0][None, :] * np.sin(t)[:, None] + hull[:, 1][None, :] * np.cos(t)[:, None]
            nlines = np.ceil((across.max(axis=1) - across.min(axis=1)) / p.spacing_m - 1e-9)
            keep = np.argsort(nlines, kind="stable")[: 2 if convex else 4 if nearly else 12]
            if convex and len(keep) == 2 and nlines[keep[1]] > nlines[keep[0]]:
                keep = keep[:1]  # a line fewer saves a U-turn and a ~spacing connection (~150 m): skip the runner-up
            cands = [cands[i] for i in keep]
    scored = []
    for a in cands:
        rot = affinity.rotate(region, -a, origin=(0.0, 0.0))
        for phase in (0.0,) if convex else (0.0, 0.5) if nearly else (0.0, -0.25, 0.25, 0.5):
            segs = sweep_segments(rot, p.spacing_m, p.min_segment_m, phase)
            if not len(segs):
                # tiny region: one short line through its middle
                pt = rot.representative_point()
                row = sweep_segments_at(rot, pt.y, 0.0)
                if not row:
                    continue
                segs = np.asarray([[0.0, row[0][0], row[0][1], pt.y]])
            segs = trim_segments(rot, segs, p)
            scored.append((_estimate_cost_m(segs, p.spacing_m, turn_m), a, rot, segs))
    if not scored:
        return None
    goal = 1.0 - p.max_unimaged - 1e-9
    # branch and bound: the estimate less one connection is a lower bound on the routed cost
    # (every further segment needs a U-turn and at least one spacing of transit; gap lines
    # only add), so once it exceeds the best routed cost no later candidate can win. A bare
    # sweep (no gap filling) is ranked by that bound plus the price of what it leaves
    # unimaged below the goal (cheap to compute, no routing), so the few candidates routed
    # are those that leave least to fill for their length.
    ranked = []
    for est, a, rot, segs in scored:
        lb = (est - p.spacing_m - turn_m) / model.speed_m_s
        if not p.fill_gaps:
            im = shapely.intersection(shapely.union_all(_swath_boxes(segs, p.footprint_w_m, p.footprint_h_m)), rot).area
            lb += max(0.0, goal * rot.area - im) * p.gap_s_per_m2
        ranked.append((lb, est, a, rot, segs))
    ranked.sort(key=lambda t: t[0])
    best = None
    fs: FreeSpace | None = None  # built once (local x/y), shared by every candidate angle
    for lb, _est, a, rot, segs in ranked[: 1 if convex else full_evaluations]:
        if best is not None and best[0][0] == 0 and lb > best[0][1]:
            break
        base_segs = segs
        covered0 = shapely.union_all(_swath_boxes(segs, p.footprint_w_m, p.footprint_h_m))
        imaged0 = shapely.intersection(covered0, rot).area
        # two ways to fill wedges: short lines in the sweep direction, or lines along edges first
        # (edge lines pay off on concave parts with several slanted edges; on convex and nearly
        # convex parts they rarely win and double the work)
        try_edges = p.fill_gaps and p.edge_gap_lines and not (convex or nearly) and imaged0 < goal * rot.area
        for edge_first in (False, True) if try_edges else (False,):
            segs, covered, imaged = base_segs, covered0, imaged0
            extras = np.zeros((0, 4))
            if edge_first:
                extras, covered = _edge_gap_lines(rot, covered, p, (1.0 - goal) * rot.area)
                imaged = shapely.intersection(covered, rot).area
            for _ in range(2 if p.fill_gaps else 0):  # a second pass catches what the first lines missed
                if imaged >= goal * rot.area:
                    break
                extra = _gap_segments(rot, covered, segs, p)
                if not len(extra):
                    break
                segs = np.vstack([segs, extra])
                covered = shapely.union_all([covered, *_swath_boxes(extra, p.footprint_w_m, p.footprint_h_m)])
                imaged = shapely.intersection(covered, rot).area
            ok = imaged >= goal * rot.area
            # without gap filling (a cell's bare sweep) nothing may meet the goal: then the
            # missing area is priced at what wedge lines typically cost, so the sweep that
            # leaves least to fill for its time wins
            deficit = 0.0 if ok or p.fill_gaps else (goal * rot.area - imaged) * p.gap_s_per_m2
            ok = ok or not p.fill_gaps
            if best is not None and best[0][0] == 0 and not ok:
                continue  # a cheaper candidate cannot win without meeting the coverage goal
            t = math.radians(a)
            s_rot = (start[0] * math.cos(t) + start[1] * math.sin(t), -start[0] * math.sin(t) + start[1] * math.cos(t))
            if fs is None and not convex:
                fs = FreeSpace(free)
            pts_rot = _route_in_frame(segs, fs, s_rot, a, turn_m, extras, polish=False)
            xy = _rotate_xy(np.asarray([(u, v) for u, v, _ in pts_rot]), a)
            cost = model.path_time_s(xy)
            key = (0, cost + deficit) if ok else (1, -imaged / rot.area)
            if best is None or key < best[0]:
                best = (key, cost, a, rot, np.vstack([segs, np.zeros((len(extras), 4))]), imaged, pts_rot, xy,
                        (segs, s_rot, extras))
    assert best is not None
    _, cost, a, rot, segs, imaged, pts_rot, xy, again = best
    if p.fill_gaps and not (convex or nearly):
        # the winner's line order polished with Or-opt (too slow to run for every candidate)
        pts2 = _route_in_frame(again[0], fs, again[1], a, turn_m, again[2], polish=True)
        xy2 = _rotate_xy(np.asarray([(u, v) for u, v, _ in pts2]), a)
        if model.path_time_s(xy2) < cost:
            pts_rot, xy, cost = pts2, xy2, model.path_time_s(xy2)
    points = [RoutePoint(float(x), float(y), kind) for (x, y), (_, _, kind) in zip(xy, pts_rot, strict=True)]
    route = CellRoute(grid_id, part, points, a % 180.0, len(segs), float(imaged), float(region.area))
    route.length_m = polyline_length(xy)
    route.time_s = cost
    return route


def _is_convexish(region: Polygon, p: SweepParams) -> bool:
    """True for a part with no holes within ``p.nearly_convex`` of its convex hull's area:
    such parts gain nothing from a decomposition (the single sweep is already monotone)."""
    return len(region.interiors) == 0 and region.area >= region.convex_hull.area * (1.0 - p.nearly_convex)


def _cell_lines(r: CellRoute) -> np.ndarray:
    """The survey lines (x0, y0, x1, y1) of a cell route."""
    pts = r.points
    out = [(a.x, a.y, b.x, b.y) for a, b in zip(pts[:-1], pts[1:], strict=True)
           if a.kind == "line_start" and b.kind == "line_end"]
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


def _route_cells(grid_id: str, part: int, region: Polygon, cells: list[tuple[Polygon, CellRoute]], fs: FreeSpace,
                 p: SweepParams, model: FlightModel, start: Point2) -> CellRoute:
    """One route over ``region`` from cells swept at their own angles.

    Every cell brings its survey lines (its own angle, phase and trimmed ends, no wedge
    lines); coverage is then judged on the union of all swaths, so a cell's wedge that its
    neighbour's swaths image needs no extra line. What stays unimaged in a cell beyond
    ``p.max_unimaged`` of its area gets short lines along the nearest edge
    (:func:`_wedge_lines`). All lines,
    whatever their direction, are ordered as one open chain inside the free space (multi-start
    nearest end, 2-opt and Or-opt with the turn cost at both ends of each connection).
    """
    w, h = p.footprint_w_m, p.footprint_h_m
    lines = np.vstack([_cell_lines(r) for _, r in cells])
    covered = shapely.union_all(_line_swaths(lines, w, h))
    extra_all = []
    for cell, r in cells:
        a = r.angle_deg
        rot = affinity.rotate(cell, -a, origin=(0.0, 0.0))
        cov_rot = affinity.rotate(covered, -a, origin=(0.0, 0.0))
        goal = (1.0 - p.max_unimaged - 1e-9) * rot.area
        added = []
        for _ in range(2 if p.fill_gaps else 0):
            if shapely.intersection(cov_rot, rot).area >= goal:
                break
            ex = _wedge_lines(rot, cov_rot, p)
            if not len(ex):
                break
            cov_rot = shapely.union_all([cov_rot, *_line_swaths(ex, w, h)])
            added.append(np.column_stack([_rotate_xy(ex[:, 0:2], a), _rotate_xy(ex[:, 2:4], a)]))
        if added:
            # later cells see these lines' swaths too
            extra_all.extend(added)
            covered = shapely.union_all([covered, *_line_swaths(np.vstack(added), w, h)])
    if extra_all:
        lines = np.vstack([lines, *extra_all])
    pts = _route_in_frame(np.zeros((0, 4)), fs, start, 0.0, model.turn_s * model.speed_m_s, lines)
    xy = np.asarray([(x, y) for x, y, _ in pts])
    route = CellRoute(grid_id, part, [RoutePoint(x, y, k) for x, y, k in pts], cells[0][1].angle_deg, len(lines),
                      float(shapely.intersection(covered, region).area), float(region.area))
    route.length_m = polyline_length(xy)
    route.time_s = model.path_time_s(xy)
    route.cells = [(c, r.angle_deg) for c, r in cells]
    return route


def _absorb_small(cells: list[Polygon], min_area: float) -> list[Polygon]:
    """Merge every cell smaller than ``min_area`` into the neighbour it shares most boundary with."""
    cells = list(cells)
    while len(cells) > 1:
        small = [i for i, c in enumerate(cells) if c.area < min_area]
        if not small:
            break
        i = min(small, key=lambda k: cells[k].area)
        shared = [(cells[i].boundary.intersection(c.boundary).length if j != i else -1.0) for j, c in enumerate(cells)]
        j = int(np.argmax(shared))
        if shared[j] <= 0:
            break
        merged = shapely.union_all([cells[i], cells[j]])
        if not isinstance(merged, Polygon):
            break
        cells = [c for k, c in enumerate(cells) if k not in (i, j)] + [merged]
    return cells


def plan_region(
    grid_id: str,
    part: int,
    region: Polygon,
    free: Polygon | MultiPolygon,
    p: SweepParams,
    model: FlightModel,
    start: Point2 = (0.0, 0.0),
    max_rounds: int = 2,
) -> CellRoute | None:
    """Route over one connected ``region``: a single sweep, or a cell decomposition where cheaper.

    Decomposition -> swaths -> route, each with the flight-time objective (Fields2Cover's
    pipeline): the part is first swept whole (:func:`plan_part`). Decompositions tried:
    bottom-up, the boustrophedon cells at the whole sweep's angle and every 30° (cells
    under two spacings² merged into a neighbour); top-down, greedily for up to
    ``max_rounds`` rounds, every candidate cut of every cell
    (:func:`geo.decomposition.candidate_cuts`: edge extensions at reflex corners,
    boustrophedon chords, chord pairs around holes), the six most promising by a cheap
    estimate routed in full. In every decomposition each cell gets its own sweep angle and
    phase (:func:`plan_part` without gap lines, ranked by time plus the price of what it
    leaves unimaged), wedges are filled where the union of all swaths leaves them, and all
    lines are ordered together (:func:`_route_cells`). The fastest route that images at
    least ``1 - p.max_unimaged`` of the part wins. Convex and nearly convex parts without
    holes take the single sweep directly (city-scale tilings are all such parts).
    """
    from geo.decomposition import boustrophedon_cells, candidate_cuts

    whole = plan_part(grid_id, part, region, free, p, model, start)
    if whole is None or max_rounds <= 0 or not p.decompose or _is_convexish(region, p):
        return whole
    whole.cells = [(region, whole.angle_deg)]
    fs = FreeSpace(free)
    bare = dataclasses.replace(p, fill_gaps=False, decompose=False)
    cache: dict[bytes, CellRoute | None] = {}

    def sweep(cell: Polygon) -> CellRoute | None:
        key = shapely.to_wkb(shapely.normalize(cell), output_dimension=2)
        if key not in cache:
            try:
                cache[key] = plan_part(grid_id, part, cell, free, bare, model, start, full_evaluations=3)
            except shapely.errors.GEOSException:
                cache[key] = None  # a degenerate cell: this cut is simply not used
        return cache[key]

    min_piece = 2.0 * p.spacing_m * p.spacing_m
    goal = (1.0 - p.max_unimaged - 1e-9) * region.area

    def _rank(r: CellRoute) -> tuple[int, float]:
        """Routes meeting the coverage goal by time (1 ms granularity); others after them."""
        return (0, round(r.time_s, 3)) if r.imaged_area_m2 >= goal else (1, -r.imaged_area_m2)

    best = whole
    base = sweep(region)
    if base is None:
        return whole
    cur: list[tuple[Polygon, CellRoute]] = [(region, base)]
    # bottom-up: the boustrophedon decomposition at a few angles, small cells absorbed
    for a in sorted({round(whole.angle_deg % 180.0, 3), 0.0, 30.0, 60.0, 90.0, 120.0, 150.0}):
        cells = _absorb_small(boustrophedon_cells(region, a), min_piece)
        if not 2 <= len(cells) <= 8:
            continue
        subs = [sweep(c) for c in cells]
        if any(s_ is None for s_ in subs):
            continue
        new = list(zip(cells, subs, strict=True))
        try:
            r = _route_cells(grid_id, part, region, new, fs, p, model, start)
        except shapely.errors.GEOSException:
            continue
        if _rank(r) < _rank(best):
            best, cur = r, new
    for _ in range(max_rounds):
        trials = [(0.0, cur)] if len(cur) == 1 else []
        for ci, (cell, r) in enumerate(cur):
            if _is_convexish(cell, p):
                continue
            for pieces in candidate_cuts(cell, [r.angle_deg], min_piece):
                subs = [sweep(c) for c in pieces]
                if any(s is None for s in subs):
                    continue
                new = cur[:ci] + list(zip(pieces, subs, strict=True)) + cur[ci + 1:]
                # screen: bare sweeps' own times plus one U-turn and one spacing per extra cell
                est = sum(s.time_s for _, s in new) + (len(new) - 1) * (model.turn_s + p.spacing_m / model.speed_m_s)
                # plus the wedges each cell leaves beyond the goal, at a typical gap-line price
                est += sum(max(0.0, (1.0 - p.max_unimaged) * s.area_m2 - s.imaged_area_m2) for _, s in new) * p.gap_s_per_m2
                trials.append((est, new))
        if not trials:
            break
        trials.sort(key=lambda t: t[0])
        improved = False
        for _, new in trials[:6]:
            try:
                r = _route_cells(grid_id, part, region, new, fs, p, model, start)
            except shapely.errors.GEOSException:
                continue
            if _rank(r) < _rank(best):
                best, cur, improved = r, new, True
        if not improved:
            break
    return best
