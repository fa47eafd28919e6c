"""Small writers for test inputs (GeoJSON, KML, ESRI Shapefile) — tests only."""

from __future__ import annotations

import json
import struct
from pathlib import Path


def write_geojson(path: Path, features: list[tuple[dict, dict | None]]) -> Path:
    fc = {"type": "FeatureCollection",
          "features": [{"type": "Feature", "properties": p, "geometry": g} for p, g in features]}
    path.write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    return path


def square(lon: float, lat: float, d: float = 0.003) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]]}


def write_shapefile(path: Path, records: list[tuple[dict, list[list[tuple[float, float]]]]]) -> Path:
    """Polygon shapefile (.shp/.shx/.dbf) with text fields; rings given clockwise (exterior) / ccw (holes)."""
    recs = []
    for i, (_, rings) in enumerate(records, 1):
        pts = [p for r in rings for p in r]
        parts, k = [], 0
        for r in rings:
            parts.append(k)
            k += len(r)
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        content = struct.pack("<i4d2i", 5, min(xs), min(ys), max(xs), max(ys), len(rings), len(pts))
        content += struct.pack(f"<{len(parts)}i", *parts)
        content += b"".join(struct.pack("<2d", *p) for p in pts)
        recs.append(struct.pack(">2i", i, len(content) // 2) + content)
    body = b"".join(recs)
    allx = [p[0] for _, rs in records for r in rs for p in r]
    ally = [p[1] for _, rs in records for r in rs for p in r]
    header = struct.pack(">7i", 9994, 0, 0, 0, 0, 0, (100 + len(body)) // 2)
    header += struct.pack("<2i4d4d", 1000, 5, min(allx), min(ally), max(allx), max(ally), 0, 0, 0, 0)
    path.write_bytes(header + body)
    names = sorted({k for p, _ in records for k in p})
    flen = 40
    dbf = struct.pack("<4BIHH20x", 3, 126, 1, 1, len(records), 32 + 32 * len(names) + 1, 1 + flen * len(names))
    for n in names:
        dbf += n.encode("ascii")[:10].ljust(11, b"\0") + b"C" + b"\0" * 4 + bytes([flen, 0]) + b"\0" * 14
    dbf += b"\r"
    for p, _ in records:
        dbf += b" " + b"".join(str(p.get(n, "")).encode("utf-8")[:flen].ljust(flen, b" ") for n in names)
    dbf += b"\x1a"
    path.with_suffix(".dbf").write_bytes(dbf)
    path.with_suffix(".cpg").write_text("UTF-8")
    return path
