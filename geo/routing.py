"""Shortest paths that stay inside a free-space polygon (visibility graph + A*).

Used twice: inside a grid (transit between survey lines must not leave the grid or enter a
no-fly zone) and between grids (transit must go around buffered no-fly zones). Works in
local metres. Graph nodes are the vertices of the free space shrunk by ``inset_m`` so that
paths keep a small clearance from walls; edges are straight segments that the free space
covers (checked with a prepared shapely geometry, 1 mm tolerance).
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon

Point2 = tuple[float, float]


class NoPathError(RuntimeError):
    """No path between two points inside the free space."""


class FreeSpace:
    """A region one may fly in; :meth:`path` returns the intermediate vertices of a shortest path."""

    def __init__(self, region: Polygon | MultiPolygon, inset_m: float = 0.5, tolerance_m: float = 1e-3) -> None:
        self.region = region
        self.check = region.buffer(tolerance_m)
        shapely.prepare(self.check)
        self.inset_m = inset_m
        self._nodes: np.ndarray | None = None
        self._vis: dict[tuple[int, int], bool] = {}

    def covers_segment(self, p: Point2, q: Point2) -> bool:
        """True if the straight segment p-q lies in the free space."""
        if p == q:
            return bool(self.check.covers(shapely.points(p)))
        return bool(self.check.covers(LineString([p, q])))

    def _graph_nodes(self) -> np.ndarray:
        if self._nodes is None:
            shrunk = self.region.buffer(-self.inset_m, join_style="mitre", mitre_limit=3.0)
            src = shrunk if not shrunk.is_empty and shrunk.area > 0.2 * self.region.area else self.region
            src = src.simplify(0.05)
            pts = []
            for poly in getattr(src, "geoms", [src]):
                if isinstance(poly, Polygon):
                    for ring in [poly.exterior, *poly.interiors]:
                        pts.extend(list(ring.coords)[:-1])
            self._nodes = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        return self._nodes

    def path(self, p: Point2, q: Point2) -> list[Point2]:
        """Intermediate vertices (possibly none) of a shortest path p -> q inside the free space.

        Raises :class:`NoPathError` when q cannot be reached from p.
        """
        if self.covers_segment(p, q):
            return []
        nodes = self._graph_nodes()
        n = len(nodes)
        pts = np.vstack([nodes, np.asarray([p, q], dtype=np.float64)]) if n else np.asarray([p, q], dtype=np.float64)
        ip, iq = n, n + 1

        def visible(i: int, j: int) -> bool:
            if i >= n or j >= n:  # edges touching p or q are not cached across calls
                return self.covers_segment(tuple(pts[i]), tuple(pts[j]))
            key = (i, j) if i < j else (j, i)
            v = self._vis.get(key)
            if v is None:
                v = self.covers_segment(tuple(pts[i]), tuple(pts[j]))
                self._vis[key] = v
            return v

        goal = pts[iq]

        def h(i: int) -> float:
            return float(math.hypot(*(pts[i] - goal)))

        dist = {ip: 0.0}
        prev: dict[int, int] = {}
        heap = [(h(ip), ip)]
        done: set[int] = set()
        while heap:
            _, u = heapq.heappop(heap)
            if u in done:
                continue
            if u == iq:
                out = []
                while u != ip:
                    u = prev[u]
                    if u != ip:
                        out.append((float(pts[u][0]), float(pts[u][1])))
                return out[::-1]
            done.add(u)
            du = dist[u]
            d_all = np.hypot(*(pts - pts[u]).T)
            for v in np.argsort(d_all):
                v = int(v)
                if v == u or v in done or v == ip:
                    continue
                nd = du + float(d_all[v])
                if nd >= dist.get(v, math.inf):
                    continue
                if not visible(u, v):
                    continue
                dist[v] = nd
                prev[v] = u
                heapq.heappush(heap, (nd + h(v), v))
        raise NoPathError(f"no path from {p} to {q} inside the free space")


def polyline_length(points: list[Point2] | np.ndarray) -> float:
    """Length in metres of a polyline."""
    a = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(a) < 2:
        return 0.0
    return float(np.hypot(*np.diff(a, axis=0).T).sum())


def turn_angles_deg(points: list[Point2] | np.ndarray) -> np.ndarray:
    """Heading change in degrees (0..180) at each interior vertex of a polyline."""
    a = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(a) < 3:
        return np.zeros(0)
    d = np.diff(a, axis=0)
    keep = np.hypot(*d.T) > 1e-6
    d = d[keep]
    if len(d) < 2:
        return np.zeros(0)
    h = np.arctan2(d[:, 1], d[:, 0])
    dh = np.abs((np.diff(h) + np.pi) % (2 * np.pi) - np.pi)
    return np.degrees(dh)
