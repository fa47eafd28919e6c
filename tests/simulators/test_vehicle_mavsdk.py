"""An unmodified MAVSDK client flies the simulated vehicle like PX4 SITL (issue 4, "done means")."""

from __future__ import annotations

import asyncio
import math

import pytest

from simulators.vehicle import SimVehicle, VehicleConfig, start_fleet
from tests.conftest import free_udp_port
from tests.simulators.mavsdk_client import connect, first, fly_survey, offset, plan, survey_items, wait_for

pytestmark = pytest.mark.timeout(120)
HOME = (30.0870, 120.4950, 12.0)


def vehicle(**kw) -> SimVehicle:
    cfg = dict(home_lat=HOME[0], home_lon=HOME[1], home_alt_amsl=HOME[2], speed_factor=20.0,
               gcs_port=free_udp_port(), listen_port=free_udp_port(), rtl_alt_m=20.0)
    cfg.update(kw)
    return SimVehicle(VehicleConfig(**cfg)).start()


def test_survey_40_waypoints_connect_to_landed() -> None:
    """Upload a 40-waypoint survey, download it back, fly it: progress 0..40 in order, RTL, land, disarm."""
    v = vehicle()

    async def fly() -> None:
        async with connect(v.connection_url) as c:
            home = await first(c.telemetry.subscribe_home(), lambda h: not math.isnan(h.latitude_deg), 10, "home")
            assert home.latitude_deg == pytest.approx(HOME[0], abs=1e-6)
            assert home.absolute_altitude_m == pytest.approx(HOME[2], abs=0.01)
            await fly_survey(c, HOME[0], HOME[1], n=40, timeout_s=60)
            assert "Returning to launch" in [t.strip() for t in c.texts]  # PX4's texts end with a tab

    try:
        asyncio.run(fly())
        s = v.state
        assert not s.armed and not s.in_air and s.mission_finished
        assert math.hypot((s.lat - HOME[0]) * 111195, (s.lon - HOME[1]) * 111195 * math.cos(math.radians(HOME[0]))) < 3.0
        assert s.odometer_m > 40 * 9  # it really flew the legs
        assert s.battery_pct < 100.0
        assert s.time_s > 60  # sim time ran at the speed factor, not wall time
    finally:
        v.stop()


def test_takeoff_pause_resume_set_current_params_goto() -> None:
    v = vehicle()

    async def fly() -> None:
        async with connect(v.connection_url) as c:
            c.watch()
            await c.action.set_takeoff_altitude(8.0)
            assert await c.action.get_takeoff_altitude() == pytest.approx(8.0)
            assert await c.param.get_param_float("NAV_ACC_RAD") == pytest.approx(2.0)
            assert await c.param.get_param_int("NAV_DLL_ACT") == 0
            await c.param.set_param_int("COM_DL_LOSS_T", 7)
            assert await c.param.get_param_int("COM_DL_LOSS_T") == 7
            await c.mission.set_return_to_launch_after_mission(False)
            await c.mission.upload_mission(plan(survey_items(HOME[0], HOME[1], n=6, spacing_m=40, leg_m=80)))
            await c.action.arm()
            await c.action.takeoff()
            await wait_for(lambda: v.state.mode == "HOLD" and v.state.rel_alt_m > 7.5, 20, "takeoff to 8 m then hold")
            await c.mission.start_mission()
            await wait_for(lambda: bool(c.progress) and c.progress[-1][0] >= 1, 20, "progress 1")
            await c.mission.pause_mission()
            await first(c.telemetry.subscribe_flight_mode(), lambda m: m.name == "HOLD", 10, "HOLD after pause")
            held = v.state.mission_seq
            await asyncio.sleep(0.5)  # 10 sim seconds in hold: no progress
            assert v.state.mission_seq == held and v.state.ground_speed_m_s < 1.0
            await c.mission.set_current_mission_item(4)
            await wait_for(lambda: v.state.mission_seq == 8, 5, "current item 4 = mavlink seq 8")
            await c.mission.start_mission()
            await wait_for(lambda: v.state.mission_finished, 30, "mission finished")
            assert v.state.mode == "HOLD" and v.state.in_air  # no RTL asked: PX4 loiters at the end
            assert 3 not in [p for p, _ in c.progress]  # skipped by set_current_mission_item(4)
            la, lo = offset(HOME[0], HOME[1], -30, -30)
            await c.action.goto_location(la, lo, HOME[2] + 12.0, 0.0)
            await wait_for(lambda: abs(v.state.lat - la) < 2e-5 and abs(v.state.lon - lo) < 2e-5, 20, "goto target")
            await c.action.land()
            await first(c.telemetry.subscribe_armed(), lambda a: a is False, 40, "disarmed after land")
            assert v.state.rel_alt_m < 0.1

    try:
        asyncio.run(fly())
    finally:
        v.stop()


