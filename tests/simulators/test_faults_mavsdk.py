"""Each injected fault, and how the vehicle reacts, seen through an unmodified MAVSDK client."""

from __future__ import annotations

import asyncio
import time

import pytest
from mavsdk.asyncio.plugins.action import ActionError
from mavsdk.asyncio.plugins.mission import MissionError
from mavsdk.plugins.geofence import FenceType, GeofenceData, Point, Polygon
from mavsdk.plugins.mission import MissionResult

from tests.simulators.mavsdk_client import (
    arm_and_start_mission,
    connect,
    first,
    offset,
    plan,
    survey_items,
    upload_after_refusal,
    wait_for,
)
from tests.simulators.test_vehicle_mavsdk import HOME, vehicle

pytestmark = pytest.mark.timeout(120)


def box(north0: float, east0: float, north1: float, east1: float, kind: FenceType) -> Polygon:
    pts = [offset(HOME[0], HOME[1], n, e) for n, e in ((north0, east0), (north0, east1), (north1, east1), (north1, east0))]
    return Polygon([Point(la, lo) for la, lo in pts], kind)


async def _start_survey(c, n: int = 12, rtl: bool = True, **kw) -> None:
    c.watch()
    await c.mission.set_return_to_launch_after_mission(rtl)
    await c.mission.upload_mission(plan(survey_items(HOME[0], HOME[1], n=n, **kw)))
    await arm_and_start_mission(c)


def test_link_loss_vehicle_keeps_flying_mission() -> None:
    v = vehicle()

    async def run() -> None:
        async with connect(v.connection_url) as c:
            await _start_survey(c, n=12, spacing_m=30, leg_m=60)
            await wait_for(lambda: bool(c.progress) and c.progress[-1][0] >= 1, 20, "progress 1")
            seen_before = len(c.progress)
            seq_before = v.state.mission_seq
            v.faults.link_loss(1.5)
            t0 = time.monotonic()
            await asyncio.sleep(0.2)
            n_during = len(c.progress)
            await asyncio.sleep(1.0)
            assert len(c.progress) == n_during, "MAVSDK heard the vehicle during link loss"
            assert v.state.mission_seq > seq_before, "the vehicle stopped flying during link loss"
            assert v.state.mode == "MISSION"
            assert v.stats.dropped > 0
            await wait_for(lambda: time.monotonic() - t0 > 1.5 and len(c.progress) > n_during, 10, "progress after the link is back")
            assert c.progress[-1][0] > c.progress[seen_before - 1][0]
            assert "RETURN_TO_LAUNCH" not in c.modes[: c.modes.index("MISSION") + 1]

    try:
        asyncio.run(run())
    finally:
        v.stop()


def test_link_loss_failsafe_returns_when_enabled() -> None:
    v = vehicle(datalink_loss_rtl_s=5.0)  # 5 sim seconds = 0.25 s wall at 20x

    async def run() -> None:
        async with connect(v.connection_url) as c:
            assert await c.param.get_param_int("NAV_DLL_ACT") == 2
            await _start_survey(c, n=12, spacing_m=30, leg_m=60)
            await wait_for(lambda: v.state.mission_seq >= 2 and v.state.in_air, 20, "in the air on the mission")
            v.faults.link_loss(1.0)
            await wait_for(lambda: v.state.mode == "RTL", 5, "data-link-loss RTL")
            await first(c.telemetry.subscribe_flight_mode(), lambda m: m.name == "RETURN_TO_LAUNCH", 10, "MAVSDK sees RTL")
            await first(c.telemetry.subscribe_armed(), lambda a: a is False, 40, "landed and disarmed at home")

    try:
        asyncio.run(run())
    finally:
        v.stop()


def test_gps_loss_lands_and_blocks_arming() -> None:
    v = vehicle()

    async def run() -> None:
        async with connect(v.connection_url) as c:
            c.watch()
            await c.action.set_takeoff_altitude(10.0)
            await c.action.arm()
            await c.action.takeoff()
            await wait_for(lambda: v.state.rel_alt_m > 9.0, 20, "takeoff")
            v.faults.gps_loss()
            await first(c.telemetry.subscribe_health(), lambda h: not h.is_global_position_ok, 10, "position not ok")
            raw = await first(c.telemetry.subscribe_raw_gps(), lambda g: True, 5, "raw gps")
            gps = await first(c.telemetry.subscribe_gps_info(), lambda g: g.fix_type.name == "NO_FIX", 5, "no fix")
            assert gps.num_satellites == 0 and raw is not None
            await first(c.telemetry.subscribe_flight_mode(), lambda m: m.name == "LAND", 10, "position-loss failsafe LAND")
            await first(c.telemetry.subscribe_armed(), lambda a: a is False, 40, "landed and disarmed")
            assert any("no global position" in t for t in c.texts)
            with pytest.raises(ActionError):
                await c.action.arm()  # PX4 refuses to arm without a position
            v.faults.gps_restore()
            await first(c.telemetry.subscribe_health(), lambda h: h.is_global_position_ok, 10, "position ok again")
            await c.action.arm()

    try:
        asyncio.run(run())
    finally:
        v.stop()


