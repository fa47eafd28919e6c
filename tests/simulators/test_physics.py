"""The point-mass model and the autopilot logic, without any network."""

from __future__ import annotations

import math

import pytest

from simulators.vehicle.autopilot import ACCEPTED, TEMPORARILY_REJECTED, Autopilot
from simulators.vehicle.mission_store import MISSION, Item
from simulators.vehicle.physics import BodyState, PhysicsParams, Target, step

P = PhysicsParams()


def fly(state: BodyState, target: Target, seconds: float, p: PhysicsParams = P, dt: float = 0.05) -> list[BodyState]:
    out = [state]
    for _ in range(int(round(seconds / dt))):
        out.append(step(out[-1], target, dt, p, powered=True))
    return out


def airborne(up: float = 20.0) -> BodyState:
    return BodyState(up=up, on_ground=False)


def test_speed_and_acceleration_limits() -> None:
    traj = fly(airborne(), Target(1000, 0, 20), 30)
    speeds = [s.ground_speed for s in traj]
    assert max(speeds) == pytest.approx(P.max_speed_m_s, rel=1e-3)
    accels = [(b.ground_speed - a.ground_speed) / 0.05 for a, b in zip(traj, traj[1:], strict=False)]
    assert max(accels) <= P.max_accel_m_s2 + 1e-6
    # 0 -> 15 m/s at 4 m/s^2 takes 3.75 s
    t_full = next(i for i, s in enumerate(speeds) if s >= P.max_speed_m_s - 1e-6) * 0.05
    assert t_full == pytest.approx(P.max_speed_m_s / P.max_accel_m_s2, abs=0.1)


def test_brakes_and_stops_on_target_without_overshoot() -> None:
    traj = fly(airborne(), Target(100, 50, 20), 40)
    end = traj[-1]
    assert math.hypot(end.east - 100, end.north - 50) < 0.05
    assert end.ground_speed < 0.05
    assert max(s.east for s in traj) <= 100 + 0.1


def test_head_wind_slows_ground_speed_and_tail_wind_does_not_exceed_air_cap() -> None:
    head = PhysicsParams(wind_east_m_s=-5.0)
    v_head = fly(airborne(), Target(5000, 0, 20), 20, head)[-1].ground_speed
    assert v_head == pytest.approx(P.max_speed_m_s - 5.0, abs=0.2)
    tail = PhysicsParams(wind_east_m_s=5.0)
    v_tail = fly(airborne(), Target(5000, 0, 20), 20, tail)[-1].ground_speed
    assert v_tail == pytest.approx(P.max_speed_m_s, abs=0.2)  # the guidance speed cap applies to ground speed too


def test_climb_descent_and_yaw_rate_limits() -> None:
    up = fly(airborne(0.0), Target(0, 0, 30), 5)
    assert up[-1].up == pytest.approx(5 * P.max_climb_m_s, abs=0.05)
    down = fly(airborne(30.0), Target(0, 0, 0), 5)
    assert down[-1].up == pytest.approx(30 - 5 * P.max_descent_m_s, abs=0.05)
    turn = fly(airborne(), Target(0, -1000, 20), 1.0)  # target due south: yaw must swing 180 degrees
    assert abs(((turn[-1].yaw_deg + 180) % 360) - 180) <= P.max_yaw_rate_deg_s * 1.0 + 1e-6


def test_battery_drain_proportional_to_time_and_climb() -> None:
    hover = fly(airborne(), Target(0, 0, 20), 60)[-1]
    used_hover = 100 - hover.battery_pct
    assert used_hover == pytest.approx(60 * P.drain_hover_pct_s, rel=1e-6)
    hover2 = fly(airborne(), Target(0, 0, 20), 120)[-1]
    assert 100 - hover2.battery_pct == pytest.approx(2 * used_hover, rel=1e-6)
    climb = fly(airborne(20), Target(0, 0, 50), 60)[-1]
    assert 100 - climb.battery_pct == pytest.approx(used_hover + 30 * P.drain_climb_pct_per_m, rel=1e-3)


def test_disarmed_does_not_move_or_drain() -> None:
    s = step(BodyState(v_east=3.0), Target(100, 0, 10), 1.0, P, powered=False)
    assert (s.east, s.up, s.battery_pct, s.ground_speed) == (0.0, 0.0, 100.0, 0.0)


def _wp(ap: Autopilot, seq: int, north: float, east: float, alt: float, cmd: int = 16) -> Item:
    lat, lon = ap.to_wgs84(east, north)
    return Item(seq, 3, cmd, 1, 0.0, 0.0, 0.0, float("nan"), int(round(lat * 1e7)), int(round(lon * 1e7)), alt, MISSION)


