"""skygrid.patrol.score_patrol: the demo summary's figures from tickets, footprints and truth."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from shapely.geometry import Polygon, box

from geo.plan_schema import Home, NoFlyZone
from simulators.scenario import PlantedObject, Scenario
from skygrid.patrol import PatrolState, score_patrol

LAT, LON = 30.09, 120.32
D = 0.002  # ~190 m east-west, ~220 m north-south


def _grid(gid: str, lon0: float) -> SimpleNamespace:
    return SimpleNamespace(id=gid, polygon=box(lon0, LAT, lon0 + D, LAT + D), properties={})


def _setup(no_fly=()):
    grids = [_grid("g1", LON), _grid("g2", LON + D)]
    objects = [
        PlantedObject("fire", "hazmat_fire", LAT + D / 2, LON + D / 2),
        PlantedObject("shed", "illegal_structure", LAT + D / 2, LON + 1.5 * D),
        PlantedObject("truck", "parked_truck", LAT + D / 4, LON + D / 4),
        PlantedObject("far", "straw_burning", LAT + 0.1, LON + 0.1),  # outside the patrolled grids
    ]
    sc = Scenario(name="t", seed=1, grids_file="x", objects=objects)
    plan = SimpleNamespace(grids=grids, home=Home(LAT, LON), no_fly=list(no_fly), sorties=[1, 2], drones=2)
    return sc, plan, grids


def _ticket(tid, cls, lat, lon):
    return {"id": tid, "class_name": cls, "lat": lat, "lon": lon}


def test_found_false_and_position_error():
    sc, plan, grids = _setup()
    tickets = [
        _ticket(1, "hazmat_fire", LAT + D / 2 + 2e-5, LON + D / 2),  # ~2.2 m off
        _ticket(2, "illegal_dumping", LAT + D / 4, LON + D / 4),  # the truck called dumping: false
    ]
    s = score_patrol(scenario=sc, plan=plan, grids=grids, tickets=tickets, footprints=[], incident_frames={},
                     alerts={}, sim_s=100, wall_s=10, state=PatrolState())
    assert s["incidents_planted"] == 2  # the planted fire and shed; "far" lies outside every grid
    assert s["incidents_found"] == 1 and s["false_tickets"] == 1 and s["tickets"] == 2
    assert s["max_position_error_m"] == pytest.approx(2.2, abs=0.1)
    assert s["speedup"] == 10.0
    assert s["grids_covered"] == 0 and s["coverage_ratio"] == 0.0


def test_coverage_counts_only_flyable_area():
    zone = Polygon([(LON + D * 1.5, LAT), (LON + 2 * D, LAT), (LON + 2 * D, LAT + D), (LON + D * 1.5, LAT + D)])
    nf = NoFlyZone("z", "zone", [list(map(list, zone.exterior.coords))], buffer_m=0.0)
    sc, plan, grids = _setup(no_fly=[nf])
    # images all of g1 and the western half of g2: g2's eastern half is a no-fly zone
    footprints = [box(LON - 1e-4, LAT - 1e-4, LON + 1.5 * D + 1e-6, LAT + D + 1e-4)]
    s = score_patrol(scenario=sc, plan=plan, grids=grids, tickets=[], footprints=footprints, incident_frames={},
                     alerts={}, sim_s=1, wall_s=1, state=PatrolState())
    assert s["grids_covered"] == 2 and s["coverage_ratio"] >= 0.995


def test_frame_to_alert_latency_matches_alerts_to_incidents():
    sc, plan, grids = _setup()
    inc = SimpleNamespace(class_name="hazmat_fire", lat=LAT + D / 2, lon=LON + D / 2)
    alerts = {7: (105.5, {"class_name": "hazmat_fire", "lat": inc.lat, "lon": inc.lon})}
    far = SimpleNamespace(class_name="hazmat_fire", lat=LAT + D / 2 + 0.001, lon=LON + D / 2)  # ~111 m away
    s = score_patrol(scenario=sc, plan=plan, grids=grids, tickets=[], footprints=[],
                     incident_frames={"i1": (105.0, inc), "i2": (106.0, far)}, alerts=alerts, sim_s=1, wall_s=1,
                     state=PatrolState())
    assert s["frame_to_alert_p95_s"] == pytest.approx(0.5)
    assert s["incidents_reported"] == 2 and s["incidents_alerted"] == 1  # no alert within 50 m of the second
