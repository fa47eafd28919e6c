"""Grid import: GeoJSON, KML and ESRI Shapefile polygons -> :class:`Grid` records in WGS-84.

County grid files (网格) usually come from AMap (GCJ-02), sometimes Baidu (BD-09) or a
GIS department (WGS-84 / CGCS2000 shapefiles). Every vertex is converted to WGS-84
lon/lat degrees with :func:`geo.crs.to_wgs84`. Errors are :class:`GridImportError`
and name the file, the feature (1-based) and, when known, the grid id; suspicious but
usable input (lat/lon that look swapped) raises a :class:`GridImportWarning`.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
import zipfile
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
    #: why this one feature cannot be used (the others still can: ``skip_bad``)
    error: str | None = None
    #: a feature that is not an area at all (a KML point / line): skipped with a warning
    not_area: str | None = None


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
            yield _RawFeature({}, [], label, error=f"{path}: {label}: not a GeoJSON Feature object")
            continue
        props = f.get("properties") or {}
        geom = f.get("geometry")
        polys: list[list[np.ndarray]] = []
        error = None
        if isinstance(geom, dict):
            gtype = geom.get("type")
            coords = geom.get("coordinates")
            try:
                if gtype == "Polygon":
                    polys = [[_ring(r) for r in coords]]
                elif gtype == "MultiPolygon":
                    polys = [[_ring(r) for r in p] for p in coords]
                else:
                    error = f"{path}: {label}{_idhint(props)}: geometry type {gtype!r} is not Polygon or MultiPolygon"
            except (TypeError, ValueError, IndexError) as e:
                error = f"{path}: {label}{_idhint(props)}: malformed coordinates ({e})"
        yield _RawFeature(dict(props), polys, label, error=error)


def _ring(coords) -> np.ndarray:
    a = np.asarray(coords, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError("a ring must be a list of [lon, lat] positions")
    return a[:, :2]


_KML_NS = "{http://www.opengis.net/kml/2.2}"


def _read_kml(path: Path, data: bytes | None = None) -> Iterator[_RawFeature]:
    """KML placemarks; ``data`` = the document's bytes when it came out of a KMZ."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        root = (etree.parse(str(path), parser) if data is None else etree.ElementTree(etree.fromstring(data, parser))).getroot()
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
                raise ValueError(f"{path}: {where}: bad coordinate {tok!r} (expected lon,lat[,alt])") from None
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
        try:
            for pg in children(pm, "Polygon"):
                rings = []
                for b in pg:
                    if local(b.tag) == "outerBoundaryIs":
                        rings.insert(0, parse_coords(b, label))
                    elif local(b.tag) == "innerBoundaryIs":
                        rings.append(parse_coords(b, label))
                polys.append(rings)
        except ValueError as e:
            yield _RawFeature(props, [], label, error=str(e))
            continue
        if not polys:
            kinds = [k for k in ("Point", "LineString") if children(pm, k)]
            if kinds:  # labels, pins and tracks often sit in the same KML as the grid outlines
                yield _RawFeature(props, [], label, not_area=f"{path}: {label}{_idhint(props)}: a {kinds[0]}, "
                                  "not a polygon — skipped")
                continue
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


def _zip_members(path: Path, suffix: str) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise GridImportError(f"{path}: not a zip archive") from None
    members = [m for m in z.infolist() if not m.is_dir() and m.filename.lower().endswith(suffix)
               and not Path(m.filename).name.startswith("._")]  # macOS resource forks
    return z, members


def _read_kmz(path: Path) -> Iterator[_RawFeature]:
    """KMZ = zipped KML: the archive's main document (doc.kml, else its only .kml)."""
    z, kmls = _zip_members(path, ".kml")
    with z:
        if not kmls:
            raise GridImportError(f"{path}: the KMZ holds no .kml document")
        main = next((m for m in kmls if Path(m.filename).name.lower() == "doc.kml"), None)
        if main is None and len(kmls) > 1:
            raise GridImportError(f"{path}: the KMZ holds several .kml documents and no doc.kml: "
                                  + ", ".join(m.filename for m in kmls))
        data = z.read(main or kmls[0])
    yield from _read_kml(path, data)


