"""The MAVSDK adapter: one vehicle on one connection, over ``mavsdk.asyncio``.

Everything that touches mavsdk lives here (plus the converters from the pure
:mod:`flight.mission` steps). The executor talks to :class:`VehicleLink` only, so the
flying logic does not depend on which autopilot or simulator answers.

Each link owns its own ``Mavsdk`` instance: vehicles of a fleet often share system id
1 (PX4 SITL instances, our simulator), and separate instances keep them apart.

State is kept current by one task per telemetry subscription (MAVSDK 4 pitfalls
handled: ``is_connected_state()`` reports only changes, so the current value is asked
first; ``position()`` is NaN before the first fix, so positions come from the
subscription and NaN is skipped). Units: degrees, metres, m/s, percent (0-100).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flight.mission import FencePolygon, MissionStep

log = logging.getLogger("skygrid.flight.link")


class LinkError(RuntimeError):
    """A vehicle that cannot be reached or that refused a request."""


@dataclass
class VehicleState:
    """Latest values received from the vehicle (NaN / None until first heard)."""

    connected: bool = False
    lat: float = math.nan
    lon: float = math.nan
    abs_alt_m: float = math.nan
    rel_alt_m: float = math.nan
    roll_deg: float = 0.0
    pitch_deg: float = 0.0
    yaw_deg: float = 0.0
    #: vehicle time of the latest attitude sample (seconds since its boot)
    vehicle_time_s: float | None = None
    #: wall time (time.time()) when ``vehicle_time_s`` arrived
    vehicle_time_wall: float = 0.0
    vn_m_s: float = 0.0
    ve_m_s: float = 0.0
    vd_m_s: float = 0.0
    battery_pct: float = math.nan
    flight_mode: str = "UNKNOWN"
    armed: bool = False
    in_air: bool = False
    landed_state: str = "UNKNOWN"
    gps_fix: int = 0  # 0 none, 2 = 2D, 3 = 3D, ...
    satellites: int = 0
    global_position_ok: bool = False
    home_position_ok: bool = False
    armable: bool = False
    home_lat: float = math.nan
    home_lon: float = math.nan
    home_abs_alt_m: float = math.nan
    mission_current: int = -1
    mission_total: int = 0
    #: raw MISSION_CURRENT: MAVLink seq, MAVLink item count, MISSION_STATE
    #: (0 unknown, 1 none, 2 not started, 3 active, 4 paused, 5 complete)
    raw_mission_seq: int = -1
    raw_mission_count: int = 0
    mission_state: int = 0
    #: wall time of the latest MISSION_CURRENT
    mission_current_wall: float = 0.0
    #: raw MISSION_ITEM_REACHED: latest MAVLink seq heard (-1 none) and its wall time
    raw_reached_seq: int = -1
    raw_reached_wall: float = 0.0
    #: wall time of the latest mission progress message
    mission_progress_wall: float = 0.0
    last_heard_wall: float = 0.0
    status_texts: list[str] = field(default_factory=list)
    #: status texts heard since connect (``status_texts`` keeps only the last 20)
    status_count: int = 0

    def texts_since(self, count: int) -> list[str]:
        """Status texts heard after ``status_count`` was ``count`` (at most the last 20)."""
        new = self.status_count - count
        return self.status_texts[-new:] if new > 0 else []

    @property
    def ground_speed_m_s(self) -> float:
        return math.hypot(self.vn_m_s, self.ve_m_s)

    @property
    def has_position(self) -> bool:
        return math.isfinite(self.lat) and math.isfinite(self.lon)

    def speed_factor(self, prev: tuple[float, float] | None) -> float | None:
        """Vehicle seconds per wall second since ``prev`` = (vehicle_time_s, wall)."""
        if prev is None or self.vehicle_time_s is None:
            return None
        dw = self.vehicle_time_wall - prev[1]
        if dw <= 0.5:
            return None
        return (self.vehicle_time_s - prev[0]) / dw


# ---------------------------------------------------------------------------
# Converters between flight.mission and mavsdk types
# ---------------------------------------------------------------------------


def to_mavsdk_items(steps: Sequence[MissionStep]) -> list[Any]:
    """Mission steps -> ``mavsdk`` ``MissionItem`` list (NaN = "not set" for MAVSDK)."""
    from mavsdk.plugins.mission import MissionItem

    cam = MissionItem.CameraAction
    actions = {
        None: cam.NONE,
        "start_distance": cam.START_PHOTO_DISTANCE,
        "stop_distance": cam.STOP_PHOTO_DISTANCE,
        "photo": cam.TAKE_PHOTO,
        "start_interval": cam.START_PHOTO_INTERVAL,
        "stop_interval": cam.STOP_PHOTO_INTERVAL,
    }
    nan = math.nan
    out = []
    for s in steps:
        out.append(
            MissionItem(
                latitude_deg=s.lat,
                longitude_deg=s.lon,
                relative_altitude_m=s.rel_alt_m,
                speed_m_s=s.speed_m_s if s.speed_m_s is not None else nan,
                is_fly_through=s.fly_through,
                gimbal_pitch_deg=s.gimbal_pitch_deg if s.gimbal_pitch_deg is not None else nan,
                gimbal_yaw_deg=0.0 if s.gimbal_pitch_deg is not None else nan,
                camera_action=actions[s.camera],
                loiter_time_s=nan,
                camera_photo_interval_s=s.photo_interval_s if s.photo_interval_s else 1.0,
                acceptance_radius_m=s.acceptance_radius_m if s.acceptance_radius_m is not None else nan,
                yaw_deg=nan,
                camera_photo_distance_m=s.trigger_distance_m if s.trigger_distance_m else nan,
                vehicle_action=MissionItem.VehicleAction.NONE,
            )
        )
    return out


def to_mavsdk_geofence(polys: Sequence[FencePolygon]) -> Any:
    """Fence polygons -> ``mavsdk`` ``GeofenceData``."""
    from mavsdk.plugins.geofence import FenceType, GeofenceData, Point, Polygon

    out = []
    for p in polys:
        pts = [Point(latitude_deg=lat, longitude_deg=lon) for lat, lon in p.points]
        out.append(Polygon(points=pts, fence_type=FenceType.INCLUSION if p.inclusion else FenceType.EXCLUSION))
    return GeofenceData(polygons=out, circles=[])


def verify_download(steps: Sequence[MissionStep], downloaded: Sequence[Any], tol_deg: float = 2e-7) -> str | None:
    """Compare uploaded steps with downloaded ``MissionItem``s; None if they match, else why."""
    if len(downloaded) != len(steps):
        return f"vehicle holds {len(downloaded)} waypoints, {len(steps)} were uploaded"
    for i, (s, d) in enumerate(zip(steps, downloaded, strict=True)):
        if abs(d.latitude_deg - s.lat) > tol_deg or abs(d.longitude_deg - s.lon) > tol_deg:
            return (
                f"item {i}: vehicle holds ({d.latitude_deg:.7f}, {d.longitude_deg:.7f}), "
                f"uploaded ({s.lat:.7f}, {s.lon:.7f})"
            )
        if abs(d.relative_altitude_m - s.rel_alt_m) > 0.05:
            return f"item {i}: vehicle holds altitude {d.relative_altitude_m:.2f} m, uploaded {s.rel_alt_m:.2f} m"
        if s.speed_m_s is not None and math.isfinite(d.speed_m_s) and abs(d.speed_m_s - s.speed_m_s) > 0.05:
            return f"item {i}: vehicle holds speed {d.speed_m_s:.2f} m/s, uploaded {s.speed_m_s:.2f} m/s"
    return None


# ---------------------------------------------------------------------------
# The link
# ---------------------------------------------------------------------------


#: MAVSDK 4 logs this for every distance-trigger item although the distance is set
#: (its check is inverted in MissionImpl); harmless, so kept out of the warnings.
_MAVSDK_NOISE = ("No photo distance specified",)


def _mavsdk_log_filter(level: Any, message: str, file: str | None, line: int) -> bool:
    """Route MAVSDK's own log lines into Python logging (True = don't print them)."""
    lvl = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING}.get(int(level), logging.INFO)
    if message.startswith(_MAVSDK_NOISE):
        lvl = logging.DEBUG
    logging.getLogger("mavsdk").log(lvl, "%s", message)
    return True


_log_hooked = False


def _fields(m: Any) -> dict[str, Any] | None:
    """The fields of a ``mavlink_direct`` message as a dict (None if unreadable)."""
    try:
        f = json.loads(m.fields_json)
    except (ValueError, TypeError, AttributeError):
        return None
    return f if isinstance(f, dict) else None


def hook_mavsdk_logging() -> None:
    """Send MAVSDK's console chatter to the ``mavsdk`` Python logger (once per process)."""
    global _log_hooked
    if _log_hooked:
        return
    from mavsdk import log_subscribe

    log_subscribe(_mavsdk_log_filter)
    _log_hooked = True


