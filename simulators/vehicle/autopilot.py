"""PX4-like flight logic (commander + navigator) for one simulated multicopter. No I/O.

The MAVLink adapter turns commands into calls here and turns the outbox (status texts,
mission progress) into messages. Modes and their PX4 custom-mode encoding
(``custom_mode = main << 16 | sub << 24``, see PX4 ``px4_custom_mode.h``):

=========  ====  ===  =====================================================
mode       main  sub  behaviour here
=========  ====  ===  =====================================================
POSCTL     3     0    hold position (what a manual mode does without sticks)
TAKEOFF    4     2    climb to MIS_TAKEOFF_ALT / commanded altitude, then HOLD
HOLD       4     3    AUTO.LOITER: hover at the entry point (or a reposition target)
MISSION    4     4    fly the uploaded mission from the current item
RTL        4     5    climb to RTL_RETURN_ALT, fly home, land, disarm
LAND       4     6    descend where it is, disarm
=========  ====  ===  =====================================================

Times are sim seconds. Parameters use PX4 names and defaults (see ``DEFAULT_PARAMS``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from shapely.geometry import LineString, Point, Polygon

from geo.projection import LocalFrame
from simulators.vehicle.mission_store import FENCE, MISSION, Item
from simulators.vehicle.physics import BodyState, PhysicsParams, Target, attitude_from_accel, step

PX4_MAIN = {"MANUAL": 1, "ALTCTL": 2, "POSCTL": 3, "AUTO": 4, "ACRO": 5, "OFFBOARD": 6, "STABILIZED": 7}
MODES: dict[str, tuple[int, int]] = {
    "POSCTL": (3, 0),
    "TAKEOFF": (4, 2),
    "HOLD": (4, 3),
    "MISSION": (4, 4),
    "RTL": (4, 5),
    "LAND": (4, 6),
}
MODE_BY_PAIR = {v: k for k, v in MODES.items()}

# MAV_RESULT values (kept here so the logic does not import the MAVLink dialect).
ACCEPTED, TEMPORARILY_REJECTED, DENIED, UNSUPPORTED, FAILED = 0, 1, 2, 3, 4
SEV_CRITICAL, SEV_WARNING, SEV_NOTICE, SEV_INFO = 2, 4, 5, 6
START_REFUSED_TEXT = "Switching to Mission is currently not available"

# name -> (default value, is_int). Floats are MAV_PARAM_TYPE_REAL32, ints INT32.
DEFAULT_PARAMS: dict[str, tuple[float, bool]] = {
    "MIS_TAKEOFF_ALT": (2.5, False),
    "NAV_ACC_RAD": (2.0, False),
    "NAV_MC_ALT_RAD": (0.8, False),
    "MPC_XY_CRUISE": (5.0, False),
    "MPC_XY_VEL_MAX": (12.0, False),
    "MPC_Z_VEL_MAX_UP": (3.0, False),
    "MPC_Z_VEL_MAX_DN": (1.5, False),
    "MPC_LAND_SPEED": (0.7, False),
    "MPC_LAND_ALT2": (5.0, False),
    "RTL_RETURN_ALT": (60.0, False),
    "RTL_DESCEND_ALT": (30.0, False),
    "RTL_LAND_DELAY": (0.0, False),
    "COM_DISARM_LAND": (2.0, False),
    "COM_DISARM_PRFLT": (10.0, False),  # auto-disarm when armed on the ground without take-off (PX4 default)
    "COM_DL_LOSS_T": (10, True),
    "NAV_DLL_ACT": (0, True),  # 0 off, 1 hold, 2 return, 3 land
    "COM_POS_FS_DELAY": (1, True),
    "COM_FAIL_ACT_T": (5.0, False),  # failsafe hold before the data-link action (PX4 default 5 s)
    "COM_LOW_BAT_ACT": (3, True),  # 3: return at critical, land at emergency
    "BAT_LOW_THR": (0.15, False),
    "BAT_CRIT_THR": (0.07, False),
    "BAT_EMERGEN_THR": (0.05, False),
    "GF_ACTION": (2, True),  # 0 none, 1 warn, 2 hold (PX4 default), 3 return, 5 land
    "MIS_DIST_1WP": (900.0, False),
    "MAV_SYS_ID": (1, True),
    "MAV_COMP_ID": (1, True),
    "MAV_TYPE": (2, True),
    "SYS_AUTOSTART": (1100, True),
    "SYS_HITL": (0, True),
    "CAL_ACC0_ID": (1310988, True),
    "CAL_GYRO0_ID": (1310988, True),
    "CAL_MAG0_ID": (197388, True),
}


@dataclass(frozen=True)
class VehicleState:
    """True pose and status of a simulated vehicle (what ``SimVehicle.state`` returns).

    Degrees WGS-84, metres (AMSL and above home), yaw degrees 0 = north clockwise,
    battery percent, sim time seconds since boot.
    """

    time_s: float
    lat: float
    lon: float
    alt_amsl_m: float
    rel_alt_m: float
    yaw_deg: float
    ground_speed_m_s: float
    battery_pct: float
    mode: str
    armed: bool
    in_air: bool
    landed_state: int  # MAV_LANDED_STATE: 1 on ground, 2 in air, 3 takeoff, 4 landing
    mission_seq: int
    mission_count: int
    mission_finished: bool
    gps_ok: bool
    odometer_m: float


@dataclass
class _Fence:
    inclusion: list = field(default_factory=list)  # shapely geometries in local metres
    exclusion: list = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.inclusion and not self.exclusion

    def breached(self, e: float, n: float) -> bool:
        p = Point(e, n)
        if any(g.contains(p) for g in self.exclusion):
            return True
        return bool(self.inclusion) and not any(g.covers(p) for g in self.inclusion)

    def path_problem(self, pts: list[tuple[float, float]]) -> int | None:
        """Index of the first point whose incoming leg crosses an exclusion zone or leaves the inclusion area."""
        for i in range(1, len(pts)):
            leg = LineString([pts[i - 1], pts[i]]) if pts[i - 1] != pts[i] else Point(pts[i])
            if any(g.intersects(leg) for g in self.exclusion):
                return i
            if self.inclusion and not any(g.covers(leg) for g in self.inclusion):
                return i
        return None


class Autopilot:
    """Commander + navigator of one simulated vehicle."""

    def __init__(
        self,
        home_lat: float,
        home_lon: float,
        home_alt_amsl: float,
        physics: PhysicsParams | None = None,
        params: dict[str, float] | None = None,
        gps_noise_m: float = 0.0,
        seed: int = 0,
        start_refusal_s: float = 0.0,
    ) -> None:
        """``start_refusal_s``: sim seconds after a mission upload during which a switch to
        Mission is acked ACCEPTED, then TEMPORARILY_REJECTED (PX4 v1.16; the vehicle
        adapter sets 1.0 by default, 0 here keeps the logic tests free of it)."""
        self.frame = LocalFrame(home_lat, home_lon)
        self.home_lat, self.home_lon, self.home_alt = home_lat, home_lon, home_alt_amsl
        self.home_en = (0.0, 0.0)
        self.physics = physics or PhysicsParams()
        self.params: dict[str, float] = {k: v for k, (v, _) in DEFAULT_PARAMS.items()}
        self.params["MPC_XY_VEL_MAX"] = self.physics.max_speed_m_s
        self.params["MPC_Z_VEL_MAX_UP"] = self.physics.max_climb_m_s
        self.params["MPC_Z_VEL_MAX_DN"] = self.physics.max_descent_m_s
        self.params["MPC_LAND_SPEED"] = self.physics.land_descent_m_s
        self.params.update(params or {})
        self.gps_noise_m = gps_noise_m
        self.rng = random.Random(seed)
        self.body = BodyState()
        self.prev_body = BodyState()
        self.t = 0.0
        self.mode = "HOLD"
        self.armed = False
        self.armed_at = 0.0
        self.mission: list[Item] = []
        self.fence = _Fence()
        self.seq = 0
        self.mission_finished = False
        self.mission_running = False  # MISSION mode has been entered since the last upload
        self.start_refusal_s = start_refusal_s
        self._uploaded_at: float | None = None  # sim time of the last mission upload
        self._landing_text_pending = False  # PX4 sends "Landing detected" after the landing disarm
        self._jumps: dict[int, int] = {}  # DO_JUMP seq -> jumps done
        self.cruise: float | None = None  # DO_CHANGE_SPEED / action speed, m/s
        self.target: Target | None = None
        self._phase = ""  # sub-state of TAKEOFF/MISSION/RTL/LAND
        self._hold_until: float | None = None
        self._landed_since: float | None = None
        self.landed_state = 1
        self.gps_ok = True
        self._gps_lost_since: float | None = None
        self.last_gcs_heartbeat: float | None = None
        self._failsafe: set[str] = set()
        self._dll_action_at: float | None = None  # sim time of the data-link action after the hold
        # ("text", severity, str) | ("reached", seq) | ("current", seq) | ("late_ack", MAV_RESULT)
        self.outbox: list[tuple] = []
        self.roll = self.pitch = 0.0

    # --- geometry -------------------------------------------------------------------
    def to_local(self, lat: float, lon: float) -> tuple[float, float]:
        return self.frame.to_local(lon, lat)

    def to_wgs84(self, e: float, n: float) -> tuple[float, float]:
        lon, lat = self.frame.to_wgs84(e, n)
        return lat, lon

    def item_local(self, it: Item) -> tuple[float, float, float]:
        """East, north, up (above home) of a mission item; frames 0/5 are AMSL."""
        e, n = self.to_local(it.lat, it.lon)
        up = it.z - self.home_alt if it.frame in (0, 5) else it.z
        return e, n, up

    # --- outputs --------------------------------------------------------------------
    def text(self, severity: int, msg: str) -> None:
        """Queue a STATUSTEXT; PX4 ends every text with a tab, so do we."""
        self.outbox.append(("text", severity, msg if msg.endswith("\t") else msg + "\t"))

    def snapshot(self) -> VehicleState:
        lat, lon = self.to_wgs84(self.body.east, self.body.north)
        return VehicleState(
            time_s=self.t, lat=lat, lon=lon, alt_amsl_m=self.home_alt + self.body.up, rel_alt_m=self.body.up,
            yaw_deg=self.body.yaw_deg, ground_speed_m_s=self.body.ground_speed, battery_pct=self.body.battery_pct,
            mode=self.mode, armed=self.armed, in_air=not self.body.on_ground, landed_state=self.landed_state,
            mission_seq=self.seq, mission_count=len(self.mission), mission_finished=self.mission_finished,
            gps_ok=self.gps_ok, odometer_m=self.body.odometer_m,
        )

    @property
    def custom_mode(self) -> int:
        main, sub = MODES[self.mode]
        return (main << 16) | (sub << 24)

    @property
    def mission_state(self) -> int:
        """MISSION_CURRENT.mission_state: PX4 v1.16 never fills it (always 0, MISSION_STATE_UNKNOWN)."""
        return 0

    # --- mission/fence lists ----------------------------------------------------------
    def set_list(self, mtype: int, items: list[Item]) -> None:
        if mtype == MISSION:
            self.mission = list(items)
            self._uploaded_at = self.t
            self._jumps = {}
            self.seq = 0
            self.mission_finished = False
            self.mission_running = self.mode == "MISSION"
            if self.mode == "MISSION":
                # A new mission uploaded in flight is flown from its first item (PX4: the
                # mission resets on upload and Mission mode goes on); without items: hold.
                if self.mission:
                    self._phase = "climb" if self.body.on_ground else "goto"
                    self._hold_until = None
                else:
                    self._enter("HOLD")
            self.outbox.append(("current", 0))
        elif mtype == FENCE:
            self.fence = self._parse_fence(items)

    def _parse_fence(self, items: list[Item]) -> _Fence:
        f = _Fence()
        i = 0
        while i < len(items):
            it = items[i]
            if it.command in (5001, 5002):
                k = max(3, int(it.param1))
                pts = [self.to_local(x.lat, x.lon) for x in items[i:i + k]]
                (f.inclusion if it.command == 5001 else f.exclusion).append(Polygon(pts))
                i += k
            else:
                e, n = self.to_local(it.lat, it.lon)
                (f.inclusion if it.command == 5003 else f.exclusion).append(Point(e, n).buffer(it.param1))
                i += 1
        return f

    def validate(self, mtype: int, items: list[Item]) -> tuple[int, str | None]:
        """Feasibility check of a complete upload (MAV_MISSION_RESULT, status text)."""
        if mtype == FENCE:
            try:
                fence = self._parse_fence(items)
            except (ValueError, TypeError) as e:
                return 5, f"Geofence invalid: {e}"  # MAV_MISSION_INVALID
            if any(not g.is_valid for g in fence.inclusion + fence.exclusion):
                return 5, "Geofence invalid: self-intersecting polygon"
            return 0, None
        return 0, None  # PX4 accepts a mission leaving the fence and refuses to arm (fence_problem)

    def fence_problem(self) -> str | None:
        """PX4's pre-arm refusal text when the mission's path leaves the fence, else None.

        PX4 numbers the item from 1 (``seq + 1``) and ends the text with a tab.
        """
        if not self.mission or self.fence.empty:
            return None
        pts: list[tuple[float, float]] = [self.home_en]
        seqs: list[int] = [-1]
        for it in self.mission:
            if it.command in (16, 17, 19, 21, 22) and (it.x, it.y) != (0, 0):
                pts.append(self.to_local(it.lat, it.lon))
                seqs.append(it.seq)
            elif it.command == 20:
                pts.append(self.home_en)
                seqs.append(it.seq)
        bad = self.fence.path_problem(pts)
        return None if bad is None else f"Geofence violation for waypoint {seqs[bad] + 1}"

    # --- commands -------------------------------------------------------------------
    def arm(self, arm: bool, force: bool = False) -> int:
        if arm:
            if self.armed:
                return ACCEPTED
            if not force:
                if not self.gps_ok:
                    self.text(SEV_CRITICAL, "Arming denied: no valid global position")
                    return TEMPORARILY_REJECTED
                if self.body.battery_pct <= self.params["BAT_CRIT_THR"] * 100:
                    self.text(SEV_CRITICAL, "Arming denied: battery critical")
                    return TEMPORARILY_REJECTED
                fence = self.fence_problem()
                if fence is not None:
                    self.text(SEV_CRITICAL, fence)
                    return TEMPORARILY_REJECTED
            self.armed, self.armed_at = True, self.t
            self._landed_since = None
            self.text(SEV_INFO, "Armed by external command")
            return ACCEPTED
        if not self.armed:
            return ACCEPTED
        if not self.body.on_ground and not force:
            self.text(SEV_CRITICAL, "Disarming denied: not landed")
            return TEMPORARILY_REJECTED
        self._disarm("Disarmed by external command")
        return ACCEPTED

    def _disarm(self, why: str) -> None:
        self.armed = False
        self.body.v_east = self.body.v_north = self.body.v_up = 0.0
        self.text(SEV_INFO, why)
        if self._landing_text_pending:
            self._landing_text_pending = False
            self.text(SEV_INFO, "Landing detected")

    def takeoff(self, alt_rel: float | None) -> int:
        if not self.armed:
            self.text(SEV_CRITICAL, "Takeoff denied: disarm")
            return TEMPORARILY_REJECTED
        alt = alt_rel if alt_rel is not None and math.isfinite(alt_rel) else self.params["MIS_TAKEOFF_ALT"]
        self._enter("TAKEOFF")
        self.target = Target(self.body.east, self.body.north, max(alt, 1.0))
        return ACCEPTED

    def set_mode(self, main: int, sub: int) -> int:
        name = MODE_BY_PAIR.get((main, sub))
        if name is None and main == 4 and sub == 1:  # AUTO.READY: treat as hold
            name = "HOLD"
        if name is None:
            return UNSUPPORTED
        if name == self.mode:
            return ACCEPTED
        if name == "MISSION":
            return self.start_mission()
        if name == "TAKEOFF":
            return self.takeoff(None)
        if name in ("RTL", "LAND") and not self.armed:
            return TEMPORARILY_REJECTED
        self._enter(name)
        return ACCEPTED

    def start_mission(self, first: int | None = None) -> int:
        nav = [it for it in self.mission if it.command in (16, 17, 19, 20, 21, 22)]
        if not nav:
            self.text(SEV_CRITICAL, "Mission rejected: no mission uploaded")
            return TEMPORARILY_REJECTED
        if not self.gps_ok:
            return TEMPORARILY_REJECTED
        if (self.start_refusal_s > 0 and self._uploaded_at is not None
                and self.t - self._uploaded_at < self.start_refusal_s):
            # PX4 v1.16: the first ack says ACCEPTED, a second one TEMPORARILY_REJECTED follows
            # with this text, and the mode stays as it was.
            self.outbox.append(("late_ack", TEMPORARILY_REJECTED))
            self.text(SEV_CRITICAL, START_REFUSED_TEXT)
            return ACCEPTED
        if first is not None:
            if not 0 <= first < len(self.mission):
                return DENIED
            self.seq = first
            self.mission_finished = False
            self.outbox.append(("current", self.seq))
        if self.mission_finished:
            # PX4 restarts a finished mission from the start on the next MISSION switch.
            self.seq, self.mission_finished, self._jumps = 0, False, {}
            self.outbox.append(("current", 0))
        self._enter("MISSION")
        return ACCEPTED

    def set_current(self, seq: int) -> int:
        if not 0 <= seq < max(1, len(self.mission)) or not self.mission:
            return DENIED
        self.seq = seq
        self.mission_finished = False
        self._hold_until = None
        self._phase = "climb" if self.mode == "MISSION" and self.body.on_ground else "goto"
        self.outbox.append(("current", seq))
        return ACCEPTED

    def pause(self) -> int:
        if self.mode == "MISSION":
            self._enter("HOLD")
        return ACCEPTED

    def reposition(self, lat: float, lon: float, alt_amsl: float | None, speed: float | None) -> int:
        if not self.armed or self.body.on_ground:
            return TEMPORARILY_REJECTED
        e, n = self.to_local(lat, lon) if math.isfinite(lat) and math.isfinite(lon) else (self.body.east, self.body.north)
        up = alt_amsl - self.home_alt if alt_amsl is not None and math.isfinite(alt_amsl) else self.body.up
        if self.mode != "HOLD":
            self._enter("HOLD")
        self.target = Target(e, n, up, speed_m_s=speed if speed and speed > 0 else None)
        return ACCEPTED

    def change_speed(self, speed: float) -> int:
        if speed > 0:
            self.cruise = min(speed, self.physics.max_speed_m_s)
        return ACCEPTED

    def set_home(self, lat: float, lon: float, alt_amsl: float) -> None:
        """Move home; the local frame stays anchored at boot home, only the return point moves."""
        self.home_en = self.to_local(lat, lon)
        self.home_alt_new = alt_amsl

    def gcs_heartbeat(self) -> None:
        self.last_gcs_heartbeat = self.t

    # --- internals ------------------------------------------------------------------
    def _enter(self, mode: str) -> None:
        if mode != self.mode:
            self.mode = mode
            if mode == "RTL":
                self.text(SEV_INFO, "Returning to launch")
            elif mode == "LAND":
                self.text(SEV_INFO, "Landing at current position")
            elif mode == "MISSION":
                self.text(SEV_INFO, "Executing Mission")
        self._hold_until = None
        if mode == "HOLD" or mode == "POSCTL":
            self.target = Target(self.body.east, self.body.north, self.body.up)
        elif mode == "MISSION":
            self.mission_running = True
            self._phase = "climb" if self.body.on_ground else "goto"
        elif mode == "RTL":
            self._phase = "climb"
        elif mode == "LAND":
            self._phase = "descend"

    def _speed(self) -> float:
        return self.cruise or min(self.params["MPC_XY_CRUISE"], self.physics.max_speed_m_s)

    def _descent_target(self, e: float, n: float) -> Target:
        """Descend fast to MPC_LAND_ALT2, then at MPC_LAND_SPEED (as PX4 does)."""
        slow = self.body.up <= self.params["MPC_LAND_ALT2"]
        rate = self.params["MPC_LAND_SPEED"] if slow else self.params["MPC_Z_VEL_MAX_DN"]
        return Target(e, n, 0.0, speed_m_s=self._speed(), descent_m_s=rate)

    def _reached(self, tgt: Target, radius: float) -> bool:
        dh = math.hypot(tgt.east - self.body.east, tgt.north - self.body.north)
        return dh <= radius and abs(tgt.up - self.body.up) <= max(self.params["NAV_MC_ALT_RAD"], 0.3)

    def _advance(self) -> None:
        """Mark the current item reached and go on to the next (PX4 reports every item)."""
        self.outbox.append(("reached", self.seq))
        if self.seq + 1 >= len(self.mission):
            self.mission_finished = True
            self.text(SEV_INFO, "Mission finished, loitering")
            self._enter("HOLD")
            self.outbox.append(("current", self.seq))
            return
        self.seq += 1
        self._phase = "goto"
        self._hold_until = None
        self.outbox.append(("current", self.seq))

    def _mission_target(self) -> Target | None:
        """Guidance target for the current item; handles non-position items at once."""
        for _ in range(len(self.mission) + 1):
            if self.mode != "MISSION":
                return self.target
            it = self.mission[self.seq]
            if it.command == 178:  # DO_CHANGE_SPEED: param2 speed m/s (-1 no change)
                if it.param2 > 0:
                    self.change_speed(it.param2)
                self._advance()
                continue
            if it.command == 177:  # DO_JUMP: param1 target seq, param2 repeat count (-1 forever)
                done = self._jumps.get(self.seq, 0)
                if (it.param2 < 0 or done < it.param2) and 0 <= int(it.param1) < len(self.mission):
                    self._jumps[self.seq] = done + 1
                    self.outbox.append(("reached", self.seq))
                    self.seq = int(it.param1)
                    self.outbox.append(("current", self.seq))
                    return Target(self.body.east, self.body.north, self.body.up)  # resume next step
                self._advance()
                continue
            if it.command == 20:  # NAV_RETURN_TO_LAUNCH: PX4 switches to RTL, no "reached"
                self.mission_finished = True
                self._enter("RTL")
                return None
            if it.command not in (16, 17, 19, 21, 22):
                self._advance()  # camera, gimbal, ROI, ...: acknowledged and done
                continue
            e, n, up = self.item_local(it)
            if (it.x, it.y) == (0, 0):
                e, n = self.body.east, self.body.north
            if it.command == 22:
                e, n = self.body.east, self.body.north
            if it.command == 21:
                return self._descent_target(e, n) if self._phase == "land" else Target(e, n, self.body.up, self._speed())
            return Target(e, n, up, self._speed())
        return None

    def _step_mission(self) -> None:
        if self._phase == "climb":
            takeoff_alt = self.params["MIS_TAKEOFF_ALT"]
            self.target = Target(self.body.east, self.body.north, takeoff_alt)
            if self.body.up >= takeoff_alt - 0.2:
                self._phase = "goto"
            return
        tgt = self._mission_target()
        if self.mode != "MISSION" or tgt is None:
            return
        self.target = tgt
        it = self.mission[self.seq]
        radius = it.param2 if it.command == 16 and it.param2 > 0 else self.params["NAV_ACC_RAD"]
        if it.command == 21:
            if self._phase != "land" and self._reached(Target(tgt.east, tgt.north, self.body.up), radius):
                self._phase = "land"
            return  # landing completion handled by the touchdown logic
        if self._reached(tgt, radius):
            hold = it.param1 if it.command in (16, 19) else 0.0
            if it.command == 17:
                return  # loiter unlimited: stay
            if hold > 0:
                if self._hold_until is None:
                    self._hold_until = self.t + hold
                if self.t < self._hold_until:
                    return
            self._advance()

    def _step_rtl(self) -> None:
        he, hn = self.home_en
        ret_alt = max(self.params["RTL_RETURN_ALT"], self.body.up)
        if self._phase == "climb":
            if math.hypot(he - self.body.east, hn - self.body.north) < self.params["NAV_ACC_RAD"]:
                self._phase = "land"
            else:
                self.target = Target(self.body.east, self.body.north, ret_alt)
                if self.body.up >= ret_alt - 0.5:
                    self._phase = "return"
                    self._rtl_alt = ret_alt
        if self._phase == "return":
            self.target = Target(he, hn, self._rtl_alt, self._speed())
            if math.hypot(he - self.body.east, hn - self.body.north) < self.params["NAV_ACC_RAD"]:
                self._phase = "land"
        if self._phase == "land":
            self.target = self._descent_target(he, hn)

    def _failsafes(self, gps_lost: bool, breach_fault: bool) -> None:
        in_air = self.armed and not self.body.on_ground
        # Position loss -> land (PX4: COM_POSCTL_NAVL, descend without position).
        if gps_lost and self.gps_ok:
            self.gps_ok = False
            self._gps_lost_since = self.t
            self.text(SEV_CRITICAL, "GPS signal lost")
        elif not gps_lost and not self.gps_ok:
            self.gps_ok = True
            self._failsafe.discard("gps")
            self.text(SEV_INFO, "GPS signal regained")
        if (not self.gps_ok and in_air and "gps" not in self._failsafe
                and self.t - (self._gps_lost_since or self.t) >= self.params["COM_POS_FS_DELAY"]):
            self._failsafe.add("gps")
            if self.mode != "LAND":
                self.text(SEV_CRITICAL, "Failsafe activated: no global position, landing")
                self._enter("LAND")
        # Battery.
        pct = self.body.battery_pct
        act = int(self.params["COM_LOW_BAT_ACT"])
        if in_air and pct <= self.params["BAT_EMERGEN_THR"] * 100 and "bat_emerg" not in self._failsafe:
            self._failsafe.add("bat_emerg")
            if act >= 2 and self.mode != "LAND":
                self.text(SEV_CRITICAL, "Failsafe activated: battery emergency, landing")
                self._enter("LAND")
        elif in_air and pct <= self.params["BAT_CRIT_THR"] * 100 and "bat_crit" not in self._failsafe:
            self._failsafe.add("bat_crit")
            if act in (1, 3) and self.mode not in ("RTL", "LAND"):
                self.text(SEV_CRITICAL, "Failsafe activated: battery critical, returning to launch")
                self._enter("RTL")
            elif act == 2 and self.mode != "LAND":
                self.text(SEV_CRITICAL, "Failsafe activated: battery critical, landing")
                self._enter("LAND")
        elif pct <= self.params["BAT_LOW_THR"] * 100 and "bat_low" not in self._failsafe:
            self._failsafe.add("bat_low")
            self.text(SEV_WARNING, "Low battery level! Return advised")
        # Data link loss.
        dll = int(self.params["NAV_DLL_ACT"])
        if (dll and in_air and self.last_gcs_heartbeat is not None
                and self.t - self.last_gcs_heartbeat > self.params["COM_DL_LOSS_T"]):
            if "dll" not in self._failsafe:
                self._failsafe.add("dll")
                self._dll_action_at = self.t + max(0.0, self.params["COM_FAIL_ACT_T"])
                self.text(SEV_CRITICAL, "Failsafe activated: no datalink")
                if self.mode not in ("RTL", "LAND"):
                    self._enter("HOLD")  # PX4 holds COM_FAIL_ACT_T (5 s) before the action
            if self._dll_action_at is not None and self.t >= self._dll_action_at:
                self._dll_action_at = None
                target = {1: "HOLD", 2: "RTL", 3: "LAND"}.get(dll)
                if target and self.mode not in ("RTL", "LAND"):
                    self._enter(target)
        elif self.last_gcs_heartbeat is not None and self.t - self.last_gcs_heartbeat <= 1.5:
            if "dll" in self._failsafe:
                self._failsafe.discard("dll")
                self._dll_action_at = None
                self.text(SEV_INFO, "Data link regained")
        # Geofence.
        breach = breach_fault or (in_air and not self.fence.empty and self.fence.breached(self.body.east, self.body.north))
        if breach and "fence" not in self._failsafe and in_air:
            self._failsafe.add("fence")
            self.text(SEV_CRITICAL, "Geofence breached")
            action = {2: "HOLD", 3: "RTL", 5: "LAND"}.get(int(self.params["GF_ACTION"]))
            if action and self.mode not in ("RTL", "LAND"):
                self._enter(action)
        elif not breach and "fence" in self._failsafe and not breach_fault:
            if self.fence.empty or not self.fence.breached(self.body.east, self.body.north):
                self._failsafe.discard("fence")

    def step(self, dt: float, gps_lost: bool = False, breach: bool = False, battery_pct: float | None = None) -> None:
        """Advance the vehicle by ``dt`` sim seconds."""
        if battery_pct is not None:
            self.body.battery_pct = battery_pct
            # a fresh pack (battery swap) re-arms the battery failsafes, as a new PX4 boot would
            for flag, thr in (("bat_low", "BAT_LOW_THR"), ("bat_crit", "BAT_CRIT_THR"), ("bat_emerg", "BAT_EMERGEN_THR")):
                if battery_pct > self.params[thr] * 100:
                    self._failsafe.discard(flag)
        self._failsafes(gps_lost, breach)
        if self.armed:
            if self.mode == "MISSION":
                self._step_mission()
            elif self.mode == "RTL":
                self._step_rtl()
            elif self.mode == "LAND":
                self.target = self._descent_target(self.body.east, self.body.north)
            elif self.mode == "TAKEOFF" and self.target is not None and self._reached(self.target, 1.0):
                self.text(SEV_INFO, "Takeoff complete, holding")
                tgt = self.target
                self._enter("HOLD")
                self.target = tgt  # hold at the takeoff altitude, not where "reached" fired
            elif self.mode in ("HOLD", "POSCTL") and self.body.on_ground and self.target is not None and self.target.up <= 0:
                pass  # armed on the ground in hold: idle
        was_on_ground = self.body.on_ground
        self.prev_body = self.body
        climbing_out = self.target is not None and self.target.up > 0.1
        if self.armed and (not self.body.on_ground or climbing_out):
            self.body = step(self.body, self.target, dt, self.physics, powered=True)
        else:
            self.body = step(self.body, None, dt, self.physics, powered=False)
            if self.armed:  # idling on the ground still draws power
                self.body.battery_pct = max(0.0, self.body.battery_pct - 0.3 * self.physics.drain_hover_pct_s * dt)
        self.roll, self.pitch = attitude_from_accel(self.prev_body, self.body, dt)
        self.t += dt
        # Land detection and auto-disarm.
        if was_on_ground and not self.body.on_ground:
            if self._landing_text_pending:
                self._landing_text_pending = False
                self.text(SEV_INFO, "Landing detected")
            self.text(SEV_INFO, "Takeoff detected")
            self._landed_since = None
        if not was_on_ground and self.body.on_ground:
            if self.armed and self.params["COM_DISARM_LAND"] >= 0:
                self._landing_text_pending = True  # sent after the disarm, as PX4 does
            else:
                self.text(SEV_INFO, "Landing detected")
            self._landed_since = self.t
            if self.mode == "MISSION" and self.mission and self.mission[self.seq].command == 21:
                self.outbox.append(("reached", self.seq))
                self.mission_finished = True
        if self.armed and self.body.on_ground:
            if self._landed_since is None and self.mode in ("LAND", "RTL"):
                self._landed_since = self.t
            limit = self.params["COM_DISARM_LAND"]
            pre = self.params["COM_DISARM_PRFLT"]
            if self._landed_since is not None and limit >= 0 and self.t - self._landed_since >= limit:
                self._disarm("Disarmed by landing")
            elif self._landed_since is None and pre > 0 and self.t - self.armed_at >= pre and not climbing_out:
                self._disarm("Disarmed by auto preflight disarming")
        self.landed_state = self._landed_state()

    def _landed_state(self) -> int:
        """MAV_LANDED_STATE as PX4 reports it: 1 on ground, 2 in air, 3 taking off (climb-out
        to the take-off altitude), 4 landing (the final descent of LAND, RTL, a LAND item)."""
        if self.body.on_ground:
            return 1
        descending = self.body.v_up < -0.1 and self._phase in ("land", "descend")
        if descending and (self.mode in ("LAND", "RTL") or (self.mode == "MISSION" and self.mission
                                                           and self.mission[self.seq].command == 21)):
            return 4
        climb_out = self.mode == "TAKEOFF" or (self.mode == "MISSION" and self._phase == "climb")
        if self.body.v_up > 0.1 and (climb_out or self.body.up < 2.0):
            return 3
        return 2

    def noisy_position(self) -> tuple[float, float]:
        """Reported lat/lon with the configured GPS noise (metres, 1 sigma)."""
        e, n = self.body.east, self.body.north
        if self.gps_noise_m > 0:
            e += self.rng.gauss(0.0, self.gps_noise_m)
            n += self.rng.gauss(0.0, self.gps_noise_m)
        return self.to_wgs84(e, n)