def test_clear_mission_and_download_empty() -> None:
    v = vehicle()

    async def run() -> None:
        async with connect(v.connection_url) as c:
            await c.mission.upload_mission(plan(survey_items(HOME[0], HOME[1], n=3)))
            assert v.state.mission_count == 6  # 3 waypoints + 3 DO_CHANGE_SPEED
            await c.mission.clear_mission()
            assert v.state.mission_count == 0
            assert (await c.mission.download_mission()).mission_items == []

    try:
        asyncio.run(run())
    finally:
        v.stop()


def test_several_vehicles_on_distinct_ports() -> None:
    base = free_udp_port()
    # start_fleet uses consecutive ports; find a free run of 3 for send and listen.
    fleet = start_fleet(3, HOME, speed_factor=20.0, base_port=base, listen_base_port=free_udp_port())
    try:
        assert [v.config.gcs_port for v in fleet] == [base, base + 1, base + 2]
        assert [v.config.system_id for v in fleet] == [1, 2, 3]

        async def one(v: SimVehicle, alt: float) -> tuple[int, float]:
            async with connect(v.connection_url) as c:
                await c.action.set_takeoff_altitude(alt)
                await c.action.arm()
                await c.action.takeoff()
                pos = await first(c.telemetry.subscribe_position(), lambda p: p.relative_altitude_m > alt - 0.5, 30,
                                  f"vehicle {v.config.instance} at {alt} m")
                return await c.system.get_system_id(), pos.relative_altitude_m

        async def all_() -> list[tuple[int, float]]:
            return await asyncio.gather(*(one(v, 5.0 + 3 * i) for i, v in enumerate(fleet)))

        results = asyncio.run(all_())
        assert [r[0] for r in results] == [1, 2, 3]
        for i, v in enumerate(fleet):
            assert v.state.rel_alt_m == pytest.approx(5.0 + 3 * i, abs=1.0)
    finally:
        for v in fleet:
            v.stop()


def test_action_hold_and_return_to_launch() -> None:
    v = vehicle()

    async def run() -> None:
        async with connect(v.connection_url) as c:
            await c.action.set_return_to_launch_altitude(15.0)
            await c.action.set_takeoff_altitude(10.0)
            await c.action.arm()
            await c.action.takeoff()
            await wait_for(lambda: v.state.rel_alt_m > 9.5, 20, "takeoff")
            la, lo = offset(HOME[0], HOME[1], 60, 40)
            await c.action.goto_location(la, lo, HOME[2] + 10.0, 0.0)
            await wait_for(lambda: v.state.ground_speed_m_s > 3.0, 10, "moving")
            await c.action.hold()
            await first(c.telemetry.subscribe_flight_mode(), lambda m: m.name == "HOLD", 5, "HOLD")
            await asyncio.sleep(0.5)
            assert v.state.ground_speed_m_s < 0.5
            await c.action.return_to_launch()
            await first(c.telemetry.subscribe_flight_mode(), lambda m: m.name == "RETURN_TO_LAUNCH", 5, "RTL")
            await wait_for(lambda: v.state.rel_alt_m > 14.0, 20, "climb to RTL_RETURN_ALT 15 m")
            await first(c.telemetry.subscribe_armed(), lambda a: a is False, 60, "landed at home")
            s = v.state
            assert abs(s.lat - HOME[0]) < 2e-5 and abs(s.lon - HOME[1]) < 2e-5

    try:
        asyncio.run(run())
    finally:
        v.stop()