def _read_zipped_shapefile(path: Path) -> Iterator[_RawFeature]:
    """A zipped shapefile (.shp with .dbf/.prj/.cpg beside it), as county GIS offices send them."""
    import tempfile

    z, shps = _zip_members(path, ".shp")
    with z:
        if len(shps) != 1:
            found = ", ".join(m.filename for m in shps) or "none"
            raise GridImportError(f"{path}: expected exactly one .shp in the zip, found {found}")
        stem = shps[0].filename[:-4]
        with tempfile.TemporaryDirectory(prefix="skygrid-shp-") as tmp:
            for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
                m = next((i for i in z.infolist() if i.filename.lower() == (stem + ext).lower()), None)
                if m is not None:  # written under a fixed name: no path from the archive is trusted
                    (Path(tmp) / f"grids{ext}").write_bytes(z.read(m))
            feats = list(_read_shapefile(Path(tmp) / "grids.shp"))  # read before the folder goes
    yield from feats


def _reader(path: Path):
    suf = path.suffix.lower()
    if suf in (".geojson", ".json"):
        return _read_geojson
    if suf == ".kml":
        return _read_kml
    if suf == ".kmz":
        return _read_kmz
    if suf == ".shp":
        return _read_shapefile
    if suf == ".zip":
        return _read_zipped_shapefile
    raise GridImportError(f"{path}: unknown grid file type {suf!r}; use .geojson/.json, .kml/.kmz, .shp or "
                          "a zipped shapefile (.zip)")


# --------------------------------------------------------------------------------------
# which coordinate system a file is in


#: names a GeoJSON ``crs`` member may carry, -> our CRS name. CGCS2000 (EPSG:4490) and
#: WGS-84 agree to a few centimetres, far below a grid's accuracy.
_DECLARED = {
    "wgs84": "wgs84", "wgs-84": "wgs84", "epsg:4326": "wgs84", "urn:ogc:def:crs:epsg::4326": "wgs84",
    "urn:ogc:def:crs:ogc:1.3:crs84": "wgs84", "crs84": "wgs84", "epsg:4490": "wgs84",
    "urn:ogc:def:crs:epsg::4490": "wgs84", "cgcs2000": "wgs84",
    "gcj02": "gcj02", "gcj-02": "gcj02", "bd09": "bd09", "bd-09": "bd09",
}


