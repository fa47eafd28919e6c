"""Patrol planning on the sample county, guards, sorties/drones, and the output files."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from lxml import etree
from shapely.geometry import Point

from geo.camera import PRESETS
from geo.grids import NoFlyArea, load_grids, load_no_fly
from geo.outputs import footprints, write_geojson, write_kml, write_qgc_plan
from geo.plan_schema import Plan
from geo.planner import PlanningError, PlanningWarning, plan_patrol
from geo.projection import LocalFrame

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "keqiao"


@pytest.fixture(scope="module")
def county():
    grids = load_grids(EXAMPLES / "grids.geojson", crs="gcj02")
    zones = load_no_fly(EXAMPLES / "no_fly.geojson", crs="gcj02")
    sc = yaml.safe_load((EXAMPLES / "scenario-ci.yaml").read_text(encoding="utf-8"))
    return {g.id: g for g in grids}, zones, sc


@pytest.fixture(scope="module")
def ci_plan(county):
    grids, zones, sc = county
    return plan_patrol([grids[i] for i in sc["grid_ids"]], home=(*sc["home"], sc["ground_alt_m"]),
                       camera=PRESETS["m3e"], altitude_m=80, drones=2, no_fly=zones)


def test_ci_plan_is_modest_balanced_and_well_formed(ci_plan, county):
    _, _, sc = county
    plan = ci_plan
    assert plan.drones == 2 and {s.drone for s in plan.sorties} == {0, 1}
    total_km = sum(s.distance_m for s in plan.sorties) / 1000
    assert 3 < total_km < 12  # 4 grids of ~0.09 km² at 90 m line spacing
    times = [sum(s.duration_s for s in plan.sorties_for(d)) for d in range(2)]
    assert max(times) < 1.4 * min(times)  # shared evenly
    assert sorted(g for s in plan.sorties for g in s.grid_ids) == sorted(sc["grid_ids"])
    assert all(g.coverage_ratio > 0.995 for g in plan.grids)
    assert plan.line_spacing_m == pytest.approx(90.09, abs=0.01) and plan.trigger_distance_m == pytest.approx(33.85, abs=0.01)
    for s in plan.sorties:
        kinds = [w.kind for w in s.waypoints]
        survey = [w for w in s.waypoints if w.kind != "transit"]
        assert [w.kind for w in survey] == ["line_start", "line_end"] * (len(survey) // 2)
        assert all(w.camera == "start_distance" and 0 < w.trigger_distance_m <= plan.trigger_distance_m
                   for w in survey if w.kind == "line_start")
        # lines are trimmed to half a footprint inside the grid, so a photo must fall on each
        # line end: the per-line trigger distance divides the line length
        frame = LocalFrame(plan.home.lat, plan.home.lon)
        for a, b in zip(survey[0::2], survey[1::2], strict=True):
            ln = math.dist(frame.to_local(a.lon, a.lat), frame.to_local(b.lon, b.lat))
            k = ln / a.trigger_distance_m
            assert abs(k - round(k)) * a.trigger_distance_m < 0.05 and round(k) == math.ceil(ln / plan.trigger_distance_m - 1e-6)
        assert all(w.camera == "stop_distance" for w in survey if w.kind == "line_end")
        assert all(w.rel_alt_m == 80 and w.speed_m_s == 10 for w in s.waypoints)
        assert kinds[-1] == "transit" and abs(s.waypoints[-1].lat - plan.home.lat) < 1e-7  # ends above home
        assert len(s.waypoints) < 100 and s.battery_fraction <= 0.8
    # JSON round trip through the contract
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again.sorties[0].waypoints[0] == plan.sorties[0].waypoints[0]


def test_altitude_cap_and_authorised_airspace(county):
    grids, _, sc = county
    g = [grids[sc["grid_ids"][0]]]
    with pytest.raises(PlanningError, match=r"altitude 150\.0 m AGL is above the 120 m limit"):
        plan_patrol(g, home=tuple(sc["home"]), altitude_m=150)
    with pytest.raises(PlanningError, match="above the 120 m limit"):
        plan_patrol(g, home=tuple(sc["home"]), gsd_cm=5.0)  # 5 cm/px on m3e needs ~188 m
    plan = plan_patrol(g, home=tuple(sc["home"]), altitude_m=150, authorised_airspace=True)
    assert plan.altitude_m == 150


def test_no_fly_partial_overlap_is_a_hole_with_warning(county):
    grids, zones, sc = county
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        plan = plan_patrol([grids["330603-YXQ-015"]], home=tuple(sc["home"]), no_fly=zones)
    assert any(issubclass(w.category, PlanningWarning) and "330603-YXQ-015" in str(w.message)
               and "NFZ-01" in str(w.message) for w in rec)
    assert plan.warnings and "hole" in plan.warnings[0]
    frame = LocalFrame(plan.home.lat, plan.home.lon)
    zone = zones[0]
    import numpy as np
    from shapely import transform

    zl = transform(zone.polygon, lambda c: np.column_stack(frame.to_local(c[:, 0], c[:, 1]))).buffer(zone.buffer_m)
    for w in plan.sorties[0].waypoints:
        assert not zl.contains(Point(frame.to_local(w.lon, w.lat)))


def test_grid_mostly_in_no_fly_plans_the_rest_with_a_warning(county):
    grids, zones, sc = county
    g = grids["330603-YXQ-021"]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        plan = plan_patrol([g], home=tuple(sc["home"]), no_fly=zones)
    msgs = [str(w.message) for w in rec if issubclass(w.category, PlanningWarning)]
    assert any(re.search(r"330603-YXQ-021 .*: 5\d% lies inside no-fly zone NFZ-01.*remaining 4\d% is planned", m)
               for m in msgs), msgs
    assert plan.sorties and any(w.grid_id == g.id for s in plan.sorties for w in s.waypoints)
    frame = LocalFrame(plan.home.lat, plan.home.lon)
    from shapely import transform

    zl = transform(zones[0].polygon, lambda c: np.column_stack(frame.to_local(c[:, 0], c[:, 1]))).buffer(zones[0].buffer_m)
    for s in plan.sorties:
        assert not any(zl.contains(Point(frame.to_local(w.lon, w.lat))) for w in s.waypoints)


def test_grid_in_no_fly_is_an_error_naming_both_when_strict_or_entirely_inside(county):
    grids, zones, sc = county
    with pytest.raises(PlanningError, match=r"grid 330603-YXQ-021 .* lies 5\d% inside no-fly zone NFZ-01 .*: at most 50%"):
        plan_patrol([grids["330603-YXQ-021"]], home=tuple(sc["home"]), no_fly=zones, max_no_fly_fraction=0.5)
    g = grids["330603-YXQ-003"]
    cover = NoFlyArea("C", "whole grid", g.polygon.buffer(0.0005), buffer_m=0.0)
    with pytest.raises(PlanningError, match=r"grid 330603-YXQ-003 .* lies 100% inside no-fly zone C .*nothing is left to fly"):
        plan_patrol([g], home=(g.polygon.bounds[1] - 0.01, g.polygon.bounds[0] - 0.01, 0.0), no_fly=[cover])
    g = grids["330603-YXQ-003"]
    with pytest.raises(PlanningError, match="home .* is inside no-fly zone H"):
        home_zone = NoFlyArea("H", "launch pad", Point(sc["home"][1], sc["home"][0]).buffer(0.001))
        plan_patrol([g], home=tuple(sc["home"]), no_fly=[home_zone])


def test_endurance_splits_sorties_and_drones_share(county):
    grids, zones, sc = county
    some = [grids[f"330603-YXQ-{i:03d}"] for i in range(1, 13)]
    one = plan_patrol(some, home=tuple(sc["home"]), no_fly=zones, endurance_s=12 * 60, reserve=0.2)
    assert len(one.sorties) >= 3
    assert all(s.duration_s <= 12 * 60 * 0.8 * 1.02 for s in one.sorties)
    three = plan_patrol(some, home=tuple(sc["home"]), no_fly=zones, endurance_s=12 * 60, drones=3)
    spans = [sum(s.duration_s for s in three.sorties_for(d)) for d in range(3)]
    assert max(spans) < 0.6 * sum(s.duration_s for s in one.sorties)
    far = plan_patrol(some[:1], home=tuple(sc["home"]), endurance_s=35 * 60)
    with pytest.raises(PlanningError, match="beyond reach"):
        plan_patrol(some[:1], home=(30.5, 120.33), endurance_s=10 * 60)
    assert len(far.sorties) == 1


def test_qgc_plan_structure(ci_plan, tmp_path):
    paths = write_qgc_plan(ci_plan, tmp_path / "out.plan")
    # the named file exists (the first sortie) and every sortie has its own file as well
    assert [p.name for p in paths] == ["out.plan"] + [f"out.{s.id}.plan" for s in ci_plan.sorties]
    assert paths[0].read_text(encoding="utf-8") == paths[1].read_text(encoding="utf-8")
    doc = json.loads(paths[0].read_text(encoding="utf-8"))
    assert doc["fileType"] == "Plan" and doc["version"] == 1
    m = doc["mission"]
    assert m["version"] == 2 and m["firmwareType"] == 12 and m["vehicleType"] == 2
    assert m["plannedHomePosition"] == [ci_plan.home.lat, ci_plan.home.lon, ci_plan.home.alt_amsl_m]
    items = m["items"]
    assert items[0]["command"] == 22 and items[-1]["command"] == 20
    assert [it["doJumpId"] for it in items] == list(range(1, len(items) + 1))
    assert all(it["type"] == "SimpleItem" and len(it["params"]) == 7 for it in items)
    wps = [it for it in items if it["command"] == 16]
    s0 = ci_plan.sorties[0]
    assert len(wps) == len(s0.waypoints)
    assert wps[0]["params"][4:7] == [s0.waypoints[0].lat, s0.waypoints[0].lon, s0.waypoints[0].rel_alt_m]
    assert all(it["frame"] == 3 and it["AltitudeMode"] == 1 for it in wps)
    trig = [it["params"] for it in items if it["command"] == 206]
    first = next(w for w in ci_plan.sorties[0].waypoints if w.camera == "start_distance")
    # start: per-line distance (<= nominal) and one photo at once; stop: distance 0 and a last photo
    assert trig[0][0] == pytest.approx(first.trigger_distance_m) and 0 < trig[0][0] <= ci_plan.trigger_distance_m
    assert trig[0][2] == 1 and trig[1][0] == 0 and trig[1][2] == 1
    # current gimbal protocol: configure (1001) then pitch/yaw (1000) straight down; no DO_MOUNT_CONTROL
    cmds = [it["command"] for it in items]
    assert 205 not in cmds and cmds.index(1001) < cmds.index(1000) < cmds.index(16)
    assert items[cmds.index(1000)]["params"][:2] == [-90.0, 0.0]
    fence = doc["geoFence"]
    assert fence["version"] == 2
    incl = [p for p in fence["polygons"] if p["inclusion"]]
    excl = [p for p in fence["polygons"] if not p["inclusion"]]
    assert len(incl) == 1 and len(excl) == 1
    lat, lon = excl[0]["polygon"][0]
    assert 30 < lat < 30.2 and 120.2 < lon < 120.4
    # the inclusion fence holds the sortie's grids, its home and every waypoint
    from shapely.geometry import Polygon as P
    fence_poly = P([(lo, la) for la, lo in incl[0]["polygon"]])
    for g in ci_plan.grids:
        if g.id in s0.grid_ids:
            assert fence_poly.contains(P(g.rings[0]))
    assert all(fence_poly.contains(Point(w.lon, w.lat)) for w in s0.waypoints)
    assert fence_poly.contains(Point(ci_plan.home.lon, ci_plan.home.lat))
    assert doc["rallyPoints"]["points"] == []


def test_kml_and_geojson(ci_plan, tmp_path):
    fc = json.loads(write_geojson(ci_plan, tmp_path / "p.geojson").read_text(encoding="utf-8"))
    kinds = [f["properties"]["kind"] for f in fc["features"]]
    assert kinds.count("grid") == 4 and kinds.count("route") == len(ci_plan.sorties)
    assert kinds.count("footprint") == len(footprints(ci_plan)) > 4 and kinds.count("no_fly") == 1
    root = etree.parse(str(write_kml(ci_plan, tmp_path / "p.kml"))).getroot()
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    folders = [f.findtext("k:name", namespaces=ns) for f in root.iterfind(".//k:Folder", ns)]
    assert folders == ["Grids", "No-fly zones (buffered)", "Routes", "Footprints"]
    assert len(root.findall(".//k:LineString", ns)) == len(ci_plan.sorties)


def test_edge_margin_and_progress(county):
    grids, _, sc = county
    g = grids["330603-YXQ-010"]
    calls = []
    plan = plan_patrol([g], home=tuple(sc["home"]), edge_margin_m=15.0, progress=lambda d, n: calls.append((d, n)))
    assert calls[-1] == (1, 1)
    frame = LocalFrame(plan.home.lat, plan.home.lon)
    import numpy as np
    from shapely import transform
    from shapely.geometry import LineString

    gl = transform(g.polygon, lambda c: np.column_stack(frame.to_local(c[:, 0], c[:, 1])))
    wps = [w for w in plan.sorties[0].waypoints if w.grid_id == g.id]
    path = LineString([frame.to_local(w.lon, w.lat) for w in wps])
    assert path.difference(gl.buffer(15.01)).length == 0
    assert path.difference(gl.buffer(0.01)).length == 0  # survey lines themselves stay inside
