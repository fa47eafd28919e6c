"""Pre-flight checks and refusals, on a vehicle state set by hand (no simulator)."""

from __future__ import annotations

import asyncio

import pytest

from flight.executor import Emitter, FlightConfig, PreflightError, SortieExecutor
from flight.link import VehicleLink, VehicleState

from .planfactory import HOME, make_plan
from .simharness import Recorder


class StateOnlyLink(VehicleLink):
    """A link whose state is set by the test; nothing is sent anywhere."""

    def __init__(self, state: VehicleState) -> None:
        super().__init__("udpin://test", "test")
        self.state = state


def healthy(**kw) -> VehicleState:
    base = dict(connected=True, lat=HOME[0], lon=HOME[1], abs_alt_m=10, rel_alt_m=0, battery_pct=100,
                global_position_ok=True, home_position_ok=True, armable=True, gps_fix=3, satellites=12,
                home_lat=HOME[0], home_lon=HOME[1])
    base.update(kw)
    return VehicleState(**base)


def run_preflight(state: VehicleState, **cfg):
    plan = make_plan([[(40, 40)]])
    rec = Recorder()
    ex = SortieExecutor(StateOnlyLink(state), plan, plan.sorties[0], Emitter("d0", [rec]),
                        FlightConfig(health_timeout_s=0.2, **cfg))
    asyncio.run(ex.preflight())
    return rec


def test_healthy_vehicle_passes():
    rec = run_preflight(healthy())
    assert rec.kinds() == ["preflight_ok"]


def test_every_failed_check_is_named_at_once():
    far = (HOME[0] + 0.2, HOME[1])  # 22 km north
    state = healthy(battery_pct=40, gps_fix=2, satellites=4, home_lat=far[0], home_lon=far[1], lat=far[0], lon=far[1])
    with pytest.raises(PreflightError) as e:
        run_preflight(state)
    msg = str(e.value)
    for part in ("d0 sortie d0-s0", "battery 40 % < 55 % needed", "GPS fix type 2", "4 GPS satellites",
                 "outside the patrol area", "first waypoint is"):
        assert part in msg, part
    # the same five checks in Chinese for the 飞手 (fly summary, event text on the pages)
    zh = e.value.zh
    for part in ("无人机 d0 架次 d0-s0 起飞前检查未通过", "电量 40% 低于所需 55%", "GPS 定位类型 2", "GPS 卫星 4 颗",
                 "不在巡查区域内", "第一个航点距离"):
        assert part in zh, part


def test_unhealthy_vehicle_says_what_is_missing():
    with pytest.raises(PreflightError, match="home position, armable not ok"):
        run_preflight(healthy(home_position_ok=False, armable=False))


def test_sortie_battery_need_comes_from_the_plan():
    state = healthy(battery_pct=70)
    run_preflight(state)  # 30 % planned + 25 % reserve = 55 %
    with pytest.raises(PreflightError, match="70 % < 75 % needed"):
        run_preflight(state, battery_reserve_pct=45)
