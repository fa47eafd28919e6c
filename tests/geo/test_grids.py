"""Grid import: formats, CRS, properties, and every located error."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from geo.crs import wgs84_to_gcj02
from geo.grids import GridImportError, GridImportWarning, load_grids, load_no_fly, select_grids
from geo.projection import LocalFrame

from .helpers import square, write_geojson, write_shapefile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "keqiao"
KEQIAO = EXAMPLES / "grids.geojson"


def test_keqiao_sample_keeps_properties_and_converts_gcj02():
    grids = load_grids(KEQIAO, crs="gcj02")
    assert len(grids) == 36
    g = grids[0]
    assert g.id == "330603-YXQ-001" and g.name == "杨汛村第1网格"
    assert g.properties["grid_worker"] and g.properties["township"] == "杨汛桥街道"
    raw = load_grids(KEQIAO, crs="wgs84")[0]
    # GCJ-02 -> WGS-84 moves the grid a few hundred metres (south-west near Shaoxing)
    f = LocalFrame(30.09, 120.32)
    e1, n1 = f.to_local(g.polygon.centroid.x, g.polygon.centroid.y)
    e0, n0 = f.to_local(raw.polygon.centroid.x, raw.polygon.centroid.y)
    shift = ((e0 - e1) ** 2 + (n0 - n1) ** 2) ** 0.5
    assert 300 < shift < 700 and e0 > e1 and n0 < n1


def test_gcj02_vertices_round_trip(tmp_path):
    lon, lat = 120.33, 30.09
    glon, glat = wgs84_to_gcj02(lon, lat)
    p = write_geojson(tmp_path / "g.geojson", [({"grid_id": "A"}, square(glon, glat))])
    g = load_grids(p, crs="gcj02")[0]
    x0, y0 = g.polygon.exterior.coords[0]
    assert abs(x0 - lon) < 1e-9 and abs(y0 - lat) < 1e-9


def test_unreadable_file(tmp_path):
    p = tmp_path / "bad.geojson"
    p.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(GridImportError, match=r"bad\.geojson: line 1 column \d+: invalid JSON"):
        load_grids(p)
    with pytest.raises(GridImportError, match="no such file"):
        load_grids(tmp_path / "missing.geojson")
    with pytest.raises(GridImportError, match="unknown grid file type '.csv'"):
        (tmp_path / "x.csv").write_text("a,b")
        load_grids(tmp_path / "x.csv")


def test_missing_and_duplicate_ids(tmp_path):
    p = write_geojson(tmp_path / "g.geojson", [({"grid_id": "A"}, square(120.3, 30.0)), ({"name": "no id"}, square(120.31, 30.0))])
    with pytest.raises(GridImportError, match=r"feature 2: missing grid id"):
        load_grids(p)
    p = write_geojson(tmp_path / "d.geojson", [({"grid_id": "A"}, square(120.3, 30.0)), ({"grid_id": "A"}, square(120.31, 30.0))])
    with pytest.raises(GridImportError, match=r"feature 2: duplicate grid id 'A' \(first used by feature 1\)"):
        load_grids(p)
    # an explicit id field
    p = write_geojson(tmp_path / "c.geojson", [({"wg": "X1"}, square(120.3, 30.0))])
    assert load_grids(p, id_field="wg")[0].id == "X1"


def test_self_intersecting_polygon_says_where(tmp_path):
    bowtie = {"type": "Polygon", "coordinates": [[[120.0, 30.0], [120.01, 30.01], [120.01, 30.0], [120.0, 30.01], [120.0, 30.0]]]}
    p = write_geojson(tmp_path / "g.geojson", [({"grid_id": "OK"}, square(120.3, 30.0)), ({"grid_id": "BOW"}, bowtie)])
    with pytest.raises(GridImportError) as e:
        load_grids(p)
    msg = str(e.value)
    assert "feature 2 (grid BOW)" in msg and "Self-intersection[120.005 30.005]" in msg


def test_empty_polygon(tmp_path):
    p = write_geojson(tmp_path / "g.geojson", [({"grid_id": "E"}, {"type": "Polygon", "coordinates": []})])
    with pytest.raises(GridImportError, match=r"feature 1 \(grid E\): empty polygon"):
        load_grids(p)
    p = write_geojson(tmp_path / "n.geojson", [({"grid_id": "N"}, None)])
    with pytest.raises(GridImportError, match=r"grid N\): empty polygon"):
        load_grids(p)
    flat = {"type": "Polygon", "coordinates": [[[120.0, 30.0], [120.01, 30.0], [120.02, 30.0], [120.0, 30.0]]]}
    p = write_geojson(tmp_path / "f.geojson", [({"grid_id": "F"}, flat)])
    with pytest.raises(GridImportError, match=r"grid F\): empty polygon \(zero area\)"):
        load_grids(p)


def test_out_of_range_and_swapped(tmp_path):
    bad = {"type": "Polygon", "coordinates": [[[200.0, 30.0], [200.01, 30.0], [200.01, 30.01], [200.0, 30.0]]]}
    p = write_geojson(tmp_path / "g.geojson", [({"grid_id": "R"}, bad)])
    with pytest.raises(GridImportError, match=r"grid R\): coordinate \[200\.0, 30\.0\] out of range") as e:
        load_grids(p)
    assert "look swapped" not in str(e.value)
    # [lat, lon] with lat > 90: out of range with a swap hint
    swapped = square(30.0, 120.3)
    p = write_geojson(tmp_path / "s.geojson", [({"grid_id": "S"}, swapped)])
    with pytest.raises(GridImportError, match=r"out of range .*lat/lon look swapped"):
        load_grids(p)
    # in range both ways but lands in China only when swapped: a warning with a hint
    p = write_geojson(tmp_path / "w.geojson", [({"grid_id": "W"}, square(30.0, 85.0))])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        grids = load_grids(p)
    assert len(grids) == 1
    assert any(issubclass(w.category, GridImportWarning) and "look like [lat, lon]" in str(w.message) for w in rec)


def test_wrong_geometry_type(tmp_path):
    p = write_geojson(tmp_path / "g.geojson", [({"grid_id": "P"}, {"type": "Point", "coordinates": [120.0, 30.0]})])
    with pytest.raises(GridImportError, match=r"feature 1 \(id P\): geometry type 'Point' is not Polygon"):
        load_grids(p)


def test_kml_with_hole_and_extended_data(tmp_path):
    kml = """<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document>
