"""Pure mission building: items, capacity, geofence, resume/follow-up."""

from __future__ import annotations

import pytest

from flight.mission import (
    MissionBuildError,
    MissionCapacityError,
    build_geofence,
    build_mission,
    build_steps,
    camera_active_before,
    follow_up_sortie,
    inside_patrol_area,
    mavlink_item_count,
)
from geo.plan_schema import Plan

from .planfactory import HOME, make_plan


def test_steps_carry_speed_altitude_camera_and_gimbal_once():
    plan = make_plan([[(50, 50), (250, 50)]], lines=3)
    s = plan.sorties[0]
    steps = build_steps(s)
    assert len(steps) == len(s.waypoints) == 12
    assert all(st.speed_m_s == 10.0 and st.rel_alt_m == 40.0 and st.fly_through for st in steps)
    assert [st.waypoint_index for st in steps] == list(range(12))
    assert steps[0].gimbal_pitch_deg == -90.0
    assert all(st.gimbal_pitch_deg is None for st in steps[1:])
    assert [st.camera for st in steps[:2]] == ["start_distance", "stop_distance"]
    assert steps[0].trigger_distance_m == 20.0


def test_item_count_mirrors_mavsdk_expansion():
    plan = make_plan([[(50, 50)]], lines=2)
    steps = build_steps(plan.sorties[0])  # 4 waypoints, 4 camera actions, gimbal once
    # 4 waypoints + 4 speeds + 4 camera + gimbal (1 + acquire + release) + RTL
    assert mavlink_item_count(steps, rtl_after=True) == 4 + 4 + 4 + 3 + 1
    assert mavlink_item_count(steps, rtl_after=False, gimbal_v2=False) == 4 + 4 + 4 + 1


def test_interval_camera_mode_converts_distance_to_time():
    plan = make_plan([[(50, 50)]], lines=2)
    steps = build_steps(plan.sorties[0], camera_mode="interval")
    assert steps[0].camera == "start_interval" and steps[0].photo_interval_s == pytest.approx(2.0)
    assert steps[1].camera == "stop_interval"


def test_sortie_over_capacity_is_refused_with_a_split_hint():
    plan = make_plan([[(0, 0), (200, 0), (400, 0)]], lines=10)
    with pytest.raises(MissionCapacityError) as e:
        build_mission(plan.sorties[0], plan, capacity=50)
    msg = str(e.value)
    assert "d0-s0" in msg and "holds 50" in msg and "--endurance-min" in msg and "drones" in msg
    assert build_mission(plan.sorties[0], plan).mavlink_items <= 2000


def test_bad_waypoint_is_named():
    plan = make_plan([[(50, 50)]])
    plan.sorties[0].waypoints[2].rel_alt_m = -5
    with pytest.raises(MissionBuildError, match="waypoint 2: rel_alt_m"):
        build_steps(plan.sorties[0])


def test_resume_mid_line_restarts_camera_and_maps_indices():
    plan = make_plan([[(50, 50)]], lines=3)
    s = plan.sorties[0]
    # waypoint 0 starts the camera, 1 stops it: the leg 0->1 is photographed, 1->2 is not
    assert camera_active_before(s.waypoints, 1) == 20.0
    assert camera_active_before(s.waypoints, 2) is None
    spec = build_mission(s, plan, start_index=1)
    assert spec.start_index == 1 and spec.steps[0].waypoint_index == 1
    assert spec.steps[0].camera == "stop_distance"  # kept: the leg 1->2 is a turn
    s.waypoints[1].camera = None  # a middle vertex of a photographed line
    assert build_mission(s, plan, start_index=1).steps[0].camera == "start_distance"
    assert spec.waypoint_index(0) == 1 and spec.waypoint_index(len(spec.steps)) == len(s.waypoints)
    assert spec.steps[0].gimbal_pitch_deg == -90.0  # gimbal re-set on a resumed mission


