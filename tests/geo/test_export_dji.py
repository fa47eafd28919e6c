"""DJI route KMZ: structure checked against the elements DJI's WPML reference requires
(template.kml, waylines.wpml, common elements): namespaces, missionConfig, per-Folder and
per-Placemark required elements, drone/payload enums per camera, heights, camera actions."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from lxml import etree

from geo.camera import PRESETS
from geo.export_dji import DjiExportError, dji_kmz_bytes, write_dji_kmz
from geo.grids import load_grids, load_no_fly
from geo.planner import plan_patrol

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "keqiao"
KML = "http://www.opengis.net/kml/2.2"
WPML = "http://www.dji.com/wpmz/1.0.2"
NS = {"k": KML, "wpml": WPML}

MISSION_REQUIRED = ["flyToWaylineMode", "finishAction", "exitOnRCLost", "executeRCLostAction",
                    "takeOffSecurityHeight", "globalTransitionalSpeed", "globalRTHHeight", "droneInfo", "payloadInfo"]
TEMPLATE_FOLDER_REQUIRED = ["templateType", "templateId", "waylineCoordinateSysParam", "autoFlightSpeed",
                            "globalHeight", "gimbalPitchMode", "globalWaypointHeadingParam", "globalWaypointTurnMode"]
TEMPLATE_PM_REQUIRED = ["index", "useGlobalHeight", "useGlobalSpeed", "useGlobalHeadingParam", "useGlobalTurnParam"]
WAYLINE_FOLDER_REQUIRED = ["templateId", "executeHeightMode", "waylineId", "autoFlightSpeed"]
WAYLINE_PM_REQUIRED = ["index", "executeHeight", "waypointSpeed", "waypointHeadingParam", "waypointTurnParam"]
ENUMS = {"m3e": (77, 0, 66), "m30-wide": (67, 0, 52), "p1-35mm": (60, 0, 50)}


@pytest.fixture(scope="module")
def plan():
    grids = {g.id: g for g in load_grids(EXAMPLES / "grids.geojson", crs="gcj02")}
    zones = load_no_fly(EXAMPLES / "no_fly.geojson", crs="gcj02")
    sc = yaml.safe_load((EXAMPLES / "scenario-ci.yaml").read_text(encoding="utf-8"))
    return plan_patrol([grids[i] for i in sc["grid_ids"][:2]], home=(*sc["home"], sc["ground_alt_m"]),
                       camera=PRESETS["m3e"], altitude_m=80, drones=1, no_fly=zones)


def _open(data: bytes) -> tuple[etree._Element, etree._Element]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == ["wpmz/template.kml", "wpmz/waylines.wpml"]
        return (etree.fromstring(z.read("wpmz/template.kml")), etree.fromstring(z.read("wpmz/waylines.wpml")))


def _w(el, path: str) -> str:
    got = el.findtext(path, namespaces=NS)
    assert got is not None, f"missing {path} in <{etree.QName(el).localname}>"
    return got


def check_wpml(data: bytes, plan, sortie, enums: tuple[int, int, int]) -> None:
    """Validate one KMZ against DJI's WPML element requirements (shared with the browser test)."""
    tpl, way = _open(data)
    for root in (tpl, way):
        assert root.tag == f"{{{KML}}}kml" and root.nsmap == {None: KML, "wpml": WPML}
        mc = root.find("k:Document/wpml:missionConfig", NS)
        for e in MISSION_REQUIRED:
            _w(mc, f"wpml:{e}")
        assert _w(mc, "wpml:flyToWaylineMode") in ("safely", "pointToPoint")
        assert _w(mc, "wpml:finishAction") in ("goHome", "noAction", "autoLand", "gotoFirstWaypoint")
        assert _w(mc, "wpml:exitOnRCLost") in ("goContinue", "executeLostAction")
        assert _w(mc, "wpml:executeRCLostAction") in ("goBack", "landing", "hover")
        assert 2 <= float(_w(mc, "wpml:takeOffSecurityHeight")) <= 1500
        assert 1 <= float(_w(mc, "wpml:globalTransitionalSpeed")) <= 15
        assert int(_w(mc, "wpml:droneInfo/wpml:droneEnumValue")) == enums[0]
        assert int(_w(mc, "wpml:droneInfo/wpml:droneSubEnumValue")) == enums[1]
        assert int(_w(mc, "wpml:payloadInfo/wpml:payloadEnumValue")) == enums[2]
        assert _w(mc, "wpml:payloadInfo/wpml:payloadPositionIndex") == "0"
        folders = root.findall("k:Document/k:Folder", NS)
        assert len(folders) == 1
        pms = folders[0].findall("k:Placemark", NS)
        assert len(pms) == len(sortie.waypoints)
        # index from 0, monotone and contiguous; coordinates lon,lat of the plan's waypoints
        assert [int(_w(p, "wpml:index")) for p in pms] == list(range(len(pms)))
        for p, wp in zip(pms, sortie.waypoints, strict=True):
            lon, lat = map(float, _w(p, "k:Point/k:coordinates").split(","))
            assert lon == pytest.approx(wp.lon, abs=1e-8) and lat == pytest.approx(wp.lat, abs=1e-8)
        # action groups: ids unique in the file, start <= end, indexes inside the route
        groups = root.findall(".//wpml:actionGroup", NS)
        assert [int(_w(g, "wpml:actionGroupId")) for g in groups] == list(range(len(groups)))
        for g in groups:
            a, b = int(_w(g, "wpml:actionGroupStartIndex")), int(_w(g, "wpml:actionGroupEndIndex"))
            assert 0 <= a <= b < len(pms)
            assert _w(g, "wpml:actionGroupMode") == "sequence"
            trig = _w(g, "wpml:actionTrigger/wpml:actionTriggerType")
            assert trig in ("reachPoint", "betweenAdjacentPoints", "multipleTiming", "multipleDistance")
            if trig == "multipleDistance":
                assert float(_w(g, "wpml:actionTrigger/wpml:actionTriggerParam")) > 0
            for act in g.findall("wpml:action", NS):
                _w(act, "wpml:actionId")
                func = _w(act, "wpml:actionActuatorFunc")
                par = act.find("wpml:actionActuatorFuncParam", NS)
                _w(par, "wpml:payloadPositionIndex")
                if func == "takePhoto":
                    _w(par, "wpml:fileSuffix")
                    _w(par, "wpml:useGlobalPayloadLensIndex")
                elif func == "gimbalRotate":
                    for e in ("gimbalHeadingYawBase", "gimbalRotateMode", "gimbalPitchRotateEnable",
                              "gimbalPitchRotateAngle", "gimbalRollRotateEnable", "gimbalYawRotateEnable",
                              "gimbalRotateTimeEnable"):
                        _w(par, f"wpml:{e}")
        # the gimbal goes nadir at waypoint 0; every survey line photographs by distance
        first = pms[0].find("wpml:actionGroup", NS)
        assert _w(first, "wpml:action/wpml:actionActuatorFunc") == "gimbalRotate"
        assert float(_w(first, ".//wpml:gimbalPitchRotateAngle")) == -90
        dist = [g for g in groups if _w(g, "wpml:actionTrigger/wpml:actionTriggerType") == "multipleDistance"]
        lines = sum(1 for w in sortie.waypoints if w.kind == "line_start")
        assert len(dist) == lines > 0
        for g in dist:
            a = int(_w(g, "wpml:actionGroupStartIndex"))
            assert sortie.waypoints[a].kind == "line_start"
            assert sortie.waypoints[int(_w(g, "wpml:actionGroupEndIndex"))].kind == "line_end"
            assert float(_w(g, "wpml:actionTrigger/wpml:actionTriggerParam")) == pytest.approx(
                sortie.waypoints[a].trigger_distance_m, abs=1e-6)
            assert _w(g, "wpml:action/wpml:actionActuatorFunc") == "takePhoto"
    # template: a waypoint template in WGS84, heights relative to the take-off point
    f = tpl.find("k:Document/k:Folder", NS)
    for e in TEMPLATE_FOLDER_REQUIRED:
        _w(f, f"wpml:{e}")
    assert _w(f, "wpml:templateType") == "waypoint" and _w(f, "wpml:templateId") == "0"
    assert _w(f, "wpml:waylineCoordinateSysParam/wpml:coordinateMode") == "WGS84"
    assert _w(f, "wpml:waylineCoordinateSysParam/wpml:heightMode") == "relativeToStartPoint"
    assert float(_w(f, "wpml:globalHeight")) == pytest.approx(plan.altitude_m)
    for p, wp in zip(f.findall("k:Placemark", NS), sortie.waypoints, strict=True):
        for e in TEMPLATE_PM_REQUIRED:
            _w(p, f"wpml:{e}")
        assert float(_w(p, "wpml:height")) == pytest.approx(wp.rel_alt_m)
    for e in ("author", "createTime", "updateTime"):
        _w(tpl, f"k:Document/wpml:{e}")
    # waylines: executable heights relative to the take-off point, as the plan's rel_alt_m
    f = way.find("k:Document/k:Folder", NS)
    for e in WAYLINE_FOLDER_REQUIRED:
        _w(f, f"wpml:{e}")
    assert _w(f, "wpml:executeHeightMode") == "relativeToStartPoint"
    assert _w(f, "wpml:templateId") == "0" and _w(f, "wpml:waylineId") == "0"
    for p, wp in zip(f.findall("k:Placemark", NS), sortie.waypoints, strict=True):
        for e in WAYLINE_PM_REQUIRED:
            _w(p, f"wpml:{e}")
        assert float(_w(p, "wpml:executeHeight")) == pytest.approx(wp.rel_alt_m)
        assert 1 <= float(_w(p, "wpml:waypointSpeed")) <= 15
        assert _w(p, "wpml:waypointTurnParam/wpml:waypointTurnMode") == "toPointAndStopWithDiscontinuityCurvature"