<Placemark><name>东村网格</name>
 <ExtendedData><Data name="grid_id"><value>K-1</value></Data><Data name="grid_worker"><value>王芳</value></Data></ExtendedData>
 <MultiGeometry><Polygon>
  <outerBoundaryIs><LinearRing><coordinates>120.30,30.00,0 120.31,30.00,0 120.31,30.01,0 120.30,30.01,0 120.30,30.00,0</coordinates></LinearRing></outerBoundaryIs>
  <innerBoundaryIs><LinearRing><coordinates>120.303,30.003 120.306,30.003 120.306,30.006 120.303,30.006 120.303,30.003</coordinates></LinearRing></innerBoundaryIs>
 </Polygon></MultiGeometry>
</Placemark>
<Placemark><name>西村网格</name><ExtendedData><SchemaData><SimpleData name="grid_id">K-2</SimpleData></SchemaData></ExtendedData>
 <Polygon><outerBoundaryIs><LinearRing><coordinates>120.29,30.00 120.30,30.00 120.30,30.01 120.29,30.00</coordinates></LinearRing></outerBoundaryIs></Polygon>
</Placemark></Document></kml>"""
    p = tmp_path / "g.kml"
    p.write_text(kml, encoding="utf-8")
    g1, g2 = load_grids(p)
    assert (g1.id, g1.name, g1.properties["grid_worker"]) == ("K-1", "东村网格", "王芳")
    assert len(g1.polygon.interiors) == 1
    assert g2.id == "K-2" and g2.name == "西村网格"
    p.write_text("<kml><Document><Placemark>", encoding="utf-8")
    with pytest.raises(GridImportError, match="invalid KML/XML"):
        load_grids(p)


def test_shapefile_polygons_holes_and_attributes(tmp_path):
    outer = [(120.30, 30.00), (120.30, 30.01), (120.31, 30.01), (120.31, 30.00), (120.30, 30.00)]  # clockwise
    hole = [(120.303, 30.003), (120.306, 30.003), (120.306, 30.006), (120.303, 30.006), (120.303, 30.003)]  # ccw
    other = [(120.32, 30.00), (120.32, 30.01), (120.33, 30.01), (120.32, 30.00)]
    p = write_shapefile(tmp_path / "grids.shp", [({"grid_id": "S-1", "name": "南村"}, [outer, hole]),
                                                 ({"grid_id": "S-2", "name": "北村"}, [other])])
    g1, g2 = load_grids(p)
    assert (g1.id, g1.name, g2.id, g2.name) == ("S-1", "南村", "S-2", "北村")
    assert len(g1.polygon.interiors) == 1 and g1.polygon.area == pytest.approx(1e-4 - 9e-6)
    (tmp_path / "junk.shp").write_bytes(b"\0" * 40)
    with pytest.raises(GridImportError, match="not an ESRI shapefile"):
        load_grids(tmp_path / "junk.shp")


def test_no_fly_buffer_and_select(tmp_path):
    zones = load_no_fly(EXAMPLES / "no_fly.geojson", crs="gcj02")
    assert zones[0].id == "NFZ-01" and zones[0].buffer_m == 20
    p = write_geojson(tmp_path / "z.geojson", [({"zone_id": "Z", "buffer_m": "wide"}, square(120.3, 30.0))])
    with pytest.raises(GridImportError, match=r"zone Z\): buffer_m must be a number of metres, got 'wide'"):
        load_no_fly(p)
    grids = load_grids(KEQIAO, crs="gcj02")
    assert [g.id for g in select_grids(grids, ["330603-YXQ-004", "330603-YXQ-003"])] == ["330603-YXQ-004", "330603-YXQ-003"]
    with pytest.raises(GridImportError, match="unknown grid id.*NOPE"):
        select_grids(grids, ["NOPE"])
