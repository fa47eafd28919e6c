"""Shortest paths that stay inside a free-space polygon (visibility graph, all-pairs).

Used twice: inside a grid (transit between survey lines must not leave the grid or enter a
no-fly zone) and between grids (transit must go around buffered no-fly zones). Works in
local metres. Graph nodes are the vertices of the free space shrunk by ``inset_m`` so that
paths keep a small clearance from walls; edges are straight segments that the free space
covers (checked with a prepared shapely geometry, 1 mm tolerance).
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

Point2 = tuple[float, float]


class NoPathError(RuntimeError):
    """No path between two points inside the free space."""


class FreeSpace:
    """A region one may fly in: straight-line visibility and shortest paths, vectorised.

    All-pairs shortest paths between graph nodes are computed once (Floyd-Warshall on the
    visibility graph); a query p -> q then only needs the visibility of p and q to the nodes.
    """

    def __init__(self, region: Polygon | MultiPolygon, inset_m: float = 0.5, tolerance_m: float = 1e-3) -> None:
        self.region = region
        self.check = region.buffer(tolerance_m)
        shapely.prepare(self.check)
        self.inset_m = inset_m
        self._nodes: np.ndarray | None = None
        self._dist: np.ndarray | None = None
        self._next: np.ndarray | None = None

    # -- visibility ----------------------------------------------------------------------
    def covered(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Boolean array: is each straight segment p[k] -> q[k] inside the free space? (k, 2) arrays."""
        p = np.asarray(p, dtype=np.float64).reshape(-1, 2)
        q = np.asarray(q, dtype=np.float64).reshape(-1, 2)
        out = np.zeros(len(p), dtype=bool)
        same = np.all(np.abs(p - q) < 1e-9, axis=1)
        if np.any(same):
            out[same] = shapely.covers(self.check, shapely.points(p[same]))
        if np.any(~same):
            segs = shapely.linestrings(np.stack([p[~same], q[~same]], axis=1))
            out[~same] = shapely.covers(self.check, segs)
        return out

    def covers_segment(self, p: Point2, q: Point2) -> bool:
        """True if the straight segment p-q lies in the free space."""
        return bool(self.covered(np.asarray([p]), np.asarray([q]))[0])

    # -- graph -----------------------------------------------------------------------------
    def _graph(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._nodes is None:
            shrunk = self.region.buffer(-self.inset_m, join_style="mitre", mitre_limit=3.0)
            # nodes may move by the simplification tolerance, so keep it well under the inset;
            # the free space's own vertices are nodes too, so narrow necks that the inset
            # closes stay passable (hugging the wall)
            tol = max(0.05, abs(self.inset_m) / 3.0)
            pts = []
            srcs = [shrunk.simplify(tol)] if not shrunk.is_empty else []
            if shapely.get_num_geometries(shrunk) != shapely.get_num_geometries(self.region) or shrunk.is_empty:
                srcs.append(self.region)
            for src in srcs:
                for poly in getattr(src, "geoms", [src]):
                    if isinstance(poly, Polygon) and not poly.is_empty:
                        for ring in [poly.exterior, *poly.interiors]:
                            pts.extend(list(ring.coords)[:-1])
            nodes = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
            n = len(nodes)
            ii, jj = np.triu_indices(n, 1)
            vis = np.zeros((n, n), dtype=bool)
            if len(ii):
                v = self.covered(nodes[ii], nodes[jj])
                vis[ii, jj] = v
                vis[jj, ii] = v
            d = np.hypot(*(nodes[:, None, :] - nodes[None, :, :]).transpose(2, 0, 1))
            dist = np.where(vis, d, np.inf)
            np.fill_diagonal(dist, 0.0)
            nxt = np.where(np.isfinite(dist), np.arange(n)[None, :], -1)
            for k in range(n):
                via = dist[:, k : k + 1] + dist[k : k + 1, :]
                better = via < dist
                if np.any(better):
                    dist = np.where(better, via, dist)
                    nxt = np.where(better, nxt[:, k : k + 1], nxt)
            self._nodes, self._dist, self._next = nodes, dist, nxt
        assert self._dist is not None and self._next is not None
        return self._nodes, self._dist, self._next

    def _to_nodes(self, pts: np.ndarray) -> np.ndarray:
        """(k, n) straight distances from points to graph nodes, inf where not visible."""
        nodes, _, _ = self._graph()
        k, n = len(pts), len(nodes)
        if n == 0 or k == 0:
            return np.full((k, n), np.inf)
        a = np.repeat(pts, n, axis=0)
        b = np.tile(nodes, (k, 1))
        vis = self.covered(a, b).reshape(k, n)
        d = np.hypot(*(pts[:, None, :] - nodes[None, :, :]).transpose(2, 0, 1))
        return np.where(vis, d, np.inf)

    def distance_matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Shortest in-space path lengths (m) from each point of ``a`` to each of ``b`` (inf if none)."""
        a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
        b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
        ka, kb = len(a), len(b)
        straight = np.hypot(*(a[:, None, :] - b[None, :, :]).transpose(2, 0, 1))
        vis = self.covered(np.repeat(a, kb, axis=0), np.tile(b, (ka, 1))).reshape(ka, kb)
        out = np.where(vis, straight, np.inf)
        if np.all(vis):
            return out
        _, dist, _ = self._graph()
        if dist.size == 0:
            return out
        da = self._to_nodes(a)  # (ka, n)
        db = da if b is a or (ka == kb and np.array_equal(a, b)) else self._to_nodes(b)  # (kb, n)
        via_a = np.min(da[:, :, None] + dist[None, :, :], axis=1)  # (ka, n): a -> node j
        graph = np.min(via_a[:, None, :] + db[None, :, :], axis=2)  # (ka, kb)
        return np.minimum(out, graph)

    def path(self, p: Point2, q: Point2) -> list[Point2]:
        """Intermediate vertices (possibly none) of a shortest path p -> q inside the free space.

        Raises :class:`NoPathError` when q cannot be reached from p.
        """
        if self.covers_segment(p, q):
            return []
        nodes, dist, nxt = self._graph()
        if len(nodes) == 0:
            raise NoPathError(f"no path from {p} to {q} inside the free space")
        da = self._to_nodes(np.asarray([p], dtype=np.float64))[0]
        db = self._to_nodes(np.asarray([q], dtype=np.float64))[0]
        total = da[:, None] + dist + db[None, :]
        k = int(np.argmin(total))
        i, j = divmod(k, len(nodes))
        if not np.isfinite(total[i, j]):
            raise NoPathError(f"no path from {p} to {q} inside the free space")
        out = [i]
        while out[-1] != j:
            out.append(int(nxt[out[-1], j]))
        return [(float(nodes[u][0]), float(nodes[u][1])) for u in out]


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
