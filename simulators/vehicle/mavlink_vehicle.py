"""The MAVLink adapter: one simulated PX4-like multicopter on UDP, in its own thread.

Ports follow PX4 SITL: vehicle ``i`` listens on ``14580 + i`` and sends to ``14540 + i``
where MAVSDK listens (``udpin://0.0.0.0:14540``); it also answers any address that
writes to it (so QGroundControl or a second client can connect) and can send to extra
ground stations (``extra_gcs``, e.g. QGC's 14550). System id is ``instance + 1`` as in
PX4 multi-vehicle SITL.

Time: a ``speed_factor`` of 10 runs 10 sim seconds per wall second; physics steps in
fixed sim slices; every timestamp sent (``time_boot_ms``, ``time_usec``) is sim time.
Stream rates are set in sim-time Hz (PX4-like defaults, changeable with
SET_MESSAGE_INTERVAL) but each is capped at ``stream_cap_hz`` *wall* Hz: at 20x a
10 Hz position stream would be 200 messages/s, which MAVSDK's callback queue does not
keep up with, so at high speed the streams are thinned (``stream_cap_hz`` 25 by default)
rather than flooding the client.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from pymavlink.dialects.v20 import common as mavlink

from simulators.vehicle.autopilot import (
    ACCEPTED,
    DEFAULT_PARAMS,
    DENIED,
    TEMPORARILY_REJECTED,
    UNSUPPORTED,
    Autopilot,
    VehicleState,
)
from simulators.vehicle.faults import Faults
from simulators.vehicle.mission_store import MissionStore
from simulators.vehicle.physics import PhysicsParams

log = logging.getLogger(__name__)

PX4_VERSION = (1 << 24) | (16 << 16) | (0 << 8) | 255  # 1.16.0 official
CAPABILITIES = (
    mavlink.MAV_PROTOCOL_CAPABILITY_MISSION_FLOAT
    | mavlink.MAV_PROTOCOL_CAPABILITY_PARAM_FLOAT
    | mavlink.MAV_PROTOCOL_CAPABILITY_MISSION_INT
    | mavlink.MAV_PROTOCOL_CAPABILITY_COMMAND_INT
    | mavlink.MAV_PROTOCOL_CAPABILITY_PARAM_ENCODE_BYTEWISE
    | mavlink.MAV_PROTOCOL_CAPABILITY_MAVLINK2
    | mavlink.MAV_PROTOCOL_CAPABILITY_MISSION_FENCE
    | mavlink.MAV_PROTOCOL_CAPABILITY_MISSION_RALLY
)
# Sensors PX4 SITL reports present/enabled/healthy in SYS_STATUS.
S = mavlink
SENSORS = (
    S.MAV_SYS_STATUS_SENSOR_3D_GYRO | S.MAV_SYS_STATUS_SENSOR_3D_ACCEL | S.MAV_SYS_STATUS_SENSOR_3D_MAG
    | S.MAV_SYS_STATUS_SENSOR_ABSOLUTE_PRESSURE | S.MAV_SYS_STATUS_SENSOR_GPS
    | S.MAV_SYS_STATUS_SENSOR_ANGULAR_RATE_CONTROL | S.MAV_SYS_STATUS_SENSOR_ATTITUDE_STABILIZATION
    | S.MAV_SYS_STATUS_SENSOR_YAW_POSITION | S.MAV_SYS_STATUS_SENSOR_Z_ALTITUDE_CONTROL
    | S.MAV_SYS_STATUS_SENSOR_XY_POSITION_CONTROL | S.MAV_SYS_STATUS_SENSOR_MOTOR_OUTPUTS
    | S.MAV_SYS_STATUS_AHRS | S.MAV_SYS_STATUS_SENSOR_BATTERY | S.MAV_SYS_STATUS_PREARM_CHECK
)
# Camera/gimbal commands sent to the autopilot itself: PX4's camera-trigger and gimbal
# drivers accept them; nothing is photographed here (the synthetic camera is elsewhere).
CAMERA_COMMANDS = {203, 205, 206, 214, 1000, 1001, 2000, 2001}

# msg id -> (sim Hz default, wall cap applies)
DEFAULT_STREAMS: dict[int, float] = {
    mavlink.MAVLINK_MSG_ID_HEARTBEAT: 1.0,
    mavlink.MAVLINK_MSG_ID_SYS_STATUS: 1.0,
    mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT: 10.0,
    mavlink.MAVLINK_MSG_ID_LOCAL_POSITION_NED: 5.0,
    mavlink.MAVLINK_MSG_ID_ATTITUDE: 10.0,
    mavlink.MAVLINK_MSG_ID_GPS_RAW_INT: 2.0,
    mavlink.MAVLINK_MSG_ID_BATTERY_STATUS: 1.0,
    mavlink.MAVLINK_MSG_ID_EXTENDED_SYS_STATE: 2.0,
    mavlink.MAVLINK_MSG_ID_HOME_POSITION: 0.5,
    mavlink.MAVLINK_MSG_ID_MISSION_CURRENT: 1.0,
    mavlink.MAVLINK_MSG_ID_VFR_HUD: 2.0,
    mavlink.MAVLINK_MSG_ID_ALTITUDE: 2.0,
    mavlink.MAVLINK_MSG_ID_SYSTEM_TIME: 0.5,
    mavlink.MAVLINK_MSG_ID_HIGHRES_IMU: 0.0,  # on request (MAVSDK set_rate_imu)
}
# Streams whose content changes quickly get the full wall cap; the others a lower one, so
# that at 10-20x the link is not flooded with slowly changing status messages.
# ``px4_rates=True``: sim Hz chosen so that the total (~440 messages per sim second, ~4,400/s
# at 10x) matches what PX4 v1.16 SITL sends on its onboard link; not capped in wall Hz.
PX4_STREAMS: dict[int, float] = {
    **DEFAULT_STREAMS,
    mavlink.MAVLINK_MSG_ID_SYS_STATUS: 5.0,
    mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT: 50.0,
    mavlink.MAVLINK_MSG_ID_LOCAL_POSITION_NED: 50.0,
    mavlink.MAVLINK_MSG_ID_ATTITUDE: 150.0,
    mavlink.MAVLINK_MSG_ID_HIGHRES_IMU: 120.0,
    mavlink.MAVLINK_MSG_ID_GPS_RAW_INT: 10.0,
    mavlink.MAVLINK_MSG_ID_BATTERY_STATUS: 5.0,
    mavlink.MAVLINK_MSG_ID_EXTENDED_SYS_STATE: 5.0,
    mavlink.MAVLINK_MSG_ID_VFR_HUD: 20.0,
    mavlink.MAVLINK_MSG_ID_ALTITUDE: 20.0,
    mavlink.MAVLINK_MSG_ID_SYSTEM_TIME: 1.0,
}

FAST_STREAMS = {
    mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT, mavlink.MAVLINK_MSG_ID_LOCAL_POSITION_NED,
    mavlink.MAVLINK_MSG_ID_ATTITUDE, mavlink.MAVLINK_MSG_ID_HIGHRES_IMU,
}


@dataclass
class VehicleConfig:
    """How to build one simulated vehicle. Degrees WGS-84, metres, m/s, seconds.

    ``gcs_port`` defaults to ``14540 + instance`` (where MAVSDK listens) and
    ``listen_port`` to ``14580 + instance`` (PX4 SITL's ports). ``speed_factor`` is sim
    seconds per wall second. ``datalink_loss_rtl_s``: return to launch after that many
    sim seconds without a ground-station heartbeat (PX4 NAV_DLL_ACT=2, COM_DL_LOSS_T);
    None (default) disables the data-link failsafe so tests stay deterministic.
    ``params`` overrides any PX4 parameter by name.
    ``mission_start_refusal_s``: sim seconds after a mission upload during which a switch to
    Mission is acked ACCEPTED, then TEMPORARILY_REJECTED with "Switching to Mission is
    currently not available" (PX4 v1.16 behaviour; 0 turns it off).
    ``geofence_action``: PX4 GF_ACTION, default "hold" as PX4 ("rtl" returns instead).
    ``px4_rates``: stream at PX4-like rates (``PX4_STREAMS``, ~4,400 messages/s at 10x)
    without the wall-Hz caps; off by default.
    """

    instance: int = 0
    home_lat: float = 30.0870
    home_lon: float = 120.4950
    home_alt_amsl: float = 0.0
    speed_factor: float = 1.0
    gcs_host: str = "127.0.0.1"
    gcs_port: int | None = None
    listen_host: str = "0.0.0.0"
    listen_port: int | None = None
    extra_gcs: list[tuple[str, int]] = field(default_factory=list)
    system_id: int | None = None  # default instance + 1
    max_speed_m_s: float = 15.0
    max_accel_m_s2: float = 4.0
    max_climb_m_s: float = 3.0
    max_descent_m_s: float = 1.5
    land_descent_m_s: float = 0.7
    max_yaw_rate_deg_s: float = 60.0
    cruise_speed_m_s: float = 10.0
    wind_east_m_s: float = 0.0
    wind_north_m_s: float = 0.0
    acceptance_radius_m: float = 2.0
    takeoff_alt_m: float = 2.5
    rtl_alt_m: float = 60.0
    gps_noise_m: float = 0.0
    battery_pct: float = 100.0
    battery_drain_scale: float = 1.0  # multiply all drain terms (short tests)
    critical_battery_pct: float = 7.0
    datalink_loss_rtl_s: float | None = None
    geofence_action: str = "hold"  # none | warn | hold | rtl | land (PX4 GF_ACTION, default hold)
    mission_start_refusal_s: float = 1.0  # sim s after an upload in which a Mission start is refused
    px4_rates: bool = False  # PX4-like message rates (thousands of msg/s at 10x), no wall-Hz cap
    stream_cap_hz: float = 25.0  # wall Hz cap for position/attitude streams
    slow_stream_cap_hz: float = 5.0  # wall Hz cap for status streams (SYS_STATUS, BATTERY_STATUS, ...)
    tick_s: float = 0.02  # wall seconds between loop iterations
    physics_dt_s: float = 0.05  # sim seconds per physics slice
    params: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.gcs_port is None:
            self.gcs_port = 14540 + self.instance
        if self.listen_port is None:
            self.listen_port = 14580 + self.instance
        if self.system_id is None:
            self.system_id = self.instance + 1
        if not self.speed_factor > 0:
            raise ValueError(f"VehicleConfig.speed_factor must be > 0, got {self.speed_factor}")
        if self.geofence_action not in ("none", "warn", "hold", "rtl", "land"):
            raise ValueError(f"VehicleConfig.geofence_action: unknown {self.geofence_action!r}")
        if not (-90 <= self.home_lat <= 90 and -180 <= self.home_lon <= 180):
            raise ValueError(f"VehicleConfig home out of range: {self.home_lat}, {self.home_lon}")

    def physics(self) -> PhysicsParams:
        base = PhysicsParams()
        k = self.battery_drain_scale
        return PhysicsParams(
            max_speed_m_s=self.max_speed_m_s, max_accel_m_s2=self.max_accel_m_s2,
            max_climb_m_s=self.max_climb_m_s, max_descent_m_s=self.max_descent_m_s,
            land_descent_m_s=self.land_descent_m_s, max_yaw_rate_deg_s=self.max_yaw_rate_deg_s,
            wind_east_m_s=self.wind_east_m_s, wind_north_m_s=self.wind_north_m_s,
            drain_hover_pct_s=base.drain_hover_pct_s * k, drain_speed_pct_per_m=base.drain_speed_pct_per_m * k,
            drain_climb_pct_per_m=base.drain_climb_pct_per_m * k,
        )

    def px4_params(self) -> dict[str, float]:
        p: dict[str, float] = {
            "MIS_TAKEOFF_ALT": self.takeoff_alt_m,
            "NAV_ACC_RAD": self.acceptance_radius_m,
            "RTL_RETURN_ALT": self.rtl_alt_m,
            "MPC_XY_CRUISE": self.cruise_speed_m_s,
            "BAT_CRIT_THR": self.critical_battery_pct / 100.0,
            "BAT_EMERGEN_THR": min(DEFAULT_PARAMS["BAT_EMERGEN_THR"][0], self.critical_battery_pct / 200.0),
            "BAT_LOW_THR": max(DEFAULT_PARAMS["BAT_LOW_THR"][0], self.critical_battery_pct / 100.0 + 0.05),
            "GF_ACTION": {"none": 0, "warn": 1, "hold": 2, "rtl": 3, "land": 5}[self.geofence_action],
            "MAV_SYS_ID": self.system_id,
        }
        if self.datalink_loss_rtl_s is not None:
            p["NAV_DLL_ACT"] = 2
            p["COM_DL_LOSS_T"] = self.datalink_loss_rtl_s
        p.update(self.params)
        return p


@dataclass
class LinkStats:
    """Counters for the bench and the README's handled/unhandled list."""

    sent: Counter = field(default_factory=Counter)
    received: Counter = field(default_factory=Counter)
    unhandled: Counter = field(default_factory=Counter)
    commands: Counter = field(default_factory=Counter)
    dropped: int = 0


def _i(x: float) -> int:
    """A command parameter as int; NaN (MAVSDK's "unset") becomes 0."""
    return int(x) if math.isfinite(x) else 0


def _param_float(value: float, is_int: bool) -> float:
    """PX4 sends INT32 parameters bytewise inside the float field."""
    if is_int:
        return struct.unpack("<f", struct.pack("<i", int(value)))[0]
    return float(value)


def _param_from_wire(value: float, is_int: bool) -> float:
    if is_int:
        return float(struct.unpack("<i", struct.pack("<f", value))[0])
    return float(value)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, vehicle: SimVehicle) -> None:
        self.vehicle = vehicle

    def datagram_received(self, data: bytes, addr) -> None:  # noqa: ANN001
        self.vehicle._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable while no GCS listens
        pass