def test_follow_up_sortie_covers_the_rest_and_renames():
    plan = make_plan([[(50, 50), (250, 50)]], lines=3)
    s = plan.sorties[0]
    fu = follow_up_sortie(s, 7)
    assert fu.id == "d0-s0-r1" and fu.drone == 0
    assert [(w.lat, w.lon) for w in fu.waypoints] == [(w.lat, w.lon) for w in s.waypoints[7:]]
    assert fu.grid_ids == ["G01"]
    assert fu.waypoints[0].camera == "stop_distance"  # 7 ends a line: leg 7->8 is a turn
    s.waypoints[7].camera = None  # make 7 a middle vertex of the line 6..8
    s.waypoints[8].camera = "stop_distance"
    fu = follow_up_sortie(s, 7)
    assert fu.waypoints[0].camera == "start_distance" and fu.waypoints[0].trigger_distance_m == 20.0
    assert follow_up_sortie(fu, 1).id == "d0-s0-r2"
    with pytest.raises(MissionBuildError):
        follow_up_sortie(s, 99)


def test_geofence_inclusion_contains_home_and_grids_exclusion_for_no_fly():
    plan = make_plan([[(50, 50), (250, 50)]], no_fly=True)
    fence = build_geofence(plan, buffer_m=100)
    assert fence[0].inclusion and not fence[1].inclusion and fence[1].name == "substation"
    assert sum(len(p.points) for p in fence) <= 128
    from shapely.geometry import Point, Polygon

    inc = Polygon([(lon, lat) for lat, lon in fence[0].points])
    assert inc.contains(Point(HOME[1], HOME[0]))
    for w in plan.sorties[0].waypoints:
        assert inc.contains(Point(w.lon, w.lat))
    exc = Polygon([(lon, lat) for lat, lon in fence[1].points])
    assert not exc.contains(Point(HOME[1], HOME[0]))
    assert inside_patrol_area(plan, HOME[0], HOME[1])
    assert not inside_patrol_area(plan, HOME[0] + 0.05, HOME[1])  # 5.5 km north


def test_plan_round_trip_keeps_missions_identical(tmp_path):
    plan = make_plan([[(50, 50)], [(250, 50)]])
    p = tmp_path / "plan.json"
    plan.save(p)
    again = Plan.load(p)
    assert build_mission(again.sorties[1], again) == build_mission(plan.sorties[1], plan)


def test_follow_up_goes_around_a_no_fly_zone_between_home_and_the_resume_point():
    from shapely.geometry import LineString, Polygon

    from geo.plan_schema import NoFlyZone
    from geo.projection import LocalFrame

    plan = make_plan([[(200, -60)]], lines=3)
    frame = LocalFrame(plan.home.lat, plan.home.lon)
    ring = [list(map(float, frame.to_wgs84(e, n))) for e, n in [(80, -40), (120, -40), (120, 40), (80, 40), (80, -40)]]
    plan.no_fly = [NoFlyZone(id="NF", name="school", rings=[ring], buffer_m=10.0)]
    s = plan.sorties[0]
    fu = follow_up_sortie(s, 2, plan=plan)
    n_transit = len(fu.waypoints) - (len(s.waypoints) - 2)
    assert n_transit >= 1 and all(w.kind == "transit" and w.camera is None for w in fu.waypoints[:n_transit])
    assert (fu.waypoints[n_transit].lat, fu.waypoints[n_transit].lon) == (s.waypoints[2].lat, s.waypoints[2].lon)
    pts = [(0.0, 0.0)] + [tuple(map(float, frame.to_local(w.lon, w.lat))) for w in fu.waypoints[: n_transit + 1]]
    zone = Polygon([tuple(map(float, frame.to_local(lon, lat))) for lon, lat in ring]).buffer(10.0)
    assert not LineString(pts).intersects(zone)
    # a clear straight leg needs no transit
    assert len(follow_up_sortie(s, 2, plan=make_plan([[(200, -60)]], lines=3)).waypoints) == len(s.waypoints) - 2