def declared_crs(path: str | Path) -> tuple[str | None, str]:
    """The coordinate system a grid file declares itself, and how strongly.

    Returns (crs or None, kind): kind ``"member"`` for a GeoJSON ``crs`` member (binding),
    ``"prj"`` for a shapefile's .prj (a datum: WGS-84/CGCS2000 — but AMap-derived shapefiles
    often carry a WGS-84 .prj over GCJ-02 coordinates, so an explicit --crs overrides it),
    ``""`` when the file declares nothing (KML/KMZ always: KML says WGS-84 by definition, yet
    Chinese map tools write GCJ-02 into it).
    """
    p = Path(path)
    suf = p.suffix.lower()
    if suf in (".geojson", ".json"):
        try:
            data = json.loads(p.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            return None, ""
        crs = data.get("crs") if isinstance(data, dict) else None
        if not isinstance(crs, dict):
            return None, ""
        name = str((crs.get("properties") or {}).get("name", "")).strip()
        got = _DECLARED.get(name.lower())
        if got is None:
            raise GridImportError(f"{p}: declares crs {name!r}, which SkyGrid does not read; use WGS-84 "
                                  "(urn:ogc:def:crs:OGC:1.3:CRS84), gcj02 or bd09, or reproject the file")
        return got, "member"
    if suf == ".shp":
        return ("wgs84", "prj") if p.with_suffix(".prj").exists() else (None, "")
    if suf == ".zip":
        try:
            with zipfile.ZipFile(p) as z:
                return ("wgs84", "prj") if any(n.lower().endswith(".prj") for n in z.namelist()) else (None, "")
        except (OSError, zipfile.BadZipFile):
            return None, ""
    return None, ""


#: the one setting that names the CRS of undeclared grid files, read by `skygrid plan` and
#: `skygrid serve` alike (dispatch Settings.grids_crs reads the same variable)
CRS_ENV = "SKYGRID_GRIDS_CRS"


def resolve_crs(path: str | Path, given: str | None, option: str = "--crs",
                environ: dict[str, str] | None = None) -> str:
    """The CRS to read ``path`` in: ``given`` (the user's --crs), else the file's own
    declaration, else ``SKYGRID_GRIDS_CRS``, else an error asking for --crs.

    There is no reliable test that tells GCJ-02 from WGS-84 by the coordinates alone (the
    offset is a smooth shift of a few hundred metres that keeps every grid plausible), so
    a file that does not say which it is must be told: guessing wrong sends the drone
    ~500 m off with no other sign. A --crs that contradicts a GeoJSON ``crs`` member is an
    error; one that contradicts a shapefile's .prj wins with a warning (see
    :func:`declared_crs`).
    """
    env = os.environ if environ is None else environ
    if given is not None and given not in CRS_NAMES:
        raise GridImportError(f"{option} {given!r}: expected one of {', '.join(CRS_NAMES)}")
    declared, kind = declared_crs(path)
    if given is not None:
        if declared is not None and declared != given:
            if kind == "member":
                raise GridImportError(f"{path}: the file declares its coordinates as {declared} but {option} {given} "
                                      f"was given; drop {option} or correct the file's crs member")
            warnings.warn(f"{path}: the .prj says WGS-84/CGCS2000 but {option} {given} was given; reading the "
                          f"coordinates as {given}", GridImportWarning, stacklevel=2)
        return given
    if declared is not None:
        return declared
    fallback = (env.get(CRS_ENV) or "").strip().lower()
    if fallback:
        if fallback not in CRS_NAMES:
            raise GridImportError(f"{CRS_ENV}={fallback!r}: expected one of {', '.join(CRS_NAMES)}")
        return fallback
    raise GridImportError(
        f"{path}: the file does not say which coordinate system it uses; pass {option} wgs84 (GPS, QGIS, "
        f"天地图), {option} gcj02 (高德/腾讯 AMap exports) or {option} bd09 (百度), or set {CRS_ENV}")


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
    """Validate in the file's own coordinates (so a reported position is one the user can find
    in their file or map), then convert every vertex to WGS-84."""
    if not polys or all(len(p) == 0 or len(p[0]) == 0 for p in polys):
        raise GridImportError(f"{where}: empty polygon (no coordinates)")
    axes = "lon lat" if crs == "wgs84" else f"lon lat, {crs} as in the file"
    raw = []
    for pi, rings in enumerate(polys, 1):
        for ri, r in enumerate(rings):
            if len(r) < 3 or (len(r) < 4 and np.allclose(r[0], r[-1])):
                raise GridImportError(f"{where}: ring {ri + 1} of polygon {pi} has {len(r)} points; a ring needs at least 3")
        p = Polygon(rings[0], rings[1:])
        if p.is_empty or p.convex_hull.area == 0:
            raise GridImportError(f"{where}: empty polygon (zero area)")
        if not p.is_valid:
            why = explain_validity(p)
            raise GridImportError(f"{where}: invalid polygon {pi}: {why} ({axes}); fix the outline (e.g. QGIS 'Fix geometries')")
        raw.append(p)
    if len(raw) > 1 and not MultiPolygon(raw).is_valid:
        raise GridImportError(f"{where}: invalid multipolygon: {explain_validity(MultiPolygon(raw))} ({axes})")
    out = []
    for rings in polys:
        conv = []
        for r in rings:
            lon, lat = to_wgs84(r[:, 0], r[:, 1], crs)
            conv.append(np.column_stack([np.asarray(lon), np.asarray(lat)]))
        out.append(Polygon(conv[0], conv[1:]))
    return out[0] if len(out) == 1 else MultiPolygon(out)


def _features(path: str | Path, crs: str, id_field: str | None, kind: str, skip_bad: bool = False):
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
    seen: dict[str, str] = {}
    out = []
    bad: list[str] = []
    for f in raw:
        if f.not_area:
            warnings.warn(f.not_area, GridImportWarning, stacklevel=3)
            continue
        try:
            if f.error:
                raise GridImportError(f.error)
            fid = _pick(f.properties, ID_FIELDS, id_field)
            if fid in (None, ""):
                want = repr(id_field) if id_field else "one of " + ", ".join(ID_FIELDS[:5])
                raise GridImportError(f"{p}: {f.label}: missing {kind} id (property {want}); pass --id-field NAME")
            fid = str(fid).strip()
            if fid in seen:
                raise GridImportError(f"{p}: {f.label}: duplicate {kind} id {fid!r} (first used by {seen[fid]})")
            where = f"{p}: {f.label} ({kind} {fid})"
            _check_range(f.polygons, where, crs)
            geom = _to_geometry(f.polygons, where, crs)
        except GridImportError as e:
            if not skip_bad:
                raise
            bad.append(str(e))
            warnings.warn(f"skipped: {e}", GridImportWarning, stacklevel=3)
            continue
        seen[fid] = f.label
        name = _pick(f.properties, NAME_FIELDS, None)
        out.append((fid, str(name) if name not in (None, "") else fid, geom, f.properties, f"{p.name} {f.label}"))
    if not out:
        why = f" ({len(bad)} skipped as bad: {bad[0]})" if bad else ""
        raise GridImportError(f"{p}: no {kind} features found{why}")
    return out


def load_grids(path: str | Path, crs: str = "wgs84", id_field: str | None = None,
               skip_bad: bool = False) -> list[Grid]:
    """Read grid polygons from GeoJSON (.geojson/.json), KML (.kml/.kmz) or ESRI Shapefile
    (.shp, or a .zip holding one).

    KML points and lines (labels, pins) are skipped with a :class:`GridImportWarning`.
    With ``skip_bad`` a feature that cannot be used (bad geometry, missing or duplicate id)
    is reported as a warning and left out instead of refusing the whole file. Entry points
    that take user files resolve ``crs`` with :func:`resolve_crs` first.

    ``crs`` is the datum of the file's coordinates (``wgs84``, ``gcj02`` for AMap exports,
    ``bd09`` for Baidu); every vertex is converted to WGS-84. ``id_field`` names the
    property holding the grid id (default: the first of :data:`ID_FIELDS` present). All
    properties are kept. Raises :class:`GridImportError` naming file, feature and id.
    """
    return [Grid(fid, name, geom, props, src)
            for fid, name, geom, props, src in _features(path, crs, id_field, "grid", skip_bad)]


def load_no_fly(path: str | Path, crs: str = "wgs84", id_field: str | None = None,
                default_buffer_m: float = 0.0) -> list[NoFlyArea]:
    """Read no-fly zones (same formats as :func:`load_grids`); ``buffer_m`` property = safety buffer in metres.

    There is no ``skip_bad`` here on purpose: silently flying without a no-fly zone that did
    not import is worse than stopping, so every zone must import.
    """
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



def load_upload(filename: str, data: bytes, crs: str | None, kind: str = "grid",
                skip_bad: bool = False) -> tuple[list[Grid] | list[NoFlyArea], str]:
    """Grids (or no-fly zones, ``kind="zone"``) from an uploaded file's bytes, as the planner
    page sends them; ``filename`` only gives the format (its suffix). Returns (features, crs
    used). The CRS is resolved like a file on disk (:func:`resolve_crs`)."""
    import tempfile

    suffix = Path(filename or "").suffix.lower()
    if suffix not in (".geojson", ".json", ".kml", ".kmz", ".zip"):
        raise GridImportError(f"{filename}: unknown grid file type {suffix!r}; use .geojson/.json, .kml/.kmz or "
                              "a zipped shapefile (.zip)")
    with tempfile.TemporaryDirectory(prefix="skygrid-upload-") as tmp:
        p = Path(tmp) / f"upload{suffix}"
        p.write_bytes(data)
        try:
            used = resolve_crs(p, crs, "crs")
            if kind == "zone":
                return load_no_fly(p, crs=used), used
            return load_grids(p, crs=used, skip_bad=skip_bad), used
        except GridImportError as e:  # name the user's file, not the temporary copy
            raise GridImportError(str(e).replace(str(p), filename)) from None


def geojson_features(items: list[Grid] | list[NoFlyArea]) -> dict[str, Any]:
    """WGS-84 GeoJSON FeatureCollection of grids or zones (id, name, buffer_m, properties)."""
    from shapely.geometry import mapping

    feats = []
    for it in items:
        props = {**{k: v for k, v in it.properties.items() if isinstance(v, str | int | float | bool)},
                 "id": it.id, "name": it.name}
        if isinstance(it, NoFlyArea):
            props["buffer_m"] = it.buffer_m
        feats.append({"type": "Feature", "id": it.id, "properties": props, "geometry": mapping(it.polygon)})
    return {"type": "FeatureCollection", "features": feats}


def from_geojson(fc: dict[str, Any], kind: str = "grid", crs: str = "wgs84") -> list[Grid] | list[NoFlyArea]:
    """Grids or zones from a GeoJSON FeatureCollection held in memory (the planner page's
    selection, or zones drawn on its map in ``crs``)."""
    data = json.dumps(fc, ensure_ascii=False).encode("utf-8")
    items, _ = load_upload(f"{kind}s.geojson", data, crs, "zone" if kind == "zone" else "grid")
    return items
