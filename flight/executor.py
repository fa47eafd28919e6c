"""Flying one sortie on one vehicle: checks, upload, arm, start, monitor, faults.

The decisions (what to do when the link drops, the battery runs low, the command room
orders a return) are here; the MAVSDK calls are in :mod:`flight.link`. Every fault and
decision becomes a :class:`flight.records.FlightEvent` with time and position, sent to
the listeners (flight log, command room, vision).

Resume rule: the mission is continued from the **last reached waypoint** — the leg the
vehicle was on when it was interrupted is flown again from its start, so the ground
under it is covered, and no waypoint after the resume point is flown twice.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from flight.link import LinkError, VehicleLink, VehicleState, verify_download
from flight.mission import (
    CameraMode,
    MissionSpec,
    MissionStep,
    build_mission,
    follow_up_sortie,
    inside_patrol_area,
)
from flight.records import FlightEvent, FlightListener, Telemetry
from geo.geodesy import distance_m
from geo.plan_schema import Plan, Sortie

log = logging.getLogger("skygrid.flight")

Command = Literal["rtl", "hold", "resume"]
COMMANDS: tuple[str, ...] = ("rtl", "hold", "resume")


class PreflightError(RuntimeError):
    """The vehicle is not fit to fly this sortie; the message lists every failed check
    (English, for logs and the API); ``zh`` says the same in Chinese for the 飞手."""

    def __init__(self, message: str, zh: str = "") -> None:
        super().__init__(message)
        self.zh = zh


class SortieFailed(RuntimeError):
    """A sortie that could not be flown (upload refused, vehicle lost...)."""


@dataclass
class FlightConfig:
    """Knobs of the executor. Times in wall seconds unless said otherwise."""

    telemetry_hz: float = 5.0
    connect_timeout_s: float = 60.0
    health_timeout_s: float = 60.0
    #: battery needed at take-off on top of the sortie's planned use (percent points)
    battery_reserve_pct: float = 25.0
    #: never take off below this, whatever the plan says (percent)
    min_takeoff_battery_pct: float = 50.0
    #: return to launch when the battery falls to this during a sortie (percent)
    low_battery_pct: float = 20.0
    min_gps_fix: int = 3
    min_satellites: int = 6
    #: refuse when the first waypoint is further than this from the vehicle (m)
    max_first_waypoint_m: float = 10_000.0
    check_home_in_area: bool = True
    fence_buffer_m: float = 150.0
    upload_geofence: bool = True
    #: a geofence upload that fails stops the sortie (else: a warning event)
    require_geofence: bool = False
    mission_capacity: int = 2000
    camera_mode: CameraMode = "distance"
    upload_retries: int = 3
    #: None = keep waiting for a lost link forever
    link_loss_timeout_s: float | None = None
    #: deadline (s, wall) for fresh mission progress after a link comes back
    resume_settle_s: float = 8.0
    #: MAVSDK silence (s, wall) after a fresh raw MISSION_CURRENT that means "item unchanged"
    resume_quiet_s: float = 0.75
    #: the whole sortie (None = no limit)
    sortie_timeout_s: float | None = None
    #: disarm ourselves if the vehicle sits landed but armed this long
    landed_disarm_s: float = 15.0
    #: deadline (s, wall) for the vehicle to be in MISSION mode, armed and flying (or
    #: progressing) after a mission start; PX4 accepts the mode change and then refuses it
    start_confirm_s: float = 10.0
    #: tries of arm + start before the sortie fails (PX4 refuses MISSION for a while after an upload)
    start_attempts: int = 4
    #: wall seconds between start tries
    start_retry_s: float = 1.5


@dataclass
class SortieResult:
    """How a sortie ended. ``status``: completed | interrupted | aborted | failed."""

    drone_id: str
    sortie_id: str
    status: str
    reason: str = ""
    reason_zh: str = ""  # the reason in Chinese where one is known (pre-flight), for the 飞手
    #: highest original waypoint index reached (-1 = none)
    reached_index: int = -1
    waypoints: int = 0
    follow_up: Sortie | None = None
    resumes: int = 0
    link_losses: int = 0
    started_wall: float = 0.0
    ended_wall: float = 0.0
    reached: list[int] = field(default_factory=list)


class Emitter:
    """Fans records out to listeners; a failing listener is logged, never fatal."""

    def __init__(self, drone_id: str, listeners: Sequence[FlightListener]) -> None:
        self.drone_id = drone_id
        self.listeners: list[FlightListener] = list(listeners)
        self.sortie_id: str | None = None
        self.mission_item: int | None = None
        self.mission_total: int | None = None
        self._broken: set[int] = set()

    def _each(self, method: str, rec: Any) -> None:
        for lst in list(self.listeners):
            try:
                getattr(lst, method)(rec)
            except Exception:
                if id(lst) not in self._broken:
                    self._broken.add(id(lst))
                    log.exception("listener %r failed in %s (further failures not logged)", lst, method)

    def event(self, state: VehicleState, kind: str, message: str, **data: Any) -> FlightEvent:
        ev = FlightEvent(
            drone_id=self.drone_id,
            wall_time=time.time(),
            kind=kind,
            message=message,
            lat=state.lat if state.has_position else None,
            lon=state.lon if state.has_position else None,
            sortie_id=self.sortie_id,
            data={**data, **({"vehicle_time_s": state.vehicle_time_s} if state.vehicle_time_s is not None else {})},
        )
        log.info("%s %s: %s", self.drone_id, kind, message)
        self._each("on_event", ev)
        return ev

    def telemetry(self, state: VehicleState, time_s: float) -> Telemetry | None:
        if not state.has_position:
            return None
        rec = Telemetry(
            drone_id=self.drone_id,
            time_s=time_s,
            wall_time=time.time(),
            lat=state.lat,
            lon=state.lon,
            abs_alt_m=_f(state.abs_alt_m),
            rel_alt_m=_f(state.rel_alt_m),
            roll_deg=_f(state.roll_deg),
            pitch_deg=_f(state.pitch_deg),
            yaw_deg=_f(state.yaw_deg),
            ground_speed_m_s=_f(state.ground_speed_m_s),
            battery_pct=_f(state.battery_pct, -1.0),
            flight_mode=state.flight_mode,
            armed=state.armed,
            in_air=state.in_air,
            sortie_id=self.sortie_id,
            mission_item=self.mission_item,
            mission_total=self.mission_total,
        )
        self._each("on_telemetry", rec)
        return rec


def _f(x: float, default: float = 0.0) -> float:
    return float(x) if x is not None and math.isfinite(x) else default


class TelemetryPump:
    """Emits one :class:`Telemetry` per tick (``hz`` wall) from the link's latest state.

    ``time_s`` is the vehicle's clock (attitude timestamps, seconds since its boot),
    advanced between samples by the measured vehicle/wall speed ratio, so it follows the
    simulator's time scale; before any vehicle timestamp it is wall time since start.
    """

    def __init__(self, link: VehicleLink, emitter: Emitter, hz: float = 5.0) -> None:
        self.link = link
        self.emitter = emitter
        self.period = 1.0 / max(0.1, hz)
        self.count = 0
        self._task: asyncio.Task | None = None
        self._t0 = time.monotonic()
        self._ref: tuple[float, float] | None = None
        self.speed_factor: float | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.emitter.drone_id}-telemetry")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def vehicle_time(self) -> float:
        st = self.link.state
        if st.vehicle_time_s is None:
            return time.monotonic() - self._t0
        if self._ref is None or st.vehicle_time_wall - self._ref[1] > 5.0:
            sf = st.speed_factor(self._ref)
            if sf is not None and sf > 0:
                self.speed_factor = sf
            self._ref = (st.vehicle_time_s, st.vehicle_time_wall)
        lag = max(0.0, time.time() - st.vehicle_time_wall)
        return st.vehicle_time_s + min(lag, 1.0) * (self.speed_factor or 1.0)

    async def _run(self) -> None:
        nxt = time.monotonic()
        while True:
            st = self.link.state
            if st.connected:
                if self.emitter.telemetry(st, self.vehicle_time()) is not None:
                    self.count += 1
            nxt += self.period
            delay = nxt - time.monotonic()
            if delay < -self.period:  # fell behind (loaded CPU): don't burst
                nxt = time.monotonic()
                delay = 0
            await asyncio.sleep(max(0.0, delay))


_AIR_MODES_RETURN = {"RETURN_TO_LAUNCH", "LAND"}
#: modes in which the autopilot holds position on its own (PX4's geofence default action,
#: data-link loss before RTL): a failsafe when we did not command it
_AIR_MODES_HOLD = {"HOLD"}
#: PX4 refuses a mode change it first acknowledged (v1.16 after an upload)
_START_REFUSED_TEXT = "currently not available"


def nav_seqs(steps: Sequence[MissionStep], rtl_after: bool, gimbal_v2: bool) -> tuple[list[int], int]:
    """MAVLink seq of each step's NAV_WAYPOINT as MAVSDK 4 lays the mission out, and the
    item count (``MissionImpl::convert_to_int_items``: per step the waypoint first, then
    speed, gimbal and camera items; gimbal v2 adds a configure item before the first and
    after the last gimbal command; the final NAV_RETURN_TO_LAUNCH)."""
    seqs: list[int] = []
    n = 0
    gimbal_seen = False
    for s in steps:
        seqs.append(n)
        n += 1 + (s.speed_m_s is not None) + (s.camera is not None)
        if s.gimbal_pitch_deg is not None:
            n += 1 + (gimbal_v2 and not gimbal_seen)
            gimbal_seen = True
    n += (gimbal_v2 and gimbal_seen) + rtl_after
    return seqs, n


class SortieExecutor:
    """Flies ``sortie`` of ``plan`` on ``link``, reporting through ``emitter``.

    ``commands`` receives ``"rtl" | "hold" | "resume"`` from the command room.
    """

    def __init__(
        self,
        link: VehicleLink,
        plan: Plan,
        sortie: Sortie,
        emitter: Emitter,
        config: FlightConfig | None = None,
        commands: asyncio.Queue | None = None,
    ) -> None:
        self.link = link
        self.plan = plan
        self.sortie = sortie
        self.em = emitter
        self.cfg = config or FlightConfig()
        self.commands: asyncio.Queue = commands if commands is not None else asyncio.Queue()
        self.spec: MissionSpec | None = None
        self.reached_index = -1  # original waypoint index
        self.reached: list[int] = []
        self.phase = "preflight"
        self.holding = False
        self.aborted = False
        self.interrupt_reason = ""
        self.expected_modes: set[str] = {"MISSION"}
        self.took_off = False
        self.resumes = 0
        self.link_losses = 0
        self._landed_armed_since: float | None = None
        #: wall time (time.time()) the current mission was uploaded: raw progress older than that is of another mission
        self._uploaded_wall = 0.0
        self._nav: list[int] | None = None  # MAVLink seq of each step's waypoint, once the count matched
        self._outage_note = ""  # appended to item_reached messages judged after a link loss
        self.mission_done = False
        self._disarmed_since: float | None = None

    # -- helpers --------------------------------------------------------------------
    @property
    def st(self) -> VehicleState:
        return self.link.state

    def _event(self, kind: str, message: str, **data: Any) -> FlightEvent:
        return self.em.event(self.st, kind, message, **data)

    def _set_progress_context(self) -> None:
        spec = self.spec
        if spec is None:
            return
        cur = self.st.mission_current
        self.em.mission_total = len(self.sortie.waypoints)
        self.em.mission_item = spec.waypoint_index(cur) if cur >= 0 else spec.start_index

    def _result(self, status: str, reason: str = "", follow_up: Sortie | None = None) -> SortieResult:
        return SortieResult(
            drone_id=self.em.drone_id,
            sortie_id=self.sortie.id,
            status=status,
            reason=reason,
            reached_index=self.reached_index,
            waypoints=len(self.sortie.waypoints),
            follow_up=follow_up,
            resumes=self.resumes,
            link_losses=self.link_losses,
            reached=list(self.reached),
        )

    @property
    def resume_index(self) -> int:
        """Original waypoint index to continue from (the last one reached)."""
        return max(0, self.reached_index)

    # -- pre-flight -----------------------------------------------------------------
    async def preflight(self) -> None:
        """Wait for health, then check battery, GPS, home and first waypoint distance."""
        cfg = self.cfg
        ok = await self.link.wait_for(
            lambda s: s.connected and s.global_position_ok and s.home_position_ok and s.armable and s.has_position,
            cfg.health_timeout_s,
        )
        st = self.st
        problems: list[str] = []
        problems_zh: list[str] = []  # the same checks in Chinese, for the 飞手 (fly summary, pages)

        def problem(en: str, zh: str) -> None:
            problems.append(en)
            problems_zh.append(zh)

        if not ok:
            missing = [
                (n, zh)
                for n, zh, v in (
                    ("link", "数据链", st.connected),
                    ("global position", "全球定位", st.global_position_ok),
                    ("home position", "返航点", st.home_position_ok),
                    ("armable", "可解锁状态", st.armable),
                    ("position fix", "定位", st.has_position),
                )
                if not v
            ]
            problem(f"not healthy after {cfg.health_timeout_s:.0f} s: {', '.join(n for n, _ in missing)} not ok",
                    f"{cfg.health_timeout_s:.0f} 秒内未就绪：{'、'.join(z for _, z in missing)}异常")
        need = max(cfg.min_takeoff_battery_pct, self.sortie.battery_fraction * 100.0 + cfg.battery_reserve_pct)
        need = min(need, 100.0)
        await self.link.wait_for(lambda s: math.isfinite(s.battery_pct), 5.0)
        if not math.isfinite(st.battery_pct):
            problem("battery level unknown", "电量未知")
        elif st.battery_pct + 1e-6 < need:
            problem(
                f"battery {st.battery_pct:.0f} % < {need:.0f} % needed "
                f"(sortie uses {self.sortie.battery_fraction * 100:.0f} % + {cfg.battery_reserve_pct:.0f} % reserve)",
                f"电量 {st.battery_pct:.0f}% 低于所需 {need:.0f}%"
                f"（本架次耗电 {self.sortie.battery_fraction * 100:.0f}% + 预留 {cfg.battery_reserve_pct:.0f}%）",
            )
        # GPS_RAW_INT may arrive after the health bits: give it a moment before judging the fix
        await self.link.wait_for(lambda s: s.gps_fix >= cfg.min_gps_fix and s.satellites >= cfg.min_satellites, 5.0)
        if st.gps_fix < cfg.min_gps_fix:
            problem(f"GPS fix type {st.gps_fix} < {cfg.min_gps_fix} (3D fix needed)",
                    f"GPS 定位类型 {st.gps_fix} 低于 {cfg.min_gps_fix}（需要 3D 定位）")
        if st.satellites < cfg.min_satellites:
            problem(f"{st.satellites} GPS satellites < {cfg.min_satellites}",
                    f"GPS 卫星 {st.satellites} 颗，少于 {cfg.min_satellites} 颗")
        if cfg.check_home_in_area:
            hl, ho = (st.home_lat, st.home_lon) if math.isfinite(st.home_lat) else (st.lat, st.lon)
            if math.isfinite(hl) and not inside_patrol_area(self.plan, hl, ho, cfg.fence_buffer_m):
                problem(
                    f"vehicle home ({hl:.6f}, {ho:.6f}) is outside the patrol area "
                    f"(plan home {self.plan.home.lat:.6f}, {self.plan.home.lon:.6f})",
                    f"无人机返航点（{hl:.6f}, {ho:.6f}，WGS-84）不在巡查区域内"
                    f"（计划起飞点 {self.plan.home.lat:.6f}, {self.plan.home.lon:.6f}）",
                )
        if st.has_position:
            first = self.sortie.waypoints[self.spec.start_index if self.spec else 0]
            d = distance_m(st.lat, st.lon, first.lat, first.lon)
            if d > cfg.max_first_waypoint_m:
                problem(f"first waypoint is {d:.0f} m away (> {cfg.max_first_waypoint_m:.0f} m)",
                        f"第一个航点距离 {d:.0f} 米（超过 {cfg.max_first_waypoint_m:.0f} 米）")
        if problems:
            self._event("preflight_failed", "; ".join(problems), problems=problems, problems_zh=problems_zh)
            raise PreflightError(f"{self.em.drone_id} sortie {self.sortie.id}: " + "; ".join(problems),
                                 f"无人机 {self.em.drone_id} 架次 {self.sortie.id} 起飞前检查未通过："
                                 + "；".join(problems_zh))
        self._event(
            "preflight_ok",
            f"battery {st.battery_pct:.0f} %, GPS fix {st.gps_fix} with {st.satellites} satellites",
            battery_pct=st.battery_pct,
        )

    # -- upload ---------------------------------------------------------------------
    async def upload(self, start_index: int = 0, fence: bool = True) -> MissionSpec:
        """Build, upload and verify (by download) the mission from ``start_index``."""
        spec = build_mission(
            self.sortie,
            self.plan,
            start_index=start_index,
            capacity=self.cfg.mission_capacity,
            camera_mode=self.cfg.camera_mode,
            fence=fence and self.cfg.upload_geofence,
            fence_buffer_m=self.cfg.fence_buffer_m,
        )
        if spec.fence:
            for attempt in range(1, self.cfg.upload_retries + 1):
                try:
                    await self.link.upload_geofence(spec.fence)
                    self._event(
                        "geofence_uploaded",
                        f"{len(spec.fence)} polygons ({sum(1 for p in spec.fence if not p.inclusion)} no-fly), "
                        f"{sum(len(p.points) for p in spec.fence)} vertices",
                        polygons=len(spec.fence),
                    )
                    break
                except LinkError as e:
                    self._event("geofence_failed", f"attempt {attempt}/{self.cfg.upload_retries}: {e}",
                                attempt=attempt)
                    if attempt == self.cfg.upload_retries:
                        if self.cfg.require_geofence:
                            raise SortieFailed(f"geofence upload failed: {e}") from None
                        self._event("geofence_missing", "flying without a geofence on the vehicle")
                    else:
                        await asyncio.sleep(0.5 * attempt)
        last: Exception | None = None
        for attempt in range(1, self.cfg.upload_retries + 1):
            try:
                t0 = time.monotonic()
                self._uploaded_wall, self._nav = time.time(), None
                await self.link.upload_mission(spec.steps, rtl_after=spec.rtl_after)
                items, rtl = await self.link.download_mission()
                why = verify_download(spec.steps, items)
                if why is None and rtl != spec.rtl_after:
                    why = f"return-to-launch after mission is {rtl} on the vehicle"
                if why is not None:
                    raise LinkError(f"mission verification failed: {why}")
                self.spec = spec
                self._set_progress_context()
                self._event(
                    "mission_uploaded",
                    f"{len(spec.steps)} waypoints from #{start_index} ({spec.mavlink_items} MAVLink items), "
                    f"verified by download in {time.monotonic() - t0:.1f} s",
                    start_index=start_index,
                    items=len(spec.steps),
                    mavlink_items=spec.mavlink_items,
                )
                return spec
            except LinkError as e:
                last = e
                self._event("upload_failed", f"attempt {attempt}/{self.cfg.upload_retries}: {e}", attempt=attempt)
                await asyncio.sleep(min(2.0, 0.5 * attempt))
        raise SortieFailed(f"mission upload failed {self.cfg.upload_retries} times: {last}")

    async def _arm_and_start(self) -> None:
        """Arm, start the mission and confirm it really started (bounded, retried).

        PX4 v1.16 answers the mode change right after an upload first ACCEPTED, then
        TEMPORARILY_REJECTED with "Switching to Mission is currently not available", and
        MAVSDK reports success on the first ack; the vehicle stays on the ground and
        auto-disarms ~10 s (vehicle time) later. So a start counts only once the vehicle
        reports MISSION mode, armed, and in the air or progressing, within
        ``start_confirm_s``; otherwise it is tried again (``start_attempts``) and then the
        sortie fails naming the drone and the reason.
        """
        cfg = self.cfg
        why = ""
        for attempt in range(1, cfg.start_attempts + 1):
            texts_before = self.st.status_count
            seq_before = self.st.raw_mission_seq
            try:
                if not self.st.armed:
                    await self.link.arm()
                    self._event("armed", "motors armed")
                armed_at_start = self.st.armed
                await self.link.start_mission()
            except LinkError as e:
                why = str(e)
            else:
                seen_armed: list[bool] = [True] if armed_at_start else []

                def refusal_of(st: VehicleState, texts_before: int = texts_before) -> str:
                    return next((t.strip() for t in st.texts_since(texts_before) if _START_REFUSED_TEXT in t), "")

                def running(st: VehicleState, seq_before: int = seq_before) -> bool:
                    return (st.flight_mode == "MISSION" and st.armed
                            and (st.in_air or st.raw_mission_seq > max(0, seq_before)))

                def started(st: VehicleState, seen_armed: list[bool] = seen_armed) -> bool:
                    if st.armed:
                        seen_armed.append(True)
                    disarmed = bool(seen_armed) and not st.armed and not st.in_air  # PX4's auto-disarm
                    return bool(refusal_of(st)) or disarmed or running(st)

                await self.link.wait_for(started, cfg.start_confirm_s)
                st = self.st
                refusal = refusal_of(st)
                if not refusal and running(st):
                    self.expected_modes = {"MISSION"}
                    return
                if refusal:
                    why = f"vehicle refused the mission start: {refusal}"
                else:
                    why = (f"mission not started (waited up to {cfg.start_confirm_s:g} s): mode {st.flight_mode}, "
                           f"{'armed' if st.armed else 'disarmed'}, {'in air' if st.in_air else 'on ground'}")
            self._event("start_failed", f"attempt {attempt}/{cfg.start_attempts}: {why}", attempt=attempt)
            if attempt < cfg.start_attempts:
                await asyncio.sleep(cfg.start_retry_s)
        raise SortieFailed(f"{self.em.drone_id}: mission start failed {cfg.start_attempts} times: {why}")

    # -- run ------------------------------------------------------------------------
    async def run(self, start_index: int = 0) -> SortieResult:
        """Fly the sortie; returns how it ended (never raises for flight faults)."""
        started = time.time()
        self.em.sortie_id = self.sortie.id
        self.em.mission_total = len(self.sortie.waypoints)
        self.em.mission_item = start_index
        self._event(
            "sortie_start",
            f"sortie {self.sortie.id}: {len(self.sortie.waypoints)} waypoints over grids "
            f"{', '.join(self.sortie.grid_ids)}",
            grids=list(self.sortie.grid_ids),
            waypoints=len(self.sortie.waypoints),
        )
        try:
            if self.cfg.sortie_timeout_s:
                res = await asyncio.wait_for(self._run(start_index), self.cfg.sortie_timeout_s)
            else:
                res = await self._run(start_index)
        except PreflightError as e:
            res = self._result("failed", str(e))
            res.reason_zh = e.zh
        except (SortieFailed, LinkError) as e:
            self._event("sortie_failed", str(e))
            res = self._result("failed", str(e))
            await self._make_safe()
        except TimeoutError:
            self._event("sortie_failed", f"sortie took longer than {self.cfg.sortie_timeout_s:.0f} s")
            res = self._result("failed", "timeout")
            await self._make_safe()
        res.started_wall, res.ended_wall = started, time.time()
        if res.status == "failed" and res.follow_up is None and self.reached_index >= 0:
            res.follow_up = self._follow_up()
        self._event(
            "sortie_done",
            f"sortie {self.sortie.id} {res.status}"
            + (f" ({res.reason})" if res.reason else "")
            + f": reached waypoint {res.reached_index + 1}/{res.waypoints}"
            + (f", follow-up {res.follow_up.id} from #{self.resume_index}" if res.follow_up else ""),
            status=res.status,
            reached_index=res.reached_index,
            follow_up=res.follow_up.id if res.follow_up else None,
        )
        return res

    def _follow_up(self) -> Sortie | None:
        if self.reached_index >= len(self.sortie.waypoints) - 1:
            return None
        return follow_up_sortie(self.sortie, self.resume_index, plan=self.plan)

    async def _make_safe(self) -> None:
        """After a failure in the air, bring the vehicle home."""
        st = self.st
        if st.connected and st.in_air and st.flight_mode not in _AIR_MODES_RETURN:
            with contextlib.suppress(LinkError):
                await self.link.return_to_launch()
                self._event("rtl", "returning to launch after a failure")

    async def _run(self, start_index: int) -> SortieResult:
        if not self.st.connected:
            ok = await self.link.wait_for(lambda s: s.connected, self.cfg.connect_timeout_s)
            if not ok:
                raise SortieFailed(f"no link to the vehicle for {self.cfg.connect_timeout_s:.0f} s")
        # build first so a sortie over capacity is refused before anything else
        build_mission(self.sortie, None, start_index=start_index, capacity=self.cfg.mission_capacity, fence=False)
        await self.preflight()
        await self.upload(start_index)
        self.reached_index = start_index - 1
        await self._arm_and_start()
        self.phase = "mission"
        self._event("mission_started", f"mission started from waypoint #{start_index}", start_index=start_index)
        return await self._monitor()

    # -- monitoring -----------------------------------------------------------------
    def _nav_layout(self) -> list[int] | None:
        """MAVLink seqs of the current mission's waypoints, once a raw MISSION_CURRENT of this
        upload gave an item count matching MAVSDK's layout (gimbal protocol v2 or v1)."""
        spec, st = self.spec, self.st
        if self._nav is None and spec is not None and st.mission_current_wall >= self._uploaded_wall:
            for v2 in (True, False):
                seqs, count = nav_seqs(spec.steps, spec.rtl_after, v2)
                if count == st.raw_mission_count:
                    self._nav = seqs
                    break
        return self._nav

    def _raw_next_step(self) -> int | None:
        """Mission step the vehicle flies now (= steps reached), from the raw MAVLink seqs
        it sent for this upload: MISSION_CURRENT (a seq past a step's waypoint means PX4
        accepted that waypoint) and the MISSION_ITEM_REACHED history. None when unknown.

        This does not depend on MAVSDK's own progress stream, which reports only changes
        of its item index and may lag the raw message; PX4 1.16 leaves ``mission_state``
        at 0, so completion is decided here from the seq vs the item count too."""
        st = self.st
        nav = self._nav_layout()
        if nav is None or st.mission_current_wall < self._uploaded_wall or st.raw_mission_seq < 0:
            return None
        cur = bisect.bisect_left(nav, st.raw_mission_seq)
        if st.raw_reached_seq >= 0 and st.raw_reached_wall >= self._uploaded_wall:
            cur = max(cur, bisect.bisect_right(nav, st.raw_reached_seq))
        return cur

    def _track_progress(self) -> bool:
        """Record newly reached waypoints; True when the whole mission is done."""
        spec = self.spec
        st = self.st
        if spec is None:
            return False
        cur = -1
        if st.mission_current >= 0 and (not st.mission_total or st.mission_total == len(spec.steps)):
            cur = min(st.mission_current, len(spec.steps))  # MAVSDK's progress of this mission
        raw = self._raw_next_step()
        if raw is not None:
            cur = max(cur, min(raw, len(spec.steps)))
        if cur < 0:
            return False
        if cur >= 1:
            idx = spec.waypoint_index(cur - 1)
            while self.reached_index < idx:
                self.reached_index += 1
                if self.reached_index >= spec.start_index:
                    self.reached.append(self.reached_index)
                    self._event(
                        "item_reached",
                        f"waypoint {self.reached_index + 1}/{len(self.sortie.waypoints)}{self._outage_note}",
                        item=self.reached_index,
                        total=len(self.sortie.waypoints),
                    )
        self._set_progress_context()
        if st.in_air:
            self.took_off = True
        return cur >= len(spec.steps)

    async def _monitor(self) -> SortieResult:
        self.mission_done = False
        while True:
            mission_done = self.mission_done
            self.link.changed.clear()
            await self._apply_commands()
            st = self.st
            if not st.connected:
                res = await self._handle_link_loss()
                if res is not None:
                    return res
                continue
            if self.phase == "mission" and not self.holding:
                if self._track_progress() and not mission_done:
                    mission_done = self.mission_done = True
                    self.phase = "returning"
                    self.expected_modes = {"MISSION", "RETURN_TO_LAUNCH", "LAND", "HOLD"}
                    self._event("mission_complete", "all waypoints reached, returning to launch")
            if st.in_air:
                self.took_off = True
            # low battery: return, re-plan the rest
            if (
                self.phase == "mission"
                and not mission_done
                and math.isfinite(st.battery_pct)
                and st.battery_pct <= self.cfg.low_battery_pct
            ):
                self.interrupt_reason = "low battery"
                self._event(
                    "low_battery",
                    f"battery {st.battery_pct:.0f} % <= {self.cfg.low_battery_pct:.0f} %: returning, "
                    f"the rest of the sortie from waypoint #{self.resume_index} becomes a follow-up sortie",
                    battery_pct=st.battery_pct,
                    resume_index=self.resume_index,
                )
                await self._return("low battery")
            # the vehicle changed mode on its own (failsafe)
            if self.phase == "mission" and st.flight_mode not in self.expected_modes and self.took_off:
                hold = st.flight_mode in _AIR_MODES_HOLD and st.in_air
                if st.flight_mode in _AIR_MODES_RETURN or not st.in_air or hold:
                    await asyncio.sleep(0.3)  # let the battery / status text that caused it arrive
                    reason = self._failsafe_reason()
                    self.interrupt_reason = reason
                    self._event(
                        "failsafe",
                        f"autopilot failsafe: {st.flight_mode} ({reason}); last reached waypoint #{self.reached_index}",
                        mode=st.flight_mode,
                        reason=reason,
                    )
                    self.phase = "returning"
                    self.expected_modes = {"RETURN_TO_LAUNCH", "LAND", "HOLD"}
                    if hold:
                        # PX4 holds on a geofence breach (GF_ACTION default) and for a while on a
                        # data-link loss: a Hold we did not order leaves the mission; bring it home
                        await self._return(reason)
            # a start that never took off (PX4 auto-disarms on the ground ~10 s after arming)
            if self.phase == "mission" and not self.took_off and not st.armed and not st.in_air:
                now = time.monotonic()
                if self._disarmed_since is None:
                    self._disarmed_since = now
                elif now - self._disarmed_since > self.cfg.start_confirm_s:
                    raise SortieFailed(f"{self.em.drone_id}: vehicle disarmed on the ground without taking off "
                                       f"({self.cfg.start_confirm_s:.0f} s after the mission start)")
            else:
                self._disarmed_since = None
            # landed?
            if self.took_off and not st.in_air:
                if not st.armed:
                    self._event("landed", "landed and disarmed")
                    return self._finish(mission_done)
                now = time.monotonic()
                if self._landed_armed_since is None:
                    self._landed_armed_since = now
                elif now - self._landed_armed_since > self.cfg.landed_disarm_s:
                    with contextlib.suppress(LinkError):
                        await self.link.disarm()
                    self._event("landed", "landed; disarmed by the ground station")
                    return self._finish(mission_done)
            else:
                self._landed_armed_since = None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake(), timeout=0.2)

    def _failsafe_reason(self) -> str:
        """Why the autopilot left the mission: from its status texts and the battery."""
        st = self.st
        recent = " ".join(st.status_texts[-5:]).lower()
        if "battery" in recent or (math.isfinite(st.battery_pct) and st.battery_pct <= self.cfg.low_battery_pct + 10):
            return "low battery"
        for word, why in (("gps", "GPS lost"), ("position", "position lost"), ("geofence", "geofence breach"),
                          ("datalink", "data link lost")):
            if word in recent:
                return why
        return f"vehicle switched to {st.flight_mode}"

    async def _wake(self) -> None:
        cmd_wait = asyncio.create_task(self._peek_command())
        chg_wait = asyncio.create_task(self.link.changed.wait())
        try:
            await asyncio.wait({cmd_wait, chg_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (cmd_wait, chg_wait):
                t.cancel()

    async def _peek_command(self) -> None:
        while self.commands.empty():
            await asyncio.sleep(0.05)

    def _finish(self, mission_done: bool) -> SortieResult:
        if mission_done:
            return self._result("completed")
        if self.aborted:
            return self._result("aborted", "command room abort", self._follow_up())
        return self._result("interrupted", self.interrupt_reason or "landed before the end", self._follow_up())

    async def _return(self, why: str) -> None:
        self.phase = "returning"
        self.expected_modes = {"RETURN_TO_LAUNCH", "LAND", "HOLD", "MISSION"}
        if self.st.flight_mode in _AIR_MODES_RETURN:
            return
        try:
            await self.link.return_to_launch()
            self._event("rtl", f"return to launch ({why})", reason=why)
        except LinkError as e:
            self._event("rtl_failed", f"return to launch refused: {e}", reason=why)

    # -- commands -------------------------------------------------------------------
    async def _apply_commands(self) -> None:
        while not self.commands.empty():
            cmd = self.commands.get_nowait()
            await self.apply(cmd)

    async def apply(self, cmd: str) -> None:
        """Apply a command-room order now."""
        st = self.st
        self._event("command", f"command room: {cmd}", action=cmd)
        try:
            if cmd == "rtl":
                self.aborted = True
                self.holding = False
                await self._return("command room abort")
            elif cmd == "hold":
                if not st.in_air:
                    self._event("command_ignored", "hold: vehicle is not flying")
                    return
                self.holding = True
                self.expected_modes = {"HOLD", "MISSION"}
                await self.link.pause_mission()
                self._event("hold", "holding position on command")
            elif cmd == "resume":
                if self.holding and st.in_air:
                    self.holding = False
                    await self.link.start_mission()
                    await self.link.wait_for(lambda s: s.flight_mode == "MISSION", 5.0)
                    self.expected_modes = {"MISSION"}
                    self.resumes += 1
                    self._event("resumed", "mission resumed on command", from_index=self.reached_index)
                elif self.aborted and st.in_air:
                    self.aborted = False
                    await self._reupload_and_continue("resumed on command after abort")
                else:
                    self._event("command_ignored", "resume: nothing to resume")
            else:
                self._event("command_ignored", f"unknown command {cmd!r}")
        except LinkError as e:
            self._event("command_failed", f"{cmd}: {e}", action=cmd)

    # -- link loss ------------------------------------------------------------------
    async def _handle_link_loss(self) -> SortieResult | None:
        self.link_losses += 1
        t0 = time.monotonic()
        self._event(
            "link_lost",
            f"link lost in phase {self.phase}; last reached waypoint #{self.reached_index}, mode {self.st.flight_mode}",
            reached_index=self.reached_index,
            mode=self.st.flight_mode,
        )
        next_note = 30.0
        while not self.st.connected:
            waited = time.monotonic() - t0
            if self.cfg.link_loss_timeout_s is not None and waited > self.cfg.link_loss_timeout_s:
                self._event("link_timeout", f"no link for {waited:.0f} s; giving up this sortie")
                return self._result("failed", "link lost", self._follow_up())
            if waited > next_note:
                self._event("link_waiting", f"still no link after {waited:.0f} s; keep trying")
                next_note += 30.0
            await self.link.wait_for(lambda s: s.connected, 1.0)
        outage = time.monotonic() - t0
        restored = time.time()
        # Fresh state before deciding where to resume. The decision is taken from the raw
        # MISSION_CURRENT / MISSION_ITEM_REACHED seqs (see _raw_next_step), so it waits for a
        # raw MISSION_CURRENT sent after the restore. It used to wait for MAVSDK's own
        # progress event, or for a fresh raw MISSION_CURRENT followed by ``resume_quiet_s``
        # of MAVSDK silence, and then judged from MAVSDK's item index: under CPU load that
        # index was still the one from before the outage when the decision was taken (the
        # vehicle had reached the next waypoints while the link was down), the resume
        # started one or more waypoints early and flew them twice (the flaky link-loss
        # test). MAVSDK's index is used only where the raw seqs cannot be mapped (an item
        # count that does not match MAVSDK's layout). Bounded by ``resume_settle_s``.
        quiet = self.cfg.resume_quiet_s
        first_fresh: list[float] = []  # wall time the first raw MISSION_CURRENT after restore was seen

        def settled(s: VehicleState) -> bool:
            if s.mission_current_wall >= restored and self._nav_layout() is not None:
                return True
            if s.mission_progress_wall >= restored:
                return True
            if s.mission_current_wall >= restored and not first_fresh:
                first_fresh.append(time.time())
            return bool(first_fresh) and time.time() - first_fresh[0] >= quiet

        fresh = await self.link.wait_for(settled, self.cfg.resume_settle_s)
        await asyncio.sleep(0.3)
        st = self.st
        self._event(
            "link_restored",
            f"link back after {outage:.1f} s: mode {st.flight_mode}, "
            f"{'in air' if st.in_air else 'on ground'}, vehicle mission item {st.mission_current} "
            f"(MAVLink seq {st.raw_mission_seq}/{st.raw_mission_count})"
            + ("" if fresh else f"; no fresh mission progress within {self.cfg.resume_settle_s:.0f} s"),
            outage_s=outage,
            mode=st.flight_mode,
            vehicle_item=st.mission_current,
            vehicle_seq=st.raw_mission_seq,
            fresh=fresh,
        )
        if self.phase != "mission" or self.holding:
            return None
        self._outage_note = " (during the link loss)"
        try:
            done = self._track_progress()
        finally:
            self._outage_note = ""
        spec = self.spec
        if not done and spec is not None and st.mission_state == 5 and st.mission_current_wall >= restored:
            # an autopilot that fills mission_state (PX4 1.16 does not: always 0) says it finished
            last = len(self.sortie.waypoints) - 1
            while self.reached_index < last:
                self.reached_index += 1
                self.reached.append(self.reached_index)
                self._event("item_reached", f"waypoint {self.reached_index + 1}/{len(self.sortie.waypoints)} "
                            "(during the link loss)", item=self.reached_index, total=len(self.sortie.waypoints))
            done = True
        if done:
            # it finished the mission while we could not hear it
            self.mission_done = True
            self.phase = "returning"
            self.expected_modes = {"MISSION", "RETURN_TO_LAUNCH", "LAND", "HOLD"}
            self._event("mission_complete", "the vehicle finished the mission during the link loss")
            return None
        if st.flight_mode == "MISSION" and st.in_air:
            self._event("resumed", "vehicle kept flying the mission during the outage; continuing",
                        from_index=self.reached_index)
            return None
        if math.isfinite(st.battery_pct) and st.battery_pct <= self.cfg.low_battery_pct:
            self.interrupt_reason = "low battery"
            return None  # the monitor's low-battery rule takes it from here
        if st.in_air and st.flight_mode == "HOLD":
            try:
                await self.link.start_mission()
                await self.link.wait_for(lambda s: s.flight_mode == "MISSION", 5.0)
                self.resumes += 1
                self._event("resumed", "vehicle was holding; mission continued", from_index=self.reached_index)
            except LinkError as e:
                self._event("resume_failed", str(e))
            return None
        # the autopilot returned (or landed) by failsafe: re-upload the rest and resume
        await self._reupload_and_continue(f"autopilot left the mission ({st.flight_mode}) during the link loss")
        return None

    async def _reupload_and_continue(self, why: str) -> None:
        idx = self.resume_index
        self._event("resume_planned", f"{why}: re-uploading waypoints from #{idx}", from_index=idx)
        self.expected_modes = {"MISSION", "RETURN_TO_LAUNCH", "LAND", "HOLD"}
        if not self.st.in_air:
            # it landed: wait for disarm, then fly again (same battery)
            await self.link.wait_for(lambda s: not s.armed, self.cfg.landed_disarm_s)
            self.took_off = False
        await self.upload(idx, fence=False)
        self.reached_index = idx - 1 if idx > 0 else -1
        # the resume waypoint itself counts as reached already (it was): keep it
        self.reached_index = max(self.reached_index, idx - 1)
        await self._arm_and_start()
        self.phase = "mission"
        self.resumes += 1
        self._event("resumed", f"mission continued from waypoint #{idx}", from_index=idx)
