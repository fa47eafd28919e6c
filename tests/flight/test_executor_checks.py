"""Pre-flight checks, mission start and progress, on a vehicle state set by hand (no simulator)."""

from __future__ import annotations

import asyncio
import time

import pytest

from flight.executor import Emitter, FlightConfig, PreflightError, SortieExecutor, SortieFailed, nav_seqs
from flight.link import VehicleLink, VehicleState
from flight.mission import build_mission, mavlink_item_count

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


# -- mission start and progress, on a scripted link (no simulator) ----------------------

REFUSAL = "Switching to Mission is currently not available\t"  # PX4 v1.16, tab-ended


class ScriptedLink(StateOnlyLink):
    """Arms and starts as told: ``refusals`` starts are acknowledged but refused the PX4 way
    (mode stays, the status text follows); after that the vehicle takes off in MISSION."""

    def __init__(self, state: VehicleState, refusals: int) -> None:
        super().__init__(state)
        self.refusals = refusals
        self.starts = 0

    async def arm(self) -> None:
        self.state.armed = True

    async def start_mission(self) -> None:
        self.starts += 1
        st = self.state
        if self.starts <= self.refusals:
            st.status_texts.append(REFUSAL)
            st.status_count += 1
        else:
            st.flight_mode, st.in_air = "MISSION", True
        self.changed.set()


def executor(link: VehicleLink, rec: Recorder, **cfg) -> SortieExecutor:
    plan = make_plan([[(40, 40)]])
    cfg = {"start_confirm_s": 0.3, "start_retry_s": 0.01, **cfg}
    return SortieExecutor(link, plan, plan.sorties[0], Emitter("d0", [rec]), FlightConfig(**cfg))


def test_mission_start_refused_after_upload_is_retried_until_the_vehicle_flies():
    rec = Recorder()
    link = ScriptedLink(healthy(flight_mode="HOLD"), refusals=2)
    asyncio.run(executor(link, rec)._arm_and_start())
    assert link.starts == 3
    fails = [e for e in rec.events if e.kind == "start_failed"]
    assert len(fails) == 2 and all("currently not available" in e.message for e in fails)


def test_mission_start_never_confirmed_fails_naming_drone_and_reason():
    rec = Recorder()
    link = ScriptedLink(healthy(flight_mode="HOLD"), refusals=99)
    with pytest.raises(SortieFailed, match=r"d0: mission start failed 4 times: .*currently not available"):
        asyncio.run(executor(link, rec)._arm_and_start())
    assert link.starts == 4


def test_mission_start_acknowledged_but_mode_unchanged_fails_within_the_deadline():
    rec = Recorder()
    link = ScriptedLink(healthy(flight_mode="HOLD"), refusals=0)

    async def silent_start() -> None:  # MAVSDK reports success, the vehicle does nothing
        link.starts += 1

    link.start_mission = silent_start
    with pytest.raises(SortieFailed, match="mode HOLD, armed, on ground"):
        asyncio.run(executor(link, rec, start_attempts=2)._arm_and_start())


def uploaded(ex: SortieExecutor, state: VehicleState, seq: int, count: int | None = None) -> None:
    """The mission is on the vehicle (as upload() leaves it) and a raw MISSION_CURRENT says ``seq``."""
    ex.spec = build_mission(ex.sortie, ex.plan, fence=False)
    ex._uploaded_wall = time.time() - 1.0
    state.raw_mission_seq = seq
    state.raw_mission_count = count if count is not None else ex.spec.mavlink_items
    state.mission_current_wall = time.time()


def test_raw_layout_matches_what_mavsdk_uploads():
    ex = executor(StateOnlyLink(healthy()), Recorder())
    spec = build_mission(ex.sortie, ex.plan, fence=False)
    seqs, count = nav_seqs(spec.steps, spec.rtl_after, gimbal_v2=True)
    assert count == spec.mavlink_items == mavlink_item_count(spec.steps, spec.rtl_after)
    assert seqs[0] == 0 and len(seqs) == len(spec.steps) and seqs == sorted(set(seqs))


def test_progress_from_raw_seq_without_mavsdk_progress_or_mission_state():
    state = healthy()
    rec = Recorder()
    ex = executor(StateOnlyLink(state), rec)
    ex.phase = "mission"
    seqs = nav_seqs(build_mission(ex.sortie, ex.plan, fence=False).steps, True, True)[0]
    uploaded(ex, state, seqs[3])  # flying to step 3: steps 0-2 reached, 3 not yet
    assert ex._track_progress() is False and ex.reached == [0, 1, 2]
    state.raw_mission_seq = seqs[3] + 1  # past step 3's waypoint (its DO items): reached
    assert ex._track_progress() is False and ex.reached == [0, 1, 2, 3]
    state.raw_mission_seq = ex.spec.mavlink_items - 1  # the final RTL item; mission_state stays 0
    assert ex._track_progress() is True and ex.reached == list(range(len(ex.sortie.waypoints)))


def test_raw_progress_of_another_mission_is_ignored():
    state = healthy()
    ex = executor(StateOnlyLink(state), Recorder())
    uploaded(ex, state, 9, count=7)  # count does not match this upload's layout
    assert ex._track_progress() is False and ex.reached == []
    uploaded(ex, state, 9)
    state.mission_current_wall = ex._uploaded_wall - 0.5  # heard before this upload
    assert ex._track_progress() is False and ex.reached == []


def test_auto_disarm_after_a_silent_refusal_is_retried_without_waiting_the_deadline():
    rec = Recorder()
    link = ScriptedLink(healthy(flight_mode="HOLD"), refusals=0)

    async def start() -> None:  # first start: no text, PX4 disarms on the ground (COM_DISARM_PRFLT)
        link.starts += 1
        if link.starts == 1:
            link.state.armed = False
        else:
            link.state.flight_mode, link.state.in_air = "MISSION", True
        link.changed.set()

    link.start_mission = start
    t0 = time.monotonic()
    asyncio.run(executor(link, rec, start_confirm_s=30.0)._arm_and_start())
    assert time.monotonic() - t0 < 5.0 and link.starts == 2
    assert rec.kinds().count("armed") == 2 and "disarmed, on ground" in rec.events[1].message
