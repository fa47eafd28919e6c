"""Grid import: GeoJSON, KML and ESRI Shapefile polygons -> :class:`Grid` records in WGS-84.

County grid files (网格) usually come from AMap (GCJ-02), sometimes Baidu (BD-09) or a
GIS department (WGS-84 / CGCS2000 shapefiles). Every vertex is converted to WGS-84
lon/lat degrees with :func:`geo.crs.to_wgs84`. Errors are :class:`GridImportError`
and name the file, the feature (1-based) and, when known, the grid id; suspicious but
usable input (lat/lon that look swapped) raises a :class:`GridImportWarning`.
"""

from __future__ import annotations

import json
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import MultiPolygon, Polygon
from shapely.validation import explain_validity

from geo.crs import CRS_NAMES, to_wgs84

#: property names tried, in order, for the grid id / zone id / display name
ID_FIELDS = ("grid_id", "gridid", "grid_code", "id", "code", "wgbm", "网格编码", "网格编号", "编号", "zone_id")
NAME_FIELDS = ("name", "grid_name", "wgmc", "网格名称", "名称", "Name")


class GridImportError(ValueError):
    """A grid or no-fly file that cannot be used; the message says where (file, feature, id)."""


class GridImportWarning(UserWarning):
    """Input that imports but is probably wrong (e.g. lat/lon swapped)."""


@dataclass(frozen=True)
class Grid:
    """One patrol grid: ``polygon`` is a shapely Polygon/MultiPolygon in WGS-84 (lon, lat) degrees."""

    id: str
    name: str
    polygon: Polygon | MultiPolygon
    properties: dict[str, Any] = field(default_factory=dict)
    #: where it came from, for messages: "grids.geojson feature 3"
    source: str = ""


@dataclass(frozen=True)
class NoFlyArea:
    """A no-fly zone (WGS-84 lon/lat polygon) with a safety ``buffer_m`` (metres) around it."""

    id: str
    name: str
    polygon: Polygon | MultiPolygon
    buffer_m: float = 0.0
    properties: dict[str, Any] = field(default_factory=dict)
    source: str = ""


# --------------------------------------------------------------------------------------
# raw readers: yield (properties, geometry-dict-or-None, label) per feature, lon/lat order


@dataclass
class _RawFeature:
    properties: dict[str, Any]
    #: list of polygons; each polygon = [exterior, hole, ...], each ring an (n, 2) array
    polygons: list[list[np.ndarray]]
    label: str  # "feature 3" / "placemark 3" / "record 3"


