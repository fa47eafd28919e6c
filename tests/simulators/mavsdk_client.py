"""Test helpers: an unmodified MAVSDK (``mavsdk.asyncio``) client for the simulators.

Nothing here knows which autopilot it talks to; the same helpers fly PX4 SITL in the
``px4`` suite.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from mavsdk import LogLevel, log_subscribe
from mavsdk.asyncio import ComponentType, Configuration, Mavsdk
from mavsdk.asyncio.plugins.action import ActionAsync
from mavsdk.asyncio.plugins.geofence import GeofenceAsync
from mavsdk.asyncio.plugins.mission import MissionAsync, MissionItem, MissionPlan
from mavsdk.asyncio.plugins.param import ParamAsync
from mavsdk.asyncio.plugins.telemetry import TelemetryAsync

from simulators.px4 import status_text_is

_quiet = False


def quiet_mavsdk() -> None:
    """Keep MAVSDK's debug/info log out of the test output (warnings and errors still show)."""
    global _quiet
    if not _quiet:
        log_subscribe(lambda level, msg, file, line: level < LogLevel.WARN)
        _quiet = True


@dataclass
class Client:
    system: object
    mission: MissionAsync
    action: ActionAsync
    telemetry: TelemetryAsync
    geofence: GeofenceAsync
    param: ParamAsync
    texts: list[str] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    progress: list[tuple[int, int]] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)

    def watch(self) -> None:
        """Record status texts, flight-mode changes and mission progress in the background."""

        async def texts() -> None:
            async for t in self.telemetry.subscribe_status_text():
                self.texts.append(t.text)

        async def modes() -> None:
            async for m in self.telemetry.subscribe_flight_mode():
                if not self.modes or self.modes[-1] != m.name:
                    self.modes.append(m.name)

        async def progress() -> None:
            async for p in self.mission.subscribe_mission_progress():
                self.progress.append((p.current, p.total))

        self.tasks += [asyncio.ensure_future(c()) for c in (texts, modes, progress)]


@asynccontextmanager
async def connect(url: str, timeout_s: float = 15.0) -> AsyncIterator[Client]:
    """Connect MAVSDK as a ground station on ``url`` (e.g. ``udpin://0.0.0.0:14540``)."""
    quiet_mavsdk()
    cfg = Configuration.create_with_component_type(ComponentType.GROUND_STATION)
    async with Mavsdk(cfg) as m:
        await m.add_any_connection(url)
        system = await m.first_autopilot(timeout_s=timeout_s)
        assert system is not None, f"no autopilot on {url} within {timeout_s} s"
        c = Client(system, MissionAsync(system), ActionAsync(system), TelemetryAsync(system), GeofenceAsync(system),
                   ParamAsync(system))
        try:
            yield c
        finally:
            for t in c.tasks:
                t.cancel()
            await asyncio.gather(*c.tasks, return_exceptions=True)
            for plugin in (c.mission, c.action, c.telemetry, c.geofence, c.param):
                plugin.destroy()


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """Small-offset lat/lon (spherical, fine for test geometry of a few hundred metres)."""
    return lat + north_m / 111_195.0, lon + east_m / (111_195.0 * math.cos(math.radians(lat)))


