"""geo's errors and warnings read in Chinese on the planner page (issue 15 item 6).

Every message here is produced by geo itself from a bad input (not written out by hand), then
translated; what must stay is what the user looks for in their own file (file name, ids, names,
coordinates, numbers) and what must go is English prose.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from collections.abc import Callable

import pytest

from geo.export_dji import DjiExportError, dji_model
from geo.grids import GridImportError, load_grids, load_upload
from geo.plan_schema import Plan, PlanFormatError
from geo.planner import PlanningError, plan_patrol
from geo.zh import zh_message
from tests.geo.helpers import square, write_geojson

# Latin words allowed in a Chinese message: formats, systems and names a user types or reads as is
ALLOWED = {"geojson", "json", "kml", "kmz", "xml", "zip", "shp", "dbf", "prj", "doc", "shapefile", "esri",
           "polygon", "multipolygon", "featurecollection", "feature", "point", "linestring", "crs", "utf",
           "wgs", "cgcs", "gcj", "bd", "gps", "qgis", "gsd", "nan", "dji", "wpml", "pilot", "skygrid", "plan",
           "schema", "id", "field", "wgs84", "gcj02", "bd09", "grid_id", "gridid", "grid_code", "code", "max-no-fly-fraction", "id-field", "wgs-84", "gcj-02", "bd-09", "name", "pass", "m3e", "m30", "m300", "p1", "kb", "deg"}


def _leftover_english(zh: str, keep: tuple[str, ...]) -> list[str]:
    """Latin words in ``zh`` that are not identifiers from the input or allowed format names."""
    text = zh
    for k in keep:
        text = text.replace(k, " ")
    text = re.sub(r"'[^']*'", " ", text)  # quoted values come from the user's file
    words = re.findall(r"[A-Za-z][A-Za-z0-9_-]*", text)
    return [w for w in words if w.lower() not in ALLOWED and not re.fullmatch(r"[A-Za-z]?\d[\w.-]*|e", w)]


def _fc(*features: tuple[dict, dict | None]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": p, "geometry": g} for p, g in features]}).encode()


BOWTIE = {"type": "Polygon", "coordinates": [[[120.5, 30.0], [120.51, 30.01], [120.51, 30.0], [120.5, 30.01], [120.5, 30.0]]]}
UPLOADS: dict[str, tuple[str, bytes, str | None, bool]] = {
    "invalid-json": ("grids.geojson", b'{"type": "FeatureCollection", "features": [', "wgs84", False),
    "not-a-collection": ("grids.geojson", b'{"type": "Point"}', "wgs84", False),
    "point-geometry": ("grids.geojson", _fc(({"grid_id": "G1"}, {"type": "Point", "coordinates": [120.5, 30.0]})), "wgs84", False),
    "self-intersection": ("grids.geojson", _fc(({"grid_id": "G2"}, BOWTIE)), "wgs84", False),
    "too-few-points": ("grids.geojson", _fc(({"grid_id": "G3"}, {"type": "Polygon", "coordinates": [[[120.5, 30.0], [120.6, 30.0], [120.5, 30.0]]]})), "wgs84", False),
    "out-of-range": ("grids.geojson", _fc(({"grid_id": "G4"}, square(200.0, 30.0))), "wgs84", False),
    "swapped-out-of-range": ("grids.geojson", _fc(({"grid_id": "G5"}, square(30.0, 120.5))), "wgs84", False),
    "empty-polygon": ("grids.geojson", _fc(({"grid_id": "G6"}, {"type": "Polygon", "coordinates": []})), "wgs84", False),
    "zero-area": ("grids.geojson", _fc(({"grid_id": "G7"}, {"type": "Polygon", "coordinates": [[[120.5, 30.0], [120.6, 30.0], [120.7, 30.0], [120.5, 30.0]]]})), "wgs84", False),
    "duplicate-id": ("grids.geojson", _fc(({"grid_id": "G8"}, square(120.5, 30.0)), ({"grid_id": "G8"}, square(120.6, 30.0))), "wgs84", False),
    "missing-id": ("grids.geojson", _fc(({"colour": "red"}, square(120.5, 30.0))), "wgs84", False),
    "no-crs": ("grids.geojson", _fc(({"grid_id": "G9"}, square(120.5, 30.0))), None, False),
    "bad-crs-name": ("grids.geojson", _fc(({"grid_id": "G9"}, square(120.5, 30.0))), "mercator", False),
    "unknown-type": ("grids.txt", b"hello", "wgs84", False),
    "bad-xml": ("grids.kml", b"<kml><Document><Placemark>", "wgs84", False),
    "bad-kml-coordinate": ("grids.kml", b'<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>A</name><Polygon>'
                           b"<outerBoundaryIs><LinearRing><coordinates>120.5,30 x,y 120.6,30.1 120.5,30</coordinates>"
                           b"</LinearRing></outerBoundaryIs></Polygon></Placemark></kml>", "wgs84", False),
    "not-a-zip": ("grids.kmz", b"not a zip", "wgs84", False),
    "all-bad-skipped": ("grids.geojson", _fc(({"grid_id": "G2"}, BOWTIE)), "wgs84", True),
}


def _kmz_without_kml() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "no kml here")
    return buf.getvalue()


UPLOADS["kmz-without-kml"] = ("grids.kmz", _kmz_without_kml(), "wgs84", False)


@pytest.mark.parametrize("case", sorted(UPLOADS))
def test_every_upload_error_reads_in_chinese(case):
    name, data, crs, skip_bad = UPLOADS[case]
    with pytest.raises(GridImportError) as e, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_upload(name, data, crs, "grid", skip_bad)
    en = str(e.value)
    zh = zh_message(en)
    assert re.search(r"[\u4e00-\u9fff]", zh), (case, en, zh)
    assert _leftover_english(zh, (name,)) == [], f"{case}: {en!r} -> {zh!r}"
    # the facts the user needs to find the fault survive: the file name and every id and number
    assert (name in zh) == (name in en)
    for token in re.findall(r"\bG\d\b|\d+\.\d+", en):
        assert token in zh, (case, token, zh)


def _warnings_of(fn: Callable[[], object]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in caught]


def test_import_warnings_read_in_chinese(tmp_path):
    swapped = write_geojson(tmp_path / "swapped.geojson", [({"grid_id": "S1"}, square(30.0, 85.0))])
    kml = tmp_path / "mixed.kml"
    kml.write_text('<kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
                   '<Placemark><name>pin</name><Point><coordinates>120.5,30.0</coordinates></Point></Placemark>'
                   '<Placemark><name>G1</name><Polygon><outerBoundaryIs><LinearRing><coordinates>'
                   '120.5,30 120.51,30 120.51,30.01 120.5,30.01 120.5,30</coordinates></LinearRing></outerBoundaryIs>'
                   '</Polygon></Placemark></Document></kml>', encoding="utf-8")
    bad_and_good = write_geojson(tmp_path / "some.geojson", [({"grid_id": "B1"}, BOWTIE),
                                                             ({"grid_id": "B2"}, square(120.5, 30.0))])
    msgs = (_warnings_of(lambda: load_grids(swapped)) + _warnings_of(lambda: load_grids(kml, id_field="name"))
            + _warnings_of(lambda: load_grids(bad_and_good, skip_bad=True)))
    assert len(msgs) >= 3
    for en in msgs:
        zh = zh_message(en)
        assert _leftover_english(zh, (str(tmp_path), "swapped.geojson", "mixed.kml", "some.geojson")) == [], f"{en!r} -> {zh!r}"


def _grid(gid: str, lon: float, lat: float, d: float = 0.003):
    return load_upload("g.geojson", _fc(({"grid_id": gid, "name": f"村{gid}"}, square(lon, lat, d))), "wgs84")[0][0]


def _zone(zid: str, lon: float, lat: float, d: float):
    return load_upload("z.geojson", _fc(({"zone_id": zid, "name": "机场"}, square(lon, lat, d))), "wgs84", "zone")[0][0]


PLANS: dict[str, Callable[[], object]] = {
    "altitude-and-gsd": lambda: plan_patrol([_grid("A1", 120.5, 30.0)], (30.0, 120.5), altitude_m=80, gsd_cm=2.0),
    "too-high": lambda: plan_patrol([_grid("A1", 120.5, 30.0)], (30.0, 120.5), altitude_m=300),
    "no-grids": lambda: plan_patrol([], (30.0, 120.5)),
    "zero-drones": lambda: plan_patrol([_grid("A1", 120.5, 30.0)], (30.0, 120.5), drones=0),
    "home-in-zone": lambda: plan_patrol([_grid("A1", 120.5, 30.0)], (30.0005, 120.5005),
                                        no_fly=[_zone("Z1", 120.499, 29.999, 0.005)]),
    "grid-in-zone": lambda: plan_patrol([_grid("A2", 120.5, 30.0)], (30.02, 120.52),
                                        no_fly=[_zone("Z2", 120.499, 29.999, 0.006)]),
    "beyond-reach": lambda: plan_patrol([_grid("A3", 121.5, 30.0)], (30.0, 120.5)),
    "dji-camera": lambda: dji_model("generic-4k"),
    "plan-schema": lambda: Plan.from_dict({"schema": "other/1"}, source="plan.json"),
}


@pytest.mark.parametrize("case", sorted(PLANS))
def test_every_planning_error_reads_in_chinese(case):
    with pytest.raises((PlanningError, DjiExportError, PlanFormatError)) as e, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        PLANS[case]()
    en = str(e.value)
    zh = zh_message(en)
    assert re.search(r"[\u4e00-\u9fff]", zh), (case, en, zh)
    assert _leftover_english(zh, ()) == [], f"{case}: {en!r} -> {zh!r}"
    for token in re.findall(r"\b[AZ]\d\b", en):
        assert token in zh, (case, token, zh)


def test_partial_no_fly_warning_reads_in_chinese():
    msgs = _warnings_of(lambda: plan_patrol([_grid("A4", 120.5, 30.0, 0.01)], (30.0, 120.5),
                                            no_fly=[_zone("Z4", 120.508, 30.008, 0.004)]))
    assert any("Z4" in m for m in msgs), msgs
    for en in msgs:
        zh = zh_message(en)
        assert "Z4" in zh or "A4" in zh
        assert _leftover_english(zh, ()) == [], f"{en!r} -> {zh!r}"


def test_an_unknown_message_stays_readable():
    """A message the table does not know keeps its English words (never dropped or mangled)."""
    assert zh_message("grid G1: something new happened") == "网格 G1：something new happened"