class SimVehicle:
    """One simulated vehicle. ``start()`` runs it in a background thread; ``stop()`` ends it.

    ``faults`` is the fault API (:class:`Faults`); ``state`` the true pose
    (:class:`VehicleState`); ``stats`` message counters.
    """

    def __init__(self, config: VehicleConfig) -> None:
        self.config = config
        self.faults = Faults()
        self.stats = LinkStats()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_evt: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._state: VehicleState | None = None
        self.ap: Autopilot | None = None
        self.sim_time_s = 0.0
        self._deferred: list | None = None

    # --- public ---------------------------------------------------------------------
    @property
    def state(self) -> VehicleState:
        if self._state is None:
            raise RuntimeError("SimVehicle.state: vehicle not started")
        return self._state

    @property
    def connection_url(self) -> str:
        """The MAVSDK URL a client uses for this vehicle."""
        return f"udpin://0.0.0.0:{self.config.gcs_port}"

    def start(self, timeout_s: float = 10.0) -> SimVehicle:
        """Start the vehicle thread; returns once the first HEARTBEAT went out."""
        if self._thread is not None:
            raise RuntimeError("SimVehicle.start: already started")
        self._thread = threading.Thread(target=self._thread_main, name=f"simvehicle-{self.config.instance}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"simulated vehicle {self.config.instance} did not start within {timeout_s} s")
        if self._error is not None:
            self._thread = None
            where = f"udp {self.config.listen_host}:{self.config.listen_port}"
            if isinstance(self._error, OSError):
                raise OSError(self._error.errno, f"simulated vehicle {self.config.instance} cannot listen on {where}: "
                                                 f"{self._error.strerror or self._error}") from self._error
            raise RuntimeError(f"simulated vehicle {self.config.instance} failed to start: {self._error}") from self._error
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop_evt is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop_evt.set)
        self._thread.join(timeout_s)
        self._thread = None

    def __enter__(self) -> SimVehicle:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def call(self, fn, timeout_s: float = 5.0):
        """Run ``fn(autopilot)`` inside the vehicle thread and return its result (e.g. to set params)."""
        if self._loop is None:
            raise RuntimeError("SimVehicle.call: vehicle not started")
        fut: asyncio.Future = asyncio.run_coroutine_threadsafe(self._call(fn), self._loop)
        return fut.result(timeout_s)

    async def _call(self, fn):
        return fn(self.ap)

    # --- thread / loop --------------------------------------------------------------
    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as e:  # surfaced to start()
            self._error = e
            log.exception("simulated vehicle %s crashed", self.config.instance)
        finally:
            self._ready.set()
            loop.close()

    async def _main(self) -> None:
        cfg = self.config
        self._stop_evt = asyncio.Event()
        self.enc = mavlink.MAVLink(None, srcSystem=cfg.system_id, srcComponent=1)
        self.enc.robust_parsing = True
        self.dec = mavlink.MAVLink(None, srcSystem=cfg.system_id, srcComponent=1)
        self.dec.robust_parsing = True
        self.ap = Autopilot(cfg.home_lat, cfg.home_lon, cfg.home_alt_amsl, cfg.physics(), cfg.px4_params(),
                            gps_noise_m=cfg.gps_noise_m, seed=cfg.seed + cfg.instance,
                            start_refusal_s=cfg.mission_start_refusal_s)
        self.ap.body.battery_pct = cfg.battery_pct
        self.param_types = {k: is_int for k, (_, is_int) in DEFAULT_PARAMS.items()}
        self.store = MissionStore(self.enc, validator=self.ap.validate, on_change=self._on_list_change)
        self.store.reject_next = self.faults.take_reject
        self.peers: list[tuple[str, int]] = [(cfg.gcs_host, cfg.gcs_port), *cfg.extra_gcs]
        self.rates: dict[int, float] = dict(PX4_STREAMS if cfg.px4_rates else DEFAULT_STREAMS)
        self._cmd_ctx: tuple | None = None  # (message, command) being answered, for a late second ack
        self._next_due: dict[int, float] = {}
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(cfg.listen_host, cfg.listen_port))
        try:
            self._state = self.ap.snapshot()
            self._send(self._heartbeat())
            hb_hz = max(1.0, min(self.rates[mavlink.MAVLINK_MSG_ID_HEARTBEAT] * cfg.speed_factor, 5.0))
            self._next_due[mavlink.MAVLINK_MSG_ID_HEARTBEAT] = time.monotonic() + 1.0 / hb_hz
            self._ready.set()
            await self._run()
        finally:
            self.transport.close()

    async def _run(self) -> None:
        cfg = self.config
        last = time.monotonic()
        carry = 0.0
        while not self._stop_evt.is_set():
            try:
                await asyncio.wait_for(self._stop_evt.wait(), cfg.tick_s)
                break
            except TimeoutError:
                pass
            now = time.monotonic()
            carry += min(now - last, 1.0) * cfg.speed_factor
            last = now
            snap = self.faults.take()
            first = True
            while carry >= cfg.physics_dt_s:
                self.ap.step(cfg.physics_dt_s, gps_lost=snap.gps_lost, breach=snap.geofence_breach and first,
                             battery_pct=snap.battery_override_pct if first else None)
                first = False
                carry -= cfg.physics_dt_s
            self.sim_time_s = self.ap.t
            self._flush_outbox()
            for m in self.store.poll(now):
                self._send(m)
            self._stream(now)
            self._state = self.ap.snapshot()

    # --- send -----------------------------------------------------------------------
    def _send(self, msg) -> None:
        if self._deferred is not None:
            self._deferred.append(msg)
            return
        if self.faults.link_down:
            self.stats.dropped += 1
            return
        buf = msg.pack(self.enc)
        for peer in self.peers:
            try:
                self.transport.sendto(buf, peer)
            except OSError:
                pass
        self.stats.sent[msg.get_type()] += 1

    def _flush_outbox(self) -> None:
        out, self.ap.outbox = self.ap.outbox, []
        for ev in out:
            if ev[0] == "text":
                self._send(self.enc.statustext_encode(ev[1], ev[2].encode()[:50]))
            elif ev[0] == "late_ack":
                if self._cmd_ctx is not None:
                    self._ack(self._cmd_ctx[0], self._cmd_ctx[1], ev[1])
            elif ev[0] == "reached":
                self._send(self.enc.mission_item_reached_encode(ev[1]))
            elif ev[0] == "current":
                self._send(self._mission_current())
        if self.store.last_statustext:
            self._send(self.enc.statustext_encode(4, (self.store.last_statustext + "\t").encode()[:50]))
            self.store.last_statustext = None

    def _stream(self, now: float) -> None:
        cfg = self.config
        for msg_id, hz in self.rates.items():
            if hz <= 0:
                continue
            wall_hz = hz * cfg.speed_factor
            if msg_id == mavlink.MAVLINK_MSG_ID_HEARTBEAT:
                wall_hz = max(1.0, min(wall_hz, 5.0))
            elif cfg.px4_rates:
                due = self._next_due.get(msg_id, 0.0)
                if now >= due:  # every period that elapsed since the last tick (bounded)
                    n = min(int((now - due) * wall_hz) + 1, 100) if due else 1
                    msg = self._build(msg_id)
                    for _ in range(n if msg is not None else 0):
                        self._send(msg)
                    self._next_due[msg_id] = max(due + n / wall_hz, now - 0.1) if due else now + 1.0 / wall_hz
                continue
            elif msg_id in FAST_STREAMS:
                wall_hz = min(wall_hz, cfg.stream_cap_hz)
            else:
                wall_hz = min(wall_hz, cfg.slow_stream_cap_hz, cfg.stream_cap_hz)
            due = self._next_due.get(msg_id, 0.0)
            if now >= due:
                msg = self._build(msg_id)
                if msg is not None:
                    self._send(msg)
                self._next_due[msg_id] = max(due + 1.0 / wall_hz, now) if due else now + 1.0 / wall_hz

    # --- message builders -----------------------------------------------------------
    def _time_boot_ms(self) -> int:
        return int(self.ap.t * 1000) & 0xFFFFFFFF

    def _heartbeat(self):
        ap = self.ap
        base = mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
        if ap.mode in ("MISSION", "RTL", "LAND", "TAKEOFF", "HOLD"):
            base |= mavlink.MAV_MODE_FLAG_AUTO_ENABLED | mavlink.MAV_MODE_FLAG_GUIDED_ENABLED | mavlink.MAV_MODE_FLAG_STABILIZE_ENABLED
        else:
            base |= mavlink.MAV_MODE_FLAG_MANUAL_INPUT_ENABLED | mavlink.MAV_MODE_FLAG_STABILIZE_ENABLED
        if ap.armed:
            base |= mavlink.MAV_MODE_FLAG_SAFETY_ARMED
        status = mavlink.MAV_STATE_ACTIVE if ap.armed else mavlink.MAV_STATE_STANDBY
        if ap._failsafe & {"gps", "bat_crit", "bat_emerg", "dll", "fence"}:
            status = mavlink.MAV_STATE_CRITICAL if ap.armed else status
        return self.enc.heartbeat_encode(mavlink.MAV_TYPE_QUADROTOR, mavlink.MAV_AUTOPILOT_PX4, base,
                                         ap.custom_mode, status, 3)

    def _mission_current(self):
        ap = self.ap
        return self.enc.mission_current_encode(ap.seq, len(ap.mission), ap.mission_state, 1 if ap.mode == "MISSION" else 0)

    def _home(self):
        ap = self.ap
        lat, lon = ap.to_wgs84(*ap.home_en)
        alt = getattr(ap, "home_alt_new", ap.home_alt)
        return self.enc.home_position_encode(int(lat * 1e7), int(lon * 1e7), int(alt * 1000),
                                             ap.home_en[1], ap.home_en[0], 0.0,
                                             [1.0, 0.0, 0.0, 0.0], 0.0, 0.0, 0.0, int(self.ap.t * 1e6))

    def _autopilot_version(self):
        uid = 0x5347_0000_0000 + self.config.system_id  # "SG" + system id
        return self.enc.autopilot_version_encode(
            CAPABILITIES, PX4_VERSION, 0, 0, 0, b"skygrid\0", b"\0" * 8, b"\0" * 8, 0x26AC, 0x10, uid, [0] * 18)

    def _build(self, msg_id: int):
        ap, b, enc = self.ap, self.ap.body, self.enc
        if msg_id == mavlink.MAVLINK_MSG_ID_HEARTBEAT:
            return self._heartbeat()
        if msg_id == mavlink.MAVLINK_MSG_ID_SYS_STATUS:
            health = SENSORS if ap.gps_ok else SENSORS & ~mavlink.MAV_SYS_STATUS_SENSOR_GPS & ~mavlink.MAV_SYS_STATUS_SENSOR_XY_POSITION_CONTROL
            if b.battery_pct <= ap.params["BAT_CRIT_THR"] * 100:
                health &= ~mavlink.MAV_SYS_STATUS_SENSOR_BATTERY
            return enc.sys_status_encode(SENSORS, SENSORS, health, 200, self._voltage_mv(), 1000 if ap.armed else 50,
                                         int(round(b.battery_pct)), 0, 0, 0, 0, 0, 0)
        if msg_id == mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT:
            if not ap.gps_ok:
                return None  # PX4 stops publishing a global position it cannot estimate
            lat, lon = ap.noisy_position()
            return enc.global_position_int_encode(
                self._time_boot_ms(), int(lat * 1e7), int(lon * 1e7), int((ap.home_alt + b.up) * 1000), int(b.up * 1000),
                int(b.v_north * 100), int(b.v_east * 100), int(-b.v_up * 100), int(b.yaw_deg * 100) % 36000)
        if msg_id == mavlink.MAVLINK_MSG_ID_LOCAL_POSITION_NED:
            return enc.local_position_ned_encode(self._time_boot_ms(), b.north, b.east, -b.up, b.v_north, b.v_east, -b.v_up)
        if msg_id == mavlink.MAVLINK_MSG_ID_ATTITUDE:
            yaw = math.radians(((b.yaw_deg + 180) % 360) - 180)
            return enc.attitude_encode(self._time_boot_ms(), ap.roll, ap.pitch, yaw, 0.0, 0.0, 0.0)
        if msg_id == mavlink.MAVLINK_MSG_ID_GPS_RAW_INT:
            lat, lon = ap.noisy_position()
            fix, sats = (3, 16) if ap.gps_ok else (1, 0)  # GPS_FIX_TYPE_NO_FIX: receiver up, no signal
            cog = int(math.degrees(math.atan2(b.v_east, b.v_north)) % 360 * 100) if b.ground_speed > 0.2 else 65535
            return enc.gps_raw_int_encode(int(ap.t * 1e6), fix, int(lat * 1e7) if ap.gps_ok else 0,
                                          int(lon * 1e7) if ap.gps_ok else 0, int((ap.home_alt + b.up) * 1000),
                                          70 if ap.gps_ok else 65535, 100 if ap.gps_ok else 65535,
                                          int(b.ground_speed * 100), cog, sats)
        if msg_id == mavlink.MAVLINK_MSG_ID_BATTERY_STATUS:
            mv = self._voltage_mv()
            return enc.battery_status_encode(0, mavlink.MAV_BATTERY_FUNCTION_ALL, mavlink.MAV_BATTERY_TYPE_LIPO, 2500,
                                             [mv // 4] * 4 + [65535] * 6, 1000 if ap.armed else 50, -1, -1,
                                             int(round(b.battery_pct)), 0, self._charge_state())
        if msg_id == mavlink.MAVLINK_MSG_ID_EXTENDED_SYS_STATE:
            return enc.extended_sys_state_encode(mavlink.MAV_VTOL_STATE_UNDEFINED, ap.landed_state)
        if msg_id == mavlink.MAVLINK_MSG_ID_HOME_POSITION:
            return self._home()
        if msg_id == mavlink.MAVLINK_MSG_ID_MISSION_CURRENT:
            return self._mission_current()
        if msg_id == mavlink.MAVLINK_MSG_ID_VFR_HUD:
            return enc.vfr_hud_encode(b.ground_speed, b.ground_speed, int(b.yaw_deg) % 360, 50 if ap.armed else 0,
                                      ap.home_alt + b.up, b.v_up)
        if msg_id == mavlink.MAVLINK_MSG_ID_AUTOPILOT_VERSION:
            return self._autopilot_version()
        if msg_id == mavlink.MAVLINK_MSG_ID_ALTITUDE:
            amsl = ap.home_alt + b.up
            return enc.altitude_encode(int(ap.t * 1e6), amsl, amsl, b.up, b.up, b.up, float("nan"))
        if msg_id == mavlink.MAVLINK_MSG_ID_HIGHRES_IMU:
            ax, ay = (b.v_north - ap.prev_body.v_north) / 0.05, (b.v_east - ap.prev_body.v_east) / 0.05
            return enc.highres_imu_encode(int(ap.t * 1e6), ax, ay, -9.81 - (b.v_up - ap.prev_body.v_up) / 0.05,
                                          0.0, 0.0, 0.0, 0.2, 0.0, 0.4, 1013.25, 0.0, b.up, 20.0, 0x1FFF)
        if msg_id == mavlink.MAVLINK_MSG_ID_SYSTEM_TIME:
            return enc.system_time_encode(int(time.time() * 1e6), self._time_boot_ms())
        return None

    def _voltage_mv(self) -> int:
        return int(4 * (3.5 + 0.7 * self.ap.body.battery_pct / 100.0) * 1000)  # 4S LiPo, 14.0..16.8 V

    def _charge_state(self) -> int:
        pct, p = self.ap.body.battery_pct, self.ap.params
        if pct <= p["BAT_EMERGEN_THR"] * 100:
            return mavlink.MAV_BATTERY_CHARGE_STATE_EMERGENCY
        if pct <= p["BAT_CRIT_THR"] * 100:
            return mavlink.MAV_BATTERY_CHARGE_STATE_CRITICAL
        if pct <= p["BAT_LOW_THR"] * 100:
            return mavlink.MAV_BATTERY_CHARGE_STATE_LOW
        return mavlink.MAV_BATTERY_CHARGE_STATE_OK

    # --- receive --------------------------------------------------------------------
    def _on_datagram(self, data: bytes, addr) -> None:  # noqa: ANN001
        if self.faults.link_down:
            self.stats.dropped += 1
            return
        if addr not in self.peers:
            self.peers.append(addr)  # answer whoever talks to us (QGC, a second client)
        try:
            msgs = self.dec.parse_buffer(data) or []
        except mavlink.MAVError:
            return
        # Replies wait until the state snapshot shows their effect, so a caller that got
        # its ack sees the new state at once.
        self._deferred = []
        try:
            self._handle_all(msgs)
        finally:
            deferred, self._deferred = self._deferred, None
            self._state = self.ap.snapshot()
            for m in deferred:
                self._send(m)

    def _handle_all(self, msgs: list) -> None:
        for msg in msgs:
            t = msg.get_type()
            if t == "BAD_DATA":
                continue
            self.stats.received[t] += 1
            try:
                self._handle(msg)
            except Exception:  # a malformed request must not kill the vehicle
                log.exception("vehicle %s: error handling %s", self.config.instance, t)

    def _for_us(self, msg) -> bool:
        ts = getattr(msg, "target_system", 0)
        tc = getattr(msg, "target_component", 0)
        return ts in (0, self.config.system_id) and tc in (0, 1)

    def _on_list_change(self, mtype: int) -> None:
        self.ap.set_list(mtype, self.store.lists[mtype])

    def _handle(self, msg) -> None:
        t = msg.get_type()
        now = time.monotonic()
        store = self.store
        if t == "HEARTBEAT":
            if msg.type != mavlink.MAV_TYPE_GCS and msg.autopilot != mavlink.MAV_AUTOPILOT_INVALID:
                return
            self.ap.gcs_heartbeat()
            return
        if t == "PING":
            if msg.target_system == 0:
                self._send(self.enc.ping_encode(msg.time_usec, msg.seq, msg.get_srcSystem(), msg.get_srcComponent()))
            return
        if t == "TIMESYNC":
            if msg.tc1 == 0:
                self._send(self.enc.timesync_encode(int(self.ap.t * 1e9), msg.ts1))
            return
        if not self._for_us(msg):
            return
        if t == "COMMAND_LONG":
            self._command(msg, msg.command, [msg.param1, msg.param2, msg.param3, msg.param4, msg.param5, msg.param6,
                                             msg.param7], frame=None)
        elif t == "COMMAND_INT":
            self._command(msg, msg.command, [msg.param1, msg.param2, msg.param3, msg.param4, msg.x / 1e7, msg.y / 1e7,
                                             msg.z], frame=msg.frame)
        elif t == "MISSION_COUNT":
            out = store.on_count(msg, now)
            for m in out:
                self._send(m)
            self._flush_outbox()
        elif t in ("MISSION_ITEM_INT", "MISSION_ITEM"):
            for m in store.on_item(msg, now, is_int=(t == "MISSION_ITEM_INT")):
                self._send(m)
            self._flush_outbox()
        elif t == "MISSION_REQUEST_LIST":
            for m in store.on_request_list(msg):
                self._send(m)
        elif t in ("MISSION_REQUEST_INT", "MISSION_REQUEST"):
            for m in store.on_request(msg, self.ap.seq):
                self._send(m)
        elif t == "MISSION_CLEAR_ALL":
            for m in store.on_clear_all(msg):
                self._send(m)
            self._flush_outbox()
        elif t == "MISSION_ACK":
            store.on_ack(msg)
        elif t == "MISSION_SET_CURRENT":
            if self.ap.set_current(msg.seq) != ACCEPTED:
                self._send(self.enc.statustext_encode(4, f"Mission item {msg.seq} out of range\t".encode()))
            self._flush_outbox()
            self._send(self._mission_current())
        elif t == "PARAM_REQUEST_LIST":
            names = sorted(self.ap.params)
            for i, name in enumerate(names):
                self._send(self._param_value(name, i, len(names)))
        elif t == "PARAM_REQUEST_READ":
            names = sorted(self.ap.params)
            name = msg.param_id.rstrip("\0") if msg.param_index < 0 else (
                names[msg.param_index] if msg.param_index < len(names) else None)
            if name in self.ap.params:
                self._send(self._param_value(name, names.index(name), len(names)))
        elif t == "PARAM_SET":
            name = msg.param_id.rstrip("\0")
            if name in self.ap.params:
                is_int = self.param_types.get(name, msg.param_type != mavlink.MAV_PARAM_TYPE_REAL32)
                self.ap.params[name] = _param_from_wire(msg.param_value, is_int)
                names = sorted(self.ap.params)
                self._send(self._param_value(name, names.index(name), len(names)))
            else:
                self._send(self.enc.statustext_encode(4, f"unknown param: {name}\t".encode()[:50]))
        elif t == "SET_MODE":
            main, sub = (msg.custom_mode >> 16) & 0xFF, (msg.custom_mode >> 24) & 0xFF
            self.ap.set_mode(main, sub)
            self._flush_outbox()
        else:
            self.stats.unhandled[t] += 1

    def _param_value(self, name: str, index: int, count: int):
        is_int = self.param_types.get(name, False)
        ptype = mavlink.MAV_PARAM_TYPE_INT32 if is_int else mavlink.MAV_PARAM_TYPE_REAL32
        return self.enc.param_value_encode(name.encode(), _param_float(self.ap.params[name], is_int), ptype, count, index)

    def _ack(self, msg, command: int, result: int) -> None:
        self._send(self.enc.command_ack_encode(command, result, 0, 0, msg.get_srcSystem(), msg.get_srcComponent()))

    def _command(self, msg, cmd: int, p: list[float], frame: int | None) -> None:
        self.stats.commands[cmd] += 1
        self._flush_outbox()  # earlier events go out before this command's acks
        self._cmd_ctx = (msg, cmd)
        try:
            self._command_inner(msg, cmd, p, frame)
        finally:
            self._cmd_ctx = None

    def _command_inner(self, msg, cmd: int, p: list[float], frame: int | None) -> None:
        ap = self.ap
        after = None
        if cmd == mavlink.MAV_CMD_REQUEST_MESSAGE:
            mid = _i(p[0])
            reply = self._build(mid) if mid != 300 else None  # 300 PROTOCOL_VERSION: not offered
            result = ACCEPTED if reply is not None else UNSUPPORTED
            if mid == mavlink.MAVLINK_MSG_ID_PARAM_VALUE:
                result = UNSUPPORTED
            after = reply
        elif cmd == mavlink.MAV_CMD_REQUEST_AUTOPILOT_CAPABILITIES:
            result, after = ACCEPTED, self._autopilot_version()
        elif cmd == mavlink.MAV_CMD_GET_HOME_POSITION:
            result, after = ACCEPTED, self._home()
        elif cmd == mavlink.MAV_CMD_SET_MESSAGE_INTERVAL:
            mid, interval_us = _i(p[0]), p[1]
            if mid in DEFAULT_STREAMS or self._build(mid) is not None:
                if interval_us < 0:
                    self.rates[mid] = 0.0
                elif interval_us == 0:
                    self.rates[mid] = DEFAULT_STREAMS.get(mid, 0.0)
                else:
                    self.rates[mid] = 1e6 / interval_us
                self._next_due.pop(mid, None)
                result = ACCEPTED
            else:
                result = UNSUPPORTED
        elif cmd == mavlink.MAV_CMD_GET_MESSAGE_INTERVAL:
            mid = _i(p[0])
            hz = self.rates.get(mid, 0.0)
            result = ACCEPTED
            after = self.enc.message_interval_encode(mid, int(1e6 / hz) if hz > 0 else -1)
        elif cmd == mavlink.MAV_CMD_COMPONENT_ARM_DISARM:
            result = ap.arm(p[0] >= 0.5, force=_i(p[1]) == 21196)
        elif cmd == mavlink.MAV_CMD_NAV_TAKEOFF:
            alt = p[6] - ap.home_alt if math.isfinite(p[6]) else None
            if frame in (3, 6) and math.isfinite(p[6]):
                alt = p[6]
            result = ap.takeoff(alt)
        elif cmd == mavlink.MAV_CMD_DO_SET_MODE:
            result = ap.set_mode(_i(p[1]), _i(p[2])) if _i(p[0]) & mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED else UNSUPPORTED
        elif cmd == mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            result = ap.set_mode(4, 5)
        elif cmd == mavlink.MAV_CMD_NAV_LAND:
            result = ap.set_mode(4, 6)
        elif cmd == mavlink.MAV_CMD_DO_PAUSE_CONTINUE:
            result = ap.pause() if _i(p[0]) == 0 else ap.start_mission()
        elif cmd == mavlink.MAV_CMD_MISSION_START:
            first = _i(p[0]) if math.isfinite(p[0]) and p[0] > 0 else None
            result = ap.start_mission(first)
        elif cmd == mavlink.MAV_CMD_DO_SET_MISSION_CURRENT:
            seq = _i(p[0]) if math.isfinite(p[0]) else -1
            result = ap.set_current(seq) if seq >= 0 else ACCEPTED
            if _i(p[1]) == 1 and result == ACCEPTED:
                ap.mission_running = False
            after = self._mission_current()
        elif cmd == mavlink.MAV_CMD_DO_REPOSITION:
            if frame in (3, 6):
                alt = ap.home_alt + p[6] if math.isfinite(p[6]) else None
            else:
                alt = p[6] if math.isfinite(p[6]) else None
            result = ap.reposition(p[4], p[5], alt, p[0] if math.isfinite(p[0]) else None)
        elif cmd == mavlink.MAV_CMD_DO_CHANGE_SPEED:
            result = ap.change_speed(p[1])
        elif cmd == mavlink.MAV_CMD_DO_SET_HOME:
            if _i(p[0]) == 1:
                lat, lon = ap.to_wgs84(ap.body.east, ap.body.north)
                ap.set_home(lat, lon, ap.home_alt + ap.body.up)
            else:
                ap.set_home(p[4], p[5], p[6])
            result, after = ACCEPTED, self._home()
        elif cmd in CAMERA_COMMANDS:
            result = ACCEPTED
        elif cmd in (mavlink.MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN, mavlink.MAV_CMD_DO_FLIGHTTERMINATION):
            result = DENIED
        else:
            result = UNSUPPORTED
            self.stats.unhandled[f"COMMAND {cmd}"] += 1
        self._ack(msg, cmd, result)
        if after is not None:
            self._send(after)
        self._flush_outbox()
        if result in (ACCEPTED, TEMPORARILY_REJECTED, DENIED):
            self._send(self._heartbeat())  # mode/arming changes show at once, as PX4 does


def start_fleet(
    n: int,
    home: tuple[float, float] | tuple[float, float, float],
    speed_factor: float = 1.0,
    base_port: int = 14540,
    listen_base_port: int | None = None,
    **config: object,
) -> list[SimVehicle]:
    """Start ``n`` vehicles at ``home`` (lat, lon[, alt AMSL]); vehicle i sends to
    ``base_port + i`` and listens on ``listen_base_port + i`` (default ``base_port + 40``,
    i.e. 14580 + i for the PX4 ports). Extra keyword arguments go to :class:`VehicleConfig`.
    Stops the ones already started if one fails."""
    if n < 1:
        raise ValueError(f"start_fleet: n must be >= 1, got {n}")
    lat, lon, *rest = home
    alt = float(rest[0]) if rest else 0.0
    listen_base = base_port + 40 if listen_base_port is None else listen_base_port
    fleet: list[SimVehicle] = []
    try:
        for i in range(n):
            cfg = VehicleConfig(instance=i, home_lat=lat, home_lon=lon, home_alt_amsl=alt, speed_factor=speed_factor,
                                gcs_port=base_port + i, listen_port=listen_base + i, **config)  # type: ignore[arg-type]
            fleet.append(SimVehicle(cfg).start())
    except BaseException:
        for v in fleet:
            v.stop()
        raise
    return fleet