def test_low_battery_returns_to_launch() -> None:
    v = vehicle()

    async def run() -> None:
        async with connect(v.connection_url) as c:
            await _start_survey(c, n=12, spacing_m=30, leg_m=60)
            await wait_for(lambda: v.state.mission_seq >= 3, 20, "on the mission")
            v.faults.low_battery(6.0)
            bat = await first(c.telemetry.subscribe_battery(), lambda b: b.remaining_percent < 7.0, 10, "battery < 7 %")
            assert bat.remaining_percent > 0
            await first(c.telemetry.subscribe_flight_mode(), lambda m: m.name == "RETURN_TO_LAUNCH", 10, "battery RTL")
            assert not v.state.mission_finished
            await first(c.telemetry.subscribe_armed(), lambda a: a is False, 60, "landed and disarmed")
            assert any("battery critical" in t for t in c.texts)

    try:
        asyncio.run(run())
    finally:
        v.stop()


def test_geofence_mission_crossing_exclusion_zone_is_accepted_then_arming_refused() -> None:
    """As PX4 v1.16: the upload is accepted, arming is refused with "Geofence violation for
    waypoint N" (N = seq + 1); a mission that stays clear of the zone then arms."""
    v = vehicle()

    async def run() -> None:
        async with connect(v.connection_url) as c:
            c.watch()
            fence = GeofenceData([box(40, -50, 60, 100, FenceType.EXCLUSION)], [])
            await c.geofence.upload_geofence(fence)
            down = await c.geofence.download_geofence()
            assert len(down.polygons) == 1 and down.polygons[0].fence_type == FenceType.EXCLUSION
            assert len(down.polygons[0].points) == 4
            await c.mission.upload_mission(plan(survey_items(HOME[0], HOME[1], n=12)))  # legs up to 60 m north
            assert v.state.mission_count == 24
            await first(c.telemetry.subscribe_health(), lambda h: h.is_armable, 30, "armable")
            with pytest.raises(ActionError):
                await c.action.arm()
            assert not v.state.armed
            await wait_for(lambda: any(t.startswith("Geofence violation for waypoint ") and t.endswith("\t")
                                       for t in c.texts), 5, "geofence status text")
            # A survey that stays south of the zone arms.
            await c.mission.upload_mission(plan(survey_items(HOME[0], HOME[1], n=6)))
            assert v.state.mission_count == 12
            await c.action.arm()
            assert v.state.armed

    try:
        asyncio.run(run())
    finally:
        v.stop()


def test_geofence_breach_in_flight_holds_by_default() -> None:
    """PX4 GF_ACTION default: Hold (AUTO_LOITER) in the air, not Return."""
    v = vehicle()

    async def run() -> None:
        async with connect(v.connection_url) as c:
            await _start_survey(c, n=12, spacing_m=30, leg_m=60)
            # A fence uploaded after the mission: the later legs run into it.
            await c.geofence.upload_geofence(GeofenceData([box(80, -50, 120, 150, FenceType.EXCLUSION)], []))
            await first(c.telemetry.subscribe_flight_mode(), lambda m: m.name == "HOLD", 30, "breach Hold")
            assert any("Geofence breached" in t for t in c.texts)
            assert not v.state.mission_finished
            assert v.state.in_air and v.state.mode == "HOLD"

    try:
        asyncio.run(run())
    finally:
        v.stop()


def test_geofence_breach_fault_triggers_return() -> None:
    v = vehicle(geofence_action="rtl")

    async def run() -> None:
        async with connect(v.connection_url) as c:
            await _start_survey(c, n=12, spacing_m=30, leg_m=60)
            await wait_for(lambda: v.state.mission_seq >= 2 and v.state.in_air, 20, "on the mission")
            v.faults.geofence_breach()
            await first(c.telemetry.subscribe_flight_mode(), lambda m: m.name == "RETURN_TO_LAUNCH", 10, "breach RTL")

    try:
        asyncio.run(run())
    finally:
        v.stop()


@pytest.mark.parametrize(("ack", "expected"), [
    (1, MissionResult.PROTOCOL_ERROR),  # MAV_MISSION_ERROR, as MAVSDK reports it
    (4, MissionResult.TOO_MANY_MISSION_ITEMS),  # MAV_MISSION_NO_SPACE
    (14, MissionResult.DENIED),  # MAV_MISSION_DENIED
])
def test_rejected_upload_then_accepted(ack: int, expected: MissionResult) -> None:
    v = vehicle()

    async def run() -> None:
        async with connect(v.connection_url) as c:
            items = survey_items(HOME[0], HOME[1], n=5)
            v.faults.reject_next_upload(ack)
            with pytest.raises(MissionError) as e:
                await c.mission.upload_mission(plan(items))
            assert e.value.result == expected
            assert v.state.mission_count == 0
            await upload_after_refusal(c, plan(items))  # only the next upload was rejected
            assert v.state.mission_count == 10

    try:
        asyncio.run(run())
    finally:
        v.stop()