def survey_items(lat: float, lon: float, n: int = 40, spacing_m: float = 10.0, leg_m: float = 30.0,
                 alt_m: float = 15.0, speed_m_s: float = 10.0) -> list[MissionItem]:
    """A lawn-mower survey of ``n`` waypoints north-east of (lat, lon)."""
    items = []
    for i in range(n):
        north = (i // 2) * spacing_m + 10.0
        east = (0.0 if (i % 4) in (0, 3) else leg_m) + 10.0
        la, lo = offset(lat, lon, north, east)
        items.append(MissionItem(la, lo, alt_m, speed_m_s, True, float("nan"), float("nan"),
                                 MissionItem.CameraAction.NONE, float("nan"), float("nan"), float("nan"),
                                 float("nan"), float("nan"), MissionItem.VehicleAction.NONE))
    return items


def plan(items: list[MissionItem]) -> MissionPlan:
    return MissionPlan(items)


async def wait_for(pred: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.05) -> None:
    """Poll ``pred`` until true; fail naming ``what`` after ``timeout_s`` wall seconds."""
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(poll_s)


async def first(gen, pred: Callable[[object], bool], timeout_s: float, what: str):
    """The first item of an async generator matching ``pred``."""

    async def scan():
        async for x in gen:
            if pred(x):
                return x

    try:
        return await asyncio.wait_for(scan(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}") from None


async def fly_survey(c: Client, home_lat: float, home_lon: float, n: int = 40, timeout_s: float = 60.0,
                     **survey: float) -> list[MissionItem]:
    """The issue's scenario, asserted the same way for the simulator and for PX4 SITL:
    upload an ``n``-waypoint survey with RTL after the mission, download it back unchanged,
    arm, start; progress 0..n in order, MISSION then RETURN_TO_LAUNCH, landed, disarmed."""
    from mavsdk.asyncio.plugins.telemetry import LandedState

    c.watch()
    items = survey_items(home_lat, home_lon, n=n, **survey)
    await c.mission.set_return_to_launch_after_mission(True)
    await c.mission.upload_mission(plan(items))
    down = await c.mission.download_mission()
    assert len(down.mission_items) == n
    for a, b in zip(items, down.mission_items, strict=True):
        assert abs(a.latitude_deg - b.latitude_deg) < 1e-7 and abs(a.longitude_deg - b.longitude_deg) < 1e-7
        assert abs(a.relative_altitude_m - b.relative_altitude_m) < 0.01
        assert abs(a.speed_m_s - b.speed_m_s) < 0.01
    assert await c.mission.get_return_to_launch_after_mission() is True
    health = await first(c.telemetry.subscribe_health(),
                         lambda h: h.is_global_position_ok and h.is_home_position_ok and h.is_armable, 60,
                         "healthy, armable")
    assert health.is_armable
    await arm_and_start_mission(c)
    await wait_for(lambda: bool(c.progress) and c.progress[-1][0] == n, timeout_s, f"mission progress {n}/{n}")
    assert await c.mission.is_mission_finished()
    await first(c.telemetry.subscribe_landed_state(), lambda s: s == LandedState.ON_GROUND, timeout_s, "landed")
    await first(c.telemetry.subscribe_armed(), lambda a: a is False, timeout_s, "disarmed")
    await asyncio.sleep(0.3)
    currents = [p for p, _ in c.progress]
    assert currents == list(range(0, n + 1)), currents
    assert all(total == n for _, total in c.progress)
    assert "MISSION" in c.modes and "RETURN_TO_LAUNCH" in c.modes, c.modes
    assert c.modes.index("RETURN_TO_LAUNCH") > c.modes.index("MISSION"), c.modes
    # PX4 ends its texts with a tab and may send "Landing detected" after the disarm: compare loosely, wait a bit
    await wait_for(lambda: any(status_text_is(t, "Landing detected") for t in c.texts), 10, "'Landing detected'")
    return items


async def arm_and_start_mission(c: Client, tries: int = 6, confirm_s: float = 1.5) -> None:
    """Arm (again if needed) and start the mission, as a client must with PX4 v1.16: right
    after an upload PX4 acks the switch to Mission ACCEPTED, then TEMPORARILY_REJECTED
    ("Switching to Mission is currently not available"), and MAVSDK reports the first ack;
    so confirm MISSION mode within ``confirm_s`` wall seconds and retry, re-arming after
    PX4's auto-disarm on the ground."""
    for i in range(tries):
        if not await first(c.telemetry.subscribe_armed(), lambda a: True, 10, "armed state"):
            await c.action.arm()
        await c.mission.start_mission()
        try:
            await first(c.telemetry.subscribe_flight_mode(), lambda m: m.name == "MISSION", confirm_s, "MISSION mode")
            return
        except AssertionError:
            if i == tries - 1:
                raise


async def upload_after_refusal(c: Client, mission_plan: MissionPlan, tries: int = 30) -> None:
    """Upload right after a refused upload. MAVSDK 4.1 can answer BUSY for a moment while it
    closes the failed transfer (with PX4 too); a client retries, so do we."""
    from mavsdk.asyncio.plugins.mission import MissionError, MissionResult

    for i in range(tries):
        try:
            await c.mission.upload_mission(mission_plan)
            return
        except MissionError as e:
            if e.result != MissionResult.BUSY or i == tries - 1:
                raise
            await asyncio.sleep(0.1)
