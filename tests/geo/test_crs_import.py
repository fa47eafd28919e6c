"""Coordinates that cannot go silently wrong: CRS resolution, --home in the grids' CRS,
default home inside a grid, multi-part grids, zipped shapefiles, KMZ, KML points and
--skip-bad."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import pytest
from shapely.geometry import Point

from geo.crs import gcj02_to_wgs84, wgs84_to_gcj02
from geo.grids import GridImportError, GridImportWarning, load_grids, resolve_crs
from geo.planner import default_home, plan_patrol
from skygrid.cli import main
from tests.geo.helpers import square, write_geojson, write_shapefile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "keqiao"


def test_crs_from_option_declaration_env_or_an_error(tmp_path):
    plain = write_geojson(tmp_path / "g.geojson", [({"grid_id": "A"}, square(120.3, 30.0))])
    with pytest.raises(GridImportError, match=r"g\.geojson: the file does not say.*--crs gcj02"):
        resolve_crs(plain, None, environ={})
    assert resolve_crs(plain, None, environ={"SKYGRID_GRIDS_CRS": "bd09"}) == "bd09"
    assert resolve_crs(plain, "wgs84", environ={"SKYGRID_GRIDS_CRS": "bd09"}) == "wgs84"
    # the sample county declares gcj02 in its crs member; a contradicting --crs is refused
    assert resolve_crs(EXAMPLES / "grids.geojson", None, environ={}) == "gcj02"
    with pytest.raises(GridImportError, match="declares its coordinates as gcj02 but --crs wgs84"):
        resolve_crs(EXAMPLES / "grids.geojson", "wgs84", environ={})
    # a .prj declares WGS-84/CGCS2000 but --crs may override it (AMap-derived shapefiles), with a warning
    shp = write_shapefile(tmp_path / "s.shp", [({"grid_id": "S"}, [[(120.3, 30.0), (120.3, 30.01), (120.31, 30.0), (120.3, 30.0)]])])
    with pytest.raises(GridImportError, match="does not say"):  # no .prj yet
        resolve_crs(shp, None, environ={})
    shp.with_suffix(".prj").write_text('GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137,298.257223563]],'
                                       'PRIMEM["Greenwich",0],UNIT["Degree",0.0174532925199433]]')
    assert resolve_crs(shp, None, environ={}) == "wgs84"
    with pytest.warns(GridImportWarning, match="the .prj says"):
        assert resolve_crs(shp, "gcj02", environ={}) == "gcj02"


def test_serve_and_plan_read_the_same_setting(tmp_path, monkeypatch):
    from dispatch.core.config import Settings
    from dispatch.grids import load_grid_index

    plain = write_geojson(tmp_path / "g.geojson", [({"grid_id": "A"}, square(120.3, 30.0))])
    monkeypatch.setenv("SKYGRID_GRIDS_CRS", "gcj02")
    st = Settings.from_env()
    assert st.grids_crs == "gcj02"
    served = load_grid_index(str(plain), st.grids_crs).grids[0]
    planned = load_grids(plain, resolve_crs(plain, None))[0]
    assert served.polygon.equals_exact(planned.polygon, 1e-12)
    monkeypatch.delenv("SKYGRID_GRIDS_CRS")
    with pytest.raises(GridImportError, match="does not say"):
        load_grid_index(str(plain), Settings.from_env().grids_crs)


def test_invalid_outline_is_reported_in_the_files_own_coordinates(tmp_path):
    bow = {"type": "Polygon", "coordinates": [[[120.30, 30.00], [120.31, 30.01], [120.31, 30.00], [120.30, 30.01], [120.30, 30.00]]]}
    p = write_geojson(tmp_path / "g.geojson", [({"grid_id": "B"}, bow)])
    with pytest.raises(GridImportError, match=r"Self-intersection\[120\.305 30\.005\].*gcj02 as in the file"):
        load_grids(p, crs="gcj02")


def test_skip_bad_reports_one_bad_feature_and_keeps_the_rest(tmp_path):
    bow = {"type": "Polygon", "coordinates": [[[120.30, 30.00], [120.31, 30.01], [120.31, 30.00], [120.30, 30.01], [120.30, 30.00]]]}
    p = write_geojson(tmp_path / "g.geojson", [({"grid_id": "A"}, square(120.3, 30.0)), ({"grid_id": "B"}, bow),
                                               ({"grid_id": "C"}, {"type": "Point", "coordinates": [120.3, 30.0]}),
                                               ({"grid_id": "D"}, square(120.32, 30.0))])
    with pytest.raises(GridImportError, match="feature 2"):
        load_grids(p)
    with pytest.warns(GridImportWarning) as rec:
        grids = load_grids(p, skip_bad=True)
    assert [g.id for g in grids] == ["A", "D"]
    msgs = [str(w.message) for w in rec]
    assert any("feature 2 (grid B)" in m and "Self-intersection" in m for m in msgs)
    assert any("feature 3" in m and "'Point'" in m for m in msgs)


def _kml(polys_and_points: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
            + polys_and_points + "</Document></kml>")


POLY = ('<Placemark><name>东村</name><ExtendedData><Data name="grid_id"><value>K-1</value></Data></ExtendedData>'
        '<Polygon><outerBoundaryIs><LinearRing><coordinates>120.30,30.00 120.31,30.00 120.31,30.01 120.30,30.01 120.30,30.00'
        '</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark>')
PIN = '<Placemark><name>村委会</name><Point><coordinates>120.305,30.005</coordinates></Point></Placemark>'


def test_kml_points_are_skipped_with_a_warning_and_kmz_reads(tmp_path):
    p = tmp_path / "g.kml"
    p.write_text(_kml(POLY + PIN), encoding="utf-8")
    with pytest.warns(GridImportWarning, match="placemark 2.*a Point, not a polygon — skipped"):
        grids = load_grids(p)
    assert [g.id for g in grids] == ["K-1"]
    kmz = tmp_path / "g.kmz"
    with zipfile.ZipFile(kmz, "w") as z:
        z.writestr("doc.kml", _kml(POLY + PIN))
        z.writestr("files/icon.png", b"\x89PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridImportWarning)
        assert [g.id for g in load_grids(kmz)] == ["K-1"]


def test_zipped_shapefile_with_prj(tmp_path):
    ring = [(120.30, 30.00), (120.30, 30.01), (120.31, 30.01), (120.31, 30.00), (120.30, 30.00)]
    shp = write_shapefile(tmp_path / "wg.shp", [({"grid_id": "Z-1", "name": "南村"}, [ring])])
    shp.with_suffix(".prj").write_text('GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137,298.257223563]],'
                                       'PRIMEM["Greenwich",0],UNIT["Degree",0.0174532925199433]]')
    z = tmp_path / "county.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for ext in (".shp", ".dbf", ".prj", ".cpg"):
            zf.write(shp.with_suffix(ext), f"网格/wg{ext}")
    assert resolve_crs(z, None, environ={}) == "wgs84"
    (g,) = load_grids(z, "wgs84")
    assert (g.id, g.name) == ("Z-1", "南村") and g.polygon.area == pytest.approx(1e-4)


def test_multi_part_grid_keeps_every_part_in_every_output(tmp_path):
    from geo.export_dji import dji_kmz_bytes  # noqa: F401 - routes only; grids are in the others
    from geo.outputs import plan_features, qgc_mission, write_kml

    a, b = square(120.300, 30.000, 0.004), square(120.310, 30.000, 0.004)
    multi = {"type": "MultiPolygon", "coordinates": [a["coordinates"], b["coordinates"]]}
    p = write_geojson(tmp_path / "m.geojson", [({"grid_id": "M"}, multi)])
    grids = load_grids(p)
    plan = plan_patrol(grids, home=(30.002, 120.302), altitude_m=60)
    g = plan.grids[0]
    assert len(g.all_parts()) == 2
    feats = [f for f in plan_features(plan) if f["properties"]["kind"] == "grid"]
    assert feats[0]["geometry"]["type"] == "MultiPolygon" and len(feats[0]["geometry"]["coordinates"]) == 2
    assert write_kml(plan, tmp_path / "m.kml").read_text(encoding="utf-8").count("<Polygon>") >= 2 + 0
    kml = write_kml(plan, tmp_path / "m.kml").read_text(encoding="utf-8")
    assert "<MultiGeometry>" in kml
    # both parts are flown and the QGC inclusion fence holds both
    from shapely.geometry import Polygon as P
    s = plan.sorties[0]
    incl = next(q for q in qgc_mission(plan, s)["geoFence"]["polygons"] if q["inclusion"])
    fence = P([(lo, la) for la, lo in incl["polygon"]])
    for part in g.all_parts():
        assert fence.contains(P(part[0]))
    xs = [w.lon for w in s.waypoints if w.kind == "line_start"]
    assert min(xs) < 120.305 < max(xs)
    round_trip = type(plan).from_dict(json.loads(json.dumps(plan.to_dict())))
    assert len(round_trip.grids[0].all_parts()) == 2


def test_default_home_is_inside_a_grid_not_the_centroid(tmp_path):
    # an L of two grids whose centroid falls outside both
    a = {"type": "Polygon", "coordinates": [[[120.30, 30.00], [120.31, 30.00], [120.31, 30.002], [120.30, 30.002], [120.30, 30.00]]]}
    b = {"type": "Polygon", "coordinates": [[[120.30, 30.002], [120.302, 30.002], [120.302, 30.012], [120.30, 30.012], [120.30, 30.002]]]}
    grids = load_grids(write_geojson(tmp_path / "l.geojson", [({"grid_id": "A"}, a), ({"grid_id": "B"}, b)]))
    lat, lon = default_home(grids)
    assert any(g.polygon.contains(Point(lon, lat)) for g in grids)


def test_cli_home_is_read_in_the_grids_crs(tmp_path, capsys):
    out = tmp_path / "p.json"
    # home given in GCJ-02 like the file; the plan stores its WGS-84 position
    glon, glat = wgs84_to_gcj02(120.3289584, 30.0879584)
    rc = main(["plan", str(EXAMPLES / "grids.geojson"), "--grids", "330603-YXQ-003", "--home", f"{glat},{glon}",
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    home = json.loads(out.read_text(encoding="utf-8"))["home"]
    assert home["lat"] == pytest.approx(30.0879584, abs=1e-7) and home["lon"] == pytest.approx(120.3289584, abs=1e-7)
    # no --home: inside a grid
    rc = main(["plan", str(EXAMPLES / "grids.geojson"), "--grids", "330603-YXQ-003,330603-YXQ-010", "--out", str(out)])
    assert rc == 0
    home = json.loads(out.read_text(encoding="utf-8"))["home"]
    grids = load_grids(EXAMPLES / "grids.geojson", crs="gcj02")
    assert any(g.polygon.contains(Point(home["lon"], home["lat"])) for g in grids
               if g.id in ("330603-YXQ-003", "330603-YXQ-010"))
    # an error about home names the user's own numbers
    nf = json.loads((EXAMPLES / "no_fly.geojson").read_text(encoding="utf-8"))
    ring = nf["features"][0]["geometry"]["coordinates"][0]
    clon = sum(p[0] for p in ring[:-1]) / (len(ring) - 1)
    clat = sum(p[1] for p in ring[:-1]) / (len(ring) - 1)
    rc = main(["plan", str(EXAMPLES / "grids.geojson"), "--no-fly", str(EXAMPLES / "no_fly.geojson"),
               "--home", f"{clat:.6f},{clon:.6f}", "--out", str(out)])
    assert rc == 1
    assert f"home {clat:.6f},{clon:.6f} (gcj02) is inside no-fly zone NFZ-01" in capsys.readouterr().err
    assert gcj02_to_wgs84(clon, clat)  # the zone's centre is a real GCJ-02 position


def test_cli_dji_and_qgc_write_the_named_files(tmp_path, capsys):
    rc = main(["plan", str(EXAMPLES / "grids.geojson"), "--grids", "330603-YXQ-003,330603-YXQ-004", "--drones", "2",
               "--out", str(tmp_path / "p.json"), "--qgc", str(tmp_path / "m.plan"), "--dji", str(tmp_path / "r.kmz")])
    assert rc == 0
    n = len(json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))["sorties"])
    assert (tmp_path / "m.plan").exists() and (tmp_path / "r.kmz").exists()
    assert len(list(tmp_path.glob("r.*.kmz"))) == n > 1
    assert "每个KMZ一个架次" in "".join(capsys.readouterr().out.split())  # rich wraps lines
    rc = main(["plan", str(EXAMPLES / "grids.geojson"), "--camera", "p4rtk", "--out", str(tmp_path / "q.json"),
               "--dji", str(tmp_path / "x.kmz")])
    assert rc == 1 and "no DJI WPML route support" in capsys.readouterr().err