def _read_geojson(path: Path) -> Iterator[_RawFeature]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise GridImportError(f"{path}: line {e.lineno} column {e.colno}: invalid JSON: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise GridImportError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if isinstance(data, dict) and data.get("type") == "Feature":
        feats = [data]
    elif isinstance(data, dict) and data.get("type") == "FeatureCollection" and isinstance(data.get("features"), list):
        feats = data["features"]
    elif isinstance(data, dict) and data.get("type") in ("Polygon", "MultiPolygon"):
        feats = [{"type": "Feature", "properties": {}, "geometry": data}]
    else:
        raise GridImportError(f"{path}: expected a GeoJSON FeatureCollection of Polygon/MultiPolygon features")
    for i, f in enumerate(feats, 1):
        label = f"feature {i}"
        if not isinstance(f, dict):
            raise GridImportError(f"{path}: {label}: not a GeoJSON Feature object")
        props = f.get("properties") or {}
        geom = f.get("geometry")
        polys: list[list[np.ndarray]] = []
        if geom is not None:
            gtype = geom.get("type")
            coords = geom.get("coordinates")
            try:
                if gtype == "Polygon":
                    polys = [[_ring(r) for r in coords]]
                elif gtype == "MultiPolygon":
                    polys = [[_ring(r) for r in p] for p in coords]
                else:
                    raise GridImportError(
                        f"{path}: {label}{_idhint(props)}: geometry type {gtype!r} is not Polygon or MultiPolygon"
                    )
            except (TypeError, ValueError, IndexError) as e:
                if isinstance(e, GridImportError):
                    raise
                raise GridImportError(f"{path}: {label}{_idhint(props)}: malformed coordinates ({e})") from None
        yield _RawFeature(dict(props), polys, label)


def _ring(coords) -> np.ndarray:
    a = np.asarray(coords, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError("a ring must be a list of [lon, lat] positions")
    return a[:, :2]


_KML_NS = "{http://www.opengis.net/kml/2.2}"


def _read_kml(path: Path) -> Iterator[_RawFeature]:
    from lxml import etree

    try:
        root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    except etree.XMLSyntaxError as e:
        raise GridImportError(f"{path}: line {e.lineno}: invalid KML/XML: {e.msg}") from None

    def local(tag) -> str:
        return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""

    def children(el, name):
        return [c for c in el.iter() if local(c.tag) == name]

    def parse_coords(el, where) -> np.ndarray:
        text = " ".join(t.text or "" for t in children(el, "coordinates"))
        pts = []
        for tok in text.split():
            parts = tok.split(",")
            try:
                pts.append((float(parts[0]), float(parts[1])))
            except (ValueError, IndexError):
                raise GridImportError(f"{path}: {where}: bad coordinate {tok!r} (expected lon,lat[,alt])") from None
        return np.asarray(pts, dtype=np.float64).reshape(-1, 2)

    for i, pm in enumerate(children(root, "Placemark"), 1):
        label = f"placemark {i}"
        props: dict[str, Any] = {}
        for c in pm:
            if local(c.tag) in ("name", "description") and c.text:
                props[local(c.tag)] = c.text.strip()
        for d in children(pm, "Data"):
            vals = [v.text for v in d if local(v.tag) == "value"]
            if d.get("name"):
                props[d.get("name")] = (vals[0] or "").strip() if vals else ""
        for d in children(pm, "SimpleData"):
            if d.get("name"):
                props[d.get("name")] = (d.text or "").strip()
        polys = []
        for pg in children(pm, "Polygon"):
            rings = []
            for b in pg:
                if local(b.tag) == "outerBoundaryIs":
                    rings.insert(0, parse_coords(b, label))
                elif local(b.tag) == "innerBoundaryIs":
                    rings.append(parse_coords(b, label))
            polys.append(rings)
        if not polys and (children(pm, "Point") or children(pm, "LineString")):
            raise GridImportError(f"{path}: {label}{_idhint(props)}: geometry is not a Polygon")
        yield _RawFeature(props, polys, label)


def _read_dbf(path: Path) -> list[dict[str, Any]]:
    """Attribute table of a shapefile (.dbf, dBASE III); text decoded per .cpg, else UTF-8 then GBK."""
    raw = path.read_bytes()
    if len(raw) < 32:
        raise GridImportError(f"{path}: truncated .dbf file")
    nrec, hlen, rlen = struct.unpack("<IHH", raw[4:12])
    fields = []
    off = 32
    while off + 32 <= hlen and raw[off] != 0x0D:
        name = raw[off : off + 11].split(b"\0", 1)[0].decode("ascii", "replace")
        ftype = chr(raw[off + 11])
        flen, fdec = raw[off + 16], raw[off + 17]
        fields.append((name, ftype, flen, fdec))
        off += 32
    cpg = path.with_suffix(".cpg")
    encs = [cpg.read_text().strip()] if cpg.exists() else []
    encs += ["utf-8", "gbk"]

    def dec(b: bytes) -> str:
        for enc in encs:
            try:
                return b.decode(enc).strip()
            except (UnicodeDecodeError, LookupError):
                continue
        return b.decode("latin-1").strip()

    rows = []
    for r in range(nrec):
        start = hlen + r * rlen
        rec = raw[start : start + rlen]
        if len(rec) < rlen:
            raise GridImportError(f"{path}: truncated at record {r + 1}")
        pos = 1
        row: dict[str, Any] = {}
        for name, ftype, flen, fdec in fields:
            val = rec[pos : pos + flen]
            pos += flen
            s = dec(val)
            if ftype in "NF" and s:
                try:
                    row[name] = float(s) if (fdec or "." in s) else int(s)
                except ValueError:
                    row[name] = s
            elif ftype == "L":
                row[name] = s.upper() in ("T", "Y") if s and s not in "?" else None
            else:
                row[name] = s
        rows.append(row)
    return rows


def _read_shapefile(path: Path) -> Iterator[_RawFeature]:
    """ESRI Shapefile polygons (types 5/15/25); a ``.prj`` in a projected CRS is reprojected with pyproj."""
    shp = path.read_bytes()
    if len(shp) < 100 or struct.unpack(">i", shp[0:4])[0] != 9994:
        raise GridImportError(f"{path}: not an ESRI shapefile (bad header)")
    shape_type = struct.unpack("<i", shp[32:36])[0]
    if shape_type not in (5, 15, 25):
        raise GridImportError(f"{path}: shapefile holds shape type {shape_type}, expected polygons (5, 15 or 25)")
    dbf = path.with_suffix(".dbf")
    rows = _read_dbf(dbf) if dbf.exists() else []
    transform = None
    prj = path.with_suffix(".prj")
    if prj.exists():
        from pyproj import CRS, Transformer

        try:
            crs = CRS.from_wkt(prj.read_text(errors="replace"))
        except Exception as e:  # pyproj raises CRSError; any parse failure is a file problem
            raise GridImportError(f"{prj}: cannot parse the projection: {e}") from None
        if not crs.is_geographic:
            transform = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    off, n = 100, 0
    while off + 8 <= len(shp):
        n += 1
        _recno, clen = struct.unpack(">ii", shp[off : off + 8])
        content = shp[off + 8 : off + 8 + 2 * clen]
        off += 8 + 2 * clen
        label = f"record {n}"
        props = rows[n - 1] if n - 1 < len(rows) else {}
        st = struct.unpack("<i", content[:4])[0] if len(content) >= 4 else 0
        if st == 0:
            yield _RawFeature(props, [], label)
            continue
        nparts, npts = struct.unpack("<ii", content[36:44])
        parts = list(struct.unpack(f"<{nparts}i", content[44 : 44 + 4 * nparts])) + [npts]
        p0 = 44 + 4 * nparts
        pts = np.frombuffer(content[p0 : p0 + 16 * npts], dtype="<f8").reshape(-1, 2).copy()
        if transform is not None:
            pts[:, 0], pts[:, 1] = transform.transform(pts[:, 0], pts[:, 1])
        rings = [pts[parts[k] : parts[k + 1]] for k in range(nparts)]
        yield _RawFeature(props, _assemble_rings(rings), label)


def _signed_area(r: np.ndarray) -> float:
    x, y = r[:, 0], r[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _assemble_rings(rings: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Shapefile rings -> polygons: clockwise rings are exteriors, counter-clockwise ones holes."""
    outers = [[r] for r in rings if _signed_area(r) <= 0]
    holes = [r for r in rings if _signed_area(r) > 0]
    if not outers:  # wrongly wound file: treat every ring as an exterior
        return [[r] for r in rings]
    for h in holes:
        hp = Polygon(h)
        for o in outers:
            if Polygon(o[0]).contains(hp.representative_point()):
                o.append(h)
                break
        else:
            outers.append([h])
    return outers


def _reader(path: Path):
    suf = path.suffix.lower()
    if suf in (".geojson", ".json"):
        return _read_geojson
    if suf == ".kml":
        return _read_kml
    if suf == ".shp":
        return _read_shapefile
    raise GridImportError(f"{path}: unknown grid file type {suf!r}; use .geojson/.json, .kml or .shp")


# --------------------------------------------------------------------------------------
# validation and conversion


def _idhint(props: dict[str, Any]) -> str:
    for k in ID_FIELDS:
        if props.get(k) not in (None, ""):
            return f" (id {props[k]!s})"
    return ""


def _pick(props: dict[str, Any], names: tuple[str, ...], explicit: str | None) -> Any:
    if explicit is not None:
        return props.get(explicit)
    lower = {str(k).lower(): v for k, v in props.items()}
    for n in names:
        if n.lower() in lower and lower[n.lower()] not in (None, ""):
            return lower[n.lower()]
    return None


def _check_range(polys: list[list[np.ndarray]], where: str, crs: str) -> None:
    rings = [r for p in polys for r in p if len(r)]
    allpts = np.concatenate(rings) if rings else np.zeros((0, 2))
    if not len(allpts):
        return
    if not np.all(np.isfinite(allpts)):
        raise GridImportError(f"{where}: coordinates contain NaN or infinity")
    lon, lat = allpts[:, 0], allpts[:, 1]
    bad_lon = np.abs(lon) > 180
    bad_lat = np.abs(lat) > 90
    swapped_ok = np.all(np.abs(lat) <= 180) and np.all(np.abs(lon) <= 90)
    if np.any(bad_lon | bad_lat):
        k = int(np.argmax(bad_lon | bad_lat))
        hint = " — lat/lon look swapped; GeoJSON/KML order is [lon, lat]" if swapped_ok else ""
        raise GridImportError(
            f"{where}: coordinate [{float(lon[k])!r}, {float(lat[k])!r}] out of range (lon must be within ±180, lat within ±90){hint}"
        )
    from geo.crs import in_china

    # In range both ways: warn when the swapped reading lands in China and the given one does not.
    if np.mean(in_china(lon, lat)) < 0.5 and np.mean(in_china(lat, lon)) > 0.5:
        warnings.warn(
            f"{where}: coordinates look like [lat, lon] (e.g. [{float(lon[0])}, {float(lat[0])}]); "
            "GeoJSON/KML order is [lon, lat] — swap the columns if the grids land in the wrong place",
            GridImportWarning,
            stacklevel=4,
        )


def _to_geometry(polys: list[list[np.ndarray]], where: str, crs: str) -> Polygon | MultiPolygon:
    if not polys or all(len(p) == 0 or len(p[0]) == 0 for p in polys):
        raise GridImportError(f"{where}: empty polygon (no coordinates)")
    out = []
    for pi, rings in enumerate(polys, 1):
        conv = []
        for ri, r in enumerate(rings):
            if len(r) < 3 or (len(r) < 4 and np.allclose(r[0], r[-1])):
                raise GridImportError(f"{where}: ring {ri + 1} of polygon {pi} has {len(r)} points; a ring needs at least 3")
            lon, lat = to_wgs84(r[:, 0], r[:, 1], crs)
            conv.append(np.column_stack([np.asarray(lon), np.asarray(lat)]))
        p = Polygon(conv[0], conv[1:])
        if p.is_empty or p.convex_hull.area == 0:
            raise GridImportError(f"{where}: empty polygon (zero area)")
        if not p.is_valid:
            why = explain_validity(p)
            raise GridImportError(f"{where}: invalid polygon {pi}: {why} (lon lat); fix the outline (e.g. QGIS 'Fix geometries')")
        out.append(p)
    geom: Polygon | MultiPolygon = out[0] if len(out) == 1 else MultiPolygon(out)
    if not geom.is_valid:
        why = explain_validity(geom)
        raise GridImportError(f"{where}: invalid multipolygon: {why} (lon lat)")
    return geom


def _features(path: str | Path, crs: str, id_field: str | None, kind: str):
    p = Path(path)
    if crs not in CRS_NAMES:
        raise GridImportError(f"unknown CRS {crs!r}; expected one of {', '.join(CRS_NAMES)}")
    if not p.exists():
        raise GridImportError(f"{p}: no such file")
    if p.is_dir():
        raise GridImportError(f"{p}: is a directory, expected a grid file")
    reader = _reader(p)
    try:
        raw = list(reader(p))
    except GridImportError:
        raise
    except OSError as e:
        raise GridImportError(f"{p}: cannot read: {e.strerror or e}") from None
    except (struct.error, ValueError, IndexError) as e:
        raise GridImportError(f"{p}: unreadable {kind} file: {e}") from None
    if not raw:
        raise GridImportError(f"{p}: no {kind} features found")
    seen: dict[str, str] = {}
    for f in raw:
        fid = _pick(f.properties, ID_FIELDS, id_field)
        if fid in (None, ""):
            want = repr(id_field) if id_field else "one of " + ", ".join(ID_FIELDS[:5])
            raise GridImportError(f"{p}: {f.label}: missing {kind} id (property {want}); pass --id-field NAME")
        fid = str(fid).strip()
        if fid in seen:
            raise GridImportError(f"{p}: {f.label}: duplicate {kind} id {fid!r} (first used by {seen[fid]})")
        seen[fid] = f.label
        where = f"{p}: {f.label} ({kind} {fid})"
        _check_range(f.polygons, where, crs)
        geom = _to_geometry(f.polygons, where, crs)
        name = _pick(f.properties, NAME_FIELDS, None)
        yield fid, str(name) if name not in (None, "") else fid, geom, f.properties, f"{p.name} {f.label}"


def load_grids(path: str | Path, crs: str = "wgs84", id_field: str | None = None) -> list[Grid]:
    """Read grid polygons from GeoJSON (.geojson/.json), KML (.kml) or ESRI Shapefile (.shp).

    ``crs`` is the datum of the file's coordinates (``wgs84``, ``gcj02`` for AMap exports,
    ``bd09`` for Baidu); every vertex is converted to WGS-84. ``id_field`` names the
    property holding the grid id (default: the first of :data:`ID_FIELDS` present). All
    properties are kept. Raises :class:`GridImportError` naming file, feature and id.
    """
    return [Grid(fid, name, geom, props, src) for fid, name, geom, props, src in _features(path, crs, id_field, "grid")]


def load_no_fly(path: str | Path, crs: str = "wgs84", id_field: str | None = None, default_buffer_m: float = 0.0) -> list[NoFlyArea]:
    """Read no-fly zones (same formats as :func:`load_grids`); ``buffer_m`` property = safety buffer in metres."""
    out = []
    for fid, name, geom, props, src in _features(path, crs, id_field, "zone"):
        b = props.get("buffer_m", default_buffer_m)
        try:
            b = float(b if b not in (None, "") else default_buffer_m)
        except (TypeError, ValueError):
            raise GridImportError(f"{src} (zone {fid}): buffer_m must be a number of metres, got {b!r}") from None
        if b < 0:
            raise GridImportError(f"{src} (zone {fid}): buffer_m must be >= 0, got {b}")
        out.append(NoFlyArea(fid, name, geom, b, props, src))
    return out


def select_grids(grids: list[Grid], ids: list[str] | None) -> list[Grid]:
    """The grids named in ``ids`` (in that order); unknown ids are an error listing them."""
    if not ids:
        return list(grids)
    by_id = {g.id: g for g in grids}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise GridImportError(f"unknown grid id(s): {', '.join(missing)}")
    return [by_id[i] for i in ids]