class VehicleLink:
    """One vehicle, reached at ``url`` (``udpin://0.0.0.0:14540``, ``serial:///dev/ttyACM0:57600``...).

    ``on_change(kind)`` is called on the event loop when something the executor reacts
    to changes (``"connection"``, ``"progress"``, ``"mode"``, ``"armed"``, ``"in_air"``,
    ``"status"``), so it can wake up instead of polling.
    """

    def __init__(self, url: str, name: str = "vehicle") -> None:
        self.url = url
        self.name = name
        self.state = VehicleState()
        self._mavsdk: Any = None
        self._system: Any = None
        self._plugins: dict[str, Any] = {}
        self._tasks: list[asyncio.Task] = []
        self.changed = asyncio.Event()
        self._listeners: list[Callable[[str], None]] = []
        self.closed = False

    # -- lifecycle ------------------------------------------------------------------
    async def connect(self, timeout_s: float = 30.0) -> None:
        """Open the connection and wait until an autopilot is heard (raises LinkError)."""
        from mavsdk.asyncio import ComponentType, Configuration, Mavsdk, MavsdkConnectionError

        hook_mavsdk_logging()
        if self._mavsdk is None:
            config = Configuration.create_with_component_type(ComponentType.GROUND_STATION)
            self._mavsdk = Mavsdk(config)
            try:
                await self._mavsdk.add_any_connection(self.url)
            except MavsdkConnectionError as e:
                raise LinkError(f"{self.name}: cannot open {self.url}: {e}") from None
        system = await self._mavsdk.first_autopilot(timeout_s=timeout_s)
        if system is None:
            raise LinkError(f"{self.name}: no autopilot heard on {self.url} within {timeout_s:.0f} s")
        self._system = system
        self._make_plugins()
        self.state.connected = bool(await system.is_connected())
        self.state.last_heard_wall = time.time()
        self._start_subscriptions()

    def _make_plugins(self) -> None:
        from mavsdk.asyncio.plugins.action import ActionAsync
        from mavsdk.asyncio.plugins.geofence import GeofenceAsync
        from mavsdk.asyncio.plugins.mavlink_direct import MavlinkDirectAsync
        from mavsdk.asyncio.plugins.mission import MissionAsync
        from mavsdk.asyncio.plugins.telemetry import TelemetryAsync

        s = self._system
        self._plugins = {
            "telemetry": TelemetryAsync(s),
            "mission": MissionAsync(s),
            "action": ActionAsync(s),
            "geofence": GeofenceAsync(s),
            "direct": MavlinkDirectAsync(s),
        }

    async def close(self) -> None:
        """Stop the subscriptions and release the MAVSDK instance."""
        self.closed = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        plugins = list(self._plugins.values())
        self._plugins.clear()
        self._system = None
        m, self._mavsdk = self._mavsdk, None

        def teardown() -> None:
            # order matters to the native library: plugins, then the instance
            for p in plugins:
                with contextlib.suppress(Exception):
                    p.destroy()
            if m is not None:
                with contextlib.suppress(Exception):
                    m.destroy()

        await asyncio.get_running_loop().run_in_executor(None, teardown)

    def add_change_listener(self, fn: Callable[[str], None]) -> None:
        self._listeners.append(fn)

    def _notify(self, kind: str) -> None:
        self.changed.set()
        for fn in self._listeners:
            try:
                fn(kind)
            except Exception:  # a listener bug must not stop telemetry
                log.exception("change listener failed")

    # -- subscriptions --------------------------------------------------------------
    def _start_subscriptions(self) -> None:
        tel = self._plugins["telemetry"]
        mis = self._plugins["mission"]
        st = self.state

        def heard() -> None:
            st.last_heard_wall = time.time()

        def on_position(p: Any) -> None:
            if math.isfinite(p.latitude_deg) and math.isfinite(p.longitude_deg):
                st.lat, st.lon = p.latitude_deg, p.longitude_deg
                st.abs_alt_m, st.rel_alt_m = p.absolute_altitude_m, p.relative_altitude_m
            heard()

        def on_attitude(a: Any) -> None:
            st.roll_deg, st.pitch_deg = a.roll_deg, a.pitch_deg
            st.yaw_deg = a.yaw_deg % 360.0
            if a.timestamp_us:
                st.vehicle_time_s = a.timestamp_us / 1e6
                st.vehicle_time_wall = time.time()

        def on_velocity(v: Any) -> None:
            st.vn_m_s, st.ve_m_s, st.vd_m_s = v.north_m_s, v.east_m_s, v.down_m_s

        def on_battery(b: Any) -> None:
            if math.isfinite(b.remaining_percent):
                st.battery_pct = float(b.remaining_percent)  # MAVSDK 2+: 0-100

        def on_mode(m: Any) -> None:
            name = getattr(m, "name", str(m))
            if name != st.flight_mode:
                st.flight_mode = name
                self._notify("mode")

        def on_armed(a: bool) -> None:
            if bool(a) != st.armed:
                st.armed = bool(a)
                self._notify("armed")

        def on_in_air(a: bool) -> None:
            if bool(a) != st.in_air:
                st.in_air = bool(a)
                self._notify("in_air")

        def on_landed(s: Any) -> None:
            st.landed_state = getattr(s, "name", str(s))

        def on_gps(g: Any) -> None:
            st.gps_fix = int(g.fix_type)
            st.satellites = int(g.num_satellites)

        def on_health(h: Any) -> None:
            st.global_position_ok = bool(h.is_global_position_ok)
            st.home_position_ok = bool(h.is_home_position_ok)
            st.armable = bool(h.is_armable)

        def on_home(h: Any) -> None:
            if math.isfinite(h.latitude_deg):
                st.home_lat, st.home_lon, st.home_abs_alt_m = h.latitude_deg, h.longitude_deg, h.absolute_altitude_m

        def on_progress(p: Any) -> None:
            st.mission_current, st.mission_total = int(p.current), int(p.total)
            st.mission_progress_wall = time.time()
            self._notify("progress")

        def on_mission_current(m: Any) -> None:
            # MISSION_CURRENT's mission_state (MAVLink 2 extension, PX4 >= 1.14) tells a
            # mission that finished while the link was down from one that was interrupted
            f = _fields(m)
            if f is None:
                return
            st.raw_mission_seq = int(f.get("seq", -1))
            st.raw_mission_count = int(f.get("total", 0) or 0)
            st.mission_state = int(f.get("mission_state", 0) or 0)
            st.mission_current_wall = time.time()
            self._notify("progress")

        def on_item_reached(m: Any) -> None:
            # the raw seq, so progress is known without MAVSDK's own bookkeeping (which
            # reports only changes of its item index, and later than the raw message)
            f = _fields(m)
            if f is None:
                return
            st.raw_reached_seq = int(f.get("seq", -1))
            st.raw_reached_wall = time.time()
            self._notify("progress")

        def on_status(s: Any) -> None:
            st.status_texts.append(str(getattr(s, "text", s)))
            st.status_count += 1
            del st.status_texts[:-20]
            self._notify("status")

        subs: list[tuple[str, Callable[[], Any], Callable[[Any], None]]] = [
            ("position", tel.subscribe_position, on_position),
            ("attitude", tel.subscribe_attitude_euler, on_attitude),
            ("velocity", tel.subscribe_velocity_ned, on_velocity),
            ("battery", tel.subscribe_battery, on_battery),
            ("flight_mode", tel.subscribe_flight_mode, on_mode),
            ("armed", tel.subscribe_armed, on_armed),
            ("in_air", tel.subscribe_in_air, on_in_air),
            ("landed_state", tel.subscribe_landed_state, on_landed),
            ("gps", tel.subscribe_gps_info, on_gps),
            ("health", tel.subscribe_health, on_health),
            ("home", tel.subscribe_home, on_home),
            ("status_text", tel.subscribe_status_text, on_status),
            ("progress", mis.subscribe_mission_progress, on_progress),
            ("mission_current", lambda: self._plugins["direct"].subscribe_message("MISSION_CURRENT"),
             on_mission_current),
            ("mission_item_reached",
             lambda: self._plugins["direct"].subscribe_message("MISSION_ITEM_REACHED"), on_item_reached),
        ]
        for name, gen_fn, cb in subs:
            self._tasks.append(asyncio.create_task(self._pump(name, gen_fn, cb), name=f"{self.name}-{name}"))
        self._tasks.append(asyncio.create_task(self._watch_connection(), name=f"{self.name}-connection"))

    async def _pump(self, name: str, gen_fn: Callable[[], Any], cb: Callable[[Any], None]) -> None:
        # The generator is closed explicitly: its ``finally`` unsubscribes from the native
        # library, which must happen before the Mavsdk instance is destroyed (a cancelled
        # task alone leaves that to the garbage collector, and MAVSDK aborts the process).
        gen = gen_fn()
        try:
            async for value in gen:
                try:
                    cb(value)
                except Exception:
                    log.exception("%s: %s update failed", self.name, name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: %s subscription ended", self.name, name)
        finally:
            with contextlib.suppress(Exception):
                await gen.aclose()

    async def _watch_connection(self) -> None:
        """Track connection changes; ask ``is_connected()`` periodically as well, since the
        change stream reports only transitions after subscription."""
        sys_ = self._system

        async def stream() -> None:
            gen = sys_.is_connected_state()
            try:
                async for c in gen:
                    self._set_connected(bool(c))
            finally:
                with contextlib.suppress(Exception):
                    await gen.aclose()

        task = asyncio.create_task(stream())
        try:
            while True:
                await asyncio.sleep(0.5)
                if self._system is None:
                    break
                self._set_connected(bool(await sys_.is_connected()))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _set_connected(self, c: bool) -> None:
        if c != self.state.connected:
            self.state.connected = c
            if c:
                self.state.last_heard_wall = time.time()
            self._notify("connection")

    # -- waiting --------------------------------------------------------------------
    async def wait_for(self, pred: Callable[[VehicleState], bool], timeout_s: float, poll_s: float = 0.1) -> bool:
        """Wait until ``pred(state)`` is true; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            if pred(self.state):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(poll_s, left))

    # -- commands -------------------------------------------------------------------
    def _p(self, name: str) -> Any:
        if name not in self._plugins:
            raise LinkError(f"{self.name}: not connected")
        return self._plugins[name]

    async def _call(self, what: str, coro: Any, timeout_s: float = 30.0) -> Any:
        try:
            return await asyncio.wait_for(coro, timeout=timeout_s)
        except TimeoutError:
            raise LinkError(f"{self.name}: {what} timed out after {timeout_s:.0f} s") from None
        except LinkError:
            raise
        except Exception as e:  # MavsdkError subclasses carry the result code
            result = getattr(e, "result", None)
            raise LinkError(f"{self.name}: {what} failed: {getattr(result, 'name', result) or e}") from None

    async def upload_mission(self, steps: Sequence[MissionStep], rtl_after: bool = True, timeout_s: float = 60.0) -> None:
        from mavsdk.plugins.mission import MissionPlan

        mis = self._p("mission")
        await self._call("set RTL after mission", mis.set_return_to_launch_after_mission(rtl_after))
        await self._call("mission upload", mis.upload_mission(MissionPlan(to_mavsdk_items(steps))), timeout_s)

    async def download_mission(self, timeout_s: float = 60.0) -> tuple[list[Any], bool]:
        """Mission items on the vehicle and whether it returns to launch after them."""
        mis = self._p("mission")
        plan = await self._call("mission download", mis.download_mission(), timeout_s)
        rtl = await self._call("read RTL after mission", mis.get_return_to_launch_after_mission())
        return list(plan.mission_items), bool(rtl)

    async def upload_geofence(self, polys: Sequence[FencePolygon], timeout_s: float = 30.0) -> None:
        await self._call("geofence upload", self._p("geofence").upload_geofence(to_mavsdk_geofence(polys)), timeout_s)

    async def clear_geofence(self) -> None:
        await self._call("geofence clear", self._p("geofence").clear_geofence())

    async def arm(self) -> None:
        await self._call("arm", self._p("action").arm())

    async def disarm(self) -> None:
        await self._call("disarm", self._p("action").disarm())

    async def start_mission(self) -> None:
        await self._call("start mission", self._p("mission").start_mission())

    async def pause_mission(self) -> None:
        await self._call("pause mission (hold)", self._p("mission").pause_mission())

    async def hold(self) -> None:
        await self._call("hold", self._p("action").hold())

    async def return_to_launch(self) -> None:
        await self._call("return to launch", self._p("action").return_to_launch())

    async def land(self) -> None:
        await self._call("land", self._p("action").land())

    async def set_current_item(self, index: int) -> None:
        await self._call(f"set current mission item {index}", self._p("mission").set_current_mission_item(index))

    async def clear_mission(self) -> None:
        await self._call("clear mission", self._p("mission").clear_mission())