def run_until(ap: Autopilot, pred, sim_s: float, dt: float = 0.05) -> None:
    for _ in range(int(sim_s / dt)):
        ap.step(dt)
        if pred():
            return
    raise AssertionError(f"condition not met in {sim_s} sim s: mode {ap.mode} seq {ap.seq} {ap.body}")


def test_autopilot_mission_reports_each_item_and_rtl_lands_at_home() -> None:
    ap = Autopilot(30.0, 120.0, 5.0, params={"RTL_RETURN_ALT": 15.0})
    items = [_wp(ap, 0, 0, 50, 10), Item(1, 2, 178, 1, 1.0, 6.0, -1, 0, 0, 0, 0, MISSION), _wp(ap, 2, 50, 50, 10),
             Item(3, 2, 20, 1, 0, 0, 0, 0, 0, 0, 0, MISSION)]
    ap.set_list(MISSION, items)
    assert ap.start_mission() == ACCEPTED and ap.mode == "MISSION"  # PX4 lets a disarmed vehicle switch modes
    for _ in range(100):
        ap.step(0.05)
    assert ap.body.up == 0.0 and ap.body.east == 0.0  # ...but nothing moves until armed
    ap.outbox.clear()
    assert ap.arm(True) == ACCEPTED
    assert ap.start_mission() == ACCEPTED
    run_until(ap, lambda: ap.mode == "RTL", 200)
    reached = [e[1] for e in ap.outbox if e[0] == "reached"]
    assert reached == [0, 1, 2]  # RTL item: mode change, no "reached" (as MAVSDK expects of PX4)
    assert ap.cruise == 6.0
    run_until(ap, lambda: not ap.armed, 300)
    assert math.hypot(ap.body.east, ap.body.north) < 2.0 and ap.body.up == 0.0
    texts = [e[2].strip() for e in ap.outbox if e[0] == "text"]  # PX4's texts end with a tab
    assert "Returning to launch" in texts and "Landing detected" in texts and "Disarmed by landing" in texts


def test_autopilot_custom_modes_match_px4_encoding() -> None:
    ap = Autopilot(30.0, 120.0, 0.0)
    expected = {"HOLD": 0x03040000, "MISSION": 0x04040000, "RTL": 0x05040000, "LAND": 0x06040000, "TAKEOFF": 0x02040000}
    for mode, value in expected.items():
        ap.mode = mode
        assert ap.custom_mode == value, mode


def test_autopilot_refuses_disarm_in_air_and_takeoff_when_disarmed() -> None:
    ap = Autopilot(30.0, 120.0, 0.0)
    assert ap.takeoff(10.0) == TEMPORARILY_REJECTED
    ap.arm(True)
    ap.takeoff(10.0)
    run_until(ap, lambda: ap.body.up > 5, 20)
    assert ap.arm(False) == TEMPORARILY_REJECTED
    assert ap.arm(False, force=True) == ACCEPTED


def test_do_jump_repeats_a_leg_the_given_number_of_times() -> None:
    ap = Autopilot(30.0, 120.0, 0.0)
    items = [_wp(ap, 0, 0, 20, 10), _wp(ap, 1, 20, 20, 10), Item(2, 2, 177, 1, 0.0, 2.0, 0, 0, 0, 0, 0, MISSION),
             _wp(ap, 3, 0, 0, 10)]
    ap.set_list(MISSION, items)
    ap.arm(True)
    ap.start_mission()
    run_until(ap, lambda: ap.mission_finished, 600)
    reached = [e[1] for e in ap.outbox if e[0] == "reached"]
    assert reached == [0, 1, 2, 0, 1, 2, 0, 1, 2, 3]  # the leg 0-1 flown 1 + 2 times


def test_mission_uploaded_in_flight_is_flown_from_its_first_item() -> None:
    ap = Autopilot(30.0, 120.0, 0.0)
    ap.set_list(MISSION, [_wp(ap, 0, 0, 200, 10), _wp(ap, 1, 200, 200, 10)])
    ap.arm(True)
    ap.start_mission()
    run_until(ap, lambda: ap.body.east > 50, 120)
    ap.set_list(MISSION, [_wp(ap, 0, -50, 0, 15)])
    assert ap.mode == "MISSION" and ap.seq == 0
    run_until(ap, lambda: ap.mission_finished, 120)
    assert math.hypot(ap.body.east, ap.body.north + 50) < 2.0