@pytest.mark.parametrize("camera", sorted(ENUMS))
def test_dji_kmz_follows_wpml_for_each_supported_camera(plan, camera):
    p = replace(plan, camera=PRESETS[camera].to_dict())
    for s in p.sorties:
        check_wpml(dji_kmz_bytes(p, s), p, s, ENUMS[camera])


def test_p1_leaves_the_unfixed_payload_subtype_out(plan):
    p = replace(plan, camera=PRESETS["p1-35mm"].to_dict())
    tpl, _ = _open(dji_kmz_bytes(p, p.sorties[0]))
    assert tpl.find(".//wpml:payloadSubEnumValue", NS) is None


def test_unsupported_camera_is_refused_naming_the_supported_ones(plan, tmp_path):
    p = replace(plan, camera=PRESETS["p4rtk"].to_dict())
    with pytest.raises(DjiExportError, match="p4rtk.*m3e"):
        write_dji_kmz(p, tmp_path / "x.kmz")
    assert not (tmp_path / "x.kmz").exists()


def test_write_dji_kmz_names_the_file_and_one_per_sortie(plan, tmp_path):
    two = replace(plan, sorties=[plan.sorties[0], replace(plan.sorties[0], id="d0-s2", index=1)])
    paths = write_dji_kmz(two, tmp_path / "route.kmz")
    assert [p.name for p in paths] == ["route.kmz", "route.d0-s1.kmz", "route.d0-s2.kmz"]
    one = write_dji_kmz(plan, tmp_path / "one.kmz") if len(plan.sorties) == 1 else None
    if one is not None:
        assert [p.name for p in one] == ["one.kmz"]
