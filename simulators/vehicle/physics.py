"""Point-mass multicopter: pure, deterministic, no I/O.

The vehicle is a point in a local East/North/Up frame (metres, origin at home, see
``geo.projection.LocalFrame``) with a yaw. A simple guidance law flies it toward a
3-D target: horizontal speed limited by ``max_speed_m_s`` and by a braking curve
``sqrt(2 * accel * distance)`` (so it does not overshoot), velocity changes limited by
``max_accel_m_s2``, climb and descent limited separately, yaw slewed toward the course
at ``max_yaw_rate_deg_s``. Wind (m/s, blowing *toward* east/north) is what the
controller fights: the air-relative speed is capped, so a head wind slows the ground
speed, as on a real drone. Battery drain is proportional to time (hover power), to
air speed and to climb (potential energy), which is what mission planning needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PhysicsParams:
    """Performance limits of the simulated airframe (SI units)."""

    max_speed_m_s: float = 15.0  # horizontal air-relative speed cap
    max_accel_m_s2: float = 4.0  # horizontal acceleration cap
    max_climb_m_s: float = 3.0
    max_descent_m_s: float = 1.5  # PX4 MPC_Z_VEL_MAX_DN default
    land_descent_m_s: float = 0.7  # final landing speed (PX4 MPC_LAND_SPEED)
    max_yaw_rate_deg_s: float = 60.0
    wind_east_m_s: float = 0.0
    wind_north_m_s: float = 0.0
    # Battery model: percent per second of flight at hover, extra per m/s of air speed,
    # extra per metre climbed. Defaults give about 25 min hover on a full pack.
    drain_hover_pct_s: float = 100.0 / (25 * 60)
    drain_speed_pct_per_m: float = 0.0004  # % per metre of air-relative travel
    drain_climb_pct_per_m: float = 0.01  # % per metre climbed


@dataclass
class BodyState:
    """True state of the point mass. ENU metres relative to home; yaw degrees (0 = north, cw)."""

    east: float = 0.0
    north: float = 0.0
    up: float = 0.0
    v_east: float = 0.0
    v_north: float = 0.0
    v_up: float = 0.0
    yaw_deg: float = 0.0
    battery_pct: float = 100.0
    on_ground: bool = True
    odometer_m: float = 0.0  # horizontal distance flown

    @property
    def ground_speed(self) -> float:
        return math.hypot(self.v_east, self.v_north)


@dataclass
class Target:
    """Where guidance flies to. ``speed_m_s`` None means the airframe maximum."""

    east: float
    north: float
    up: float
    speed_m_s: float | None = None
    descent_m_s: float | None = None  # override (landing)
    yaw_deg: float | None = None  # None: face the direction of travel
    extra: dict = field(default_factory=dict)


def horizontal_distance(state: BodyState, target: Target) -> float:
    return math.hypot(target.east - state.east, target.north - state.north)


def _wrap180(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


def step(state: BodyState, target: Target | None, dt: float, p: PhysicsParams, powered: bool) -> BodyState:
    """Advance ``state`` by ``dt`` seconds of sim time toward ``target`` (None = hold still).

    ``powered`` False means disarmed: nothing moves and no battery is used. Returns a new
    state (the input is not changed) so tests can compare steps.
    """
    s = BodyState(**state.__dict__)
    if not powered or dt <= 0:
        s.v_east = s.v_north = s.v_up = 0.0
        return s
    # Horizontal guidance: desired ground velocity toward target, braking near it.
    if target is None:
        target = Target(s.east, s.north, s.up)
    de, dn = target.east - s.east, target.north - s.north
    dist = math.hypot(de, dn)
    cruise = min(target.speed_m_s or p.max_speed_m_s, p.max_speed_m_s)
    # Braking curve at 70 % of the acceleration limit leaves margin for the discrete steps.
    want = min(cruise, math.sqrt(2.0 * 0.7 * p.max_accel_m_s2 * dist)) if dist > 1e-6 else 0.0
    want_e, want_n = (de / dist * want, dn / dist * want) if dist > 1e-6 else (0.0, 0.0)
    # Air-relative speed cap: the wind adds to what the airframe can do.
    air_e, air_n = want_e - p.wind_east_m_s, want_n - p.wind_north_m_s
    air = math.hypot(air_e, air_n)
    if air > p.max_speed_m_s:
        # Scale the commanded ground velocity so air speed stays at the cap (approximately).
        k = p.max_speed_m_s / air
        want_e, want_n = air_e * k + p.wind_east_m_s, air_n * k + p.wind_north_m_s
    dv_e, dv_n = want_e - s.v_east, want_n - s.v_north
    dv = math.hypot(dv_e, dv_n)
    max_dv = p.max_accel_m_s2 * dt
    if dv > max_dv:
        dv_e, dv_n = dv_e / dv * max_dv, dv_n / dv * max_dv
    s.v_east += dv_e
    s.v_north += dv_n
    # Do not overshoot the target within one step.
    step_e, step_n = s.v_east * dt, s.v_north * dt
    if dist > 1e-6 and math.hypot(step_e, step_n) > dist:
        step_e, step_n = de, dn
    s.east += step_e
    s.north += step_n
    moved = math.hypot(step_e, step_n)
    s.odometer_m += moved
    # Vertical: rate limited climb/descent toward target altitude, never below ground.
    dz = target.up - s.up
    down = target.descent_m_s or p.max_descent_m_s
    vz = max(-down, min(p.max_climb_m_s, dz / dt if dt > 0 else 0.0))
    vz = max(-down, min(p.max_climb_m_s, vz))
    if abs(dz) < abs(vz * dt):
        vz = dz / dt
    s.v_up = vz
    s.up = max(0.0, s.up + vz * dt)
    s.on_ground = s.up <= 0.05
    if s.on_ground:
        s.up = 0.0  # touchdown: the ground stops it
    # Yaw toward course (or commanded yaw) at limited rate.
    if target.yaw_deg is not None:
        want_yaw = target.yaw_deg
    elif s.ground_speed > 0.5:
        want_yaw = math.degrees(math.atan2(s.v_east, s.v_north))
    else:
        want_yaw = s.yaw_deg
    dyaw = _wrap180(want_yaw - s.yaw_deg)
    max_dyaw = p.max_yaw_rate_deg_s * dt
    s.yaw_deg = (s.yaw_deg + max(-max_dyaw, min(max_dyaw, dyaw))) % 360.0
    # Battery: hover power + travel + climb.
    air_travel = math.hypot(s.v_east - p.wind_east_m_s, s.v_north - p.wind_north_m_s) * dt
    climb = max(0.0, vz * dt)
    s.battery_pct = max(
        0.0,
        s.battery_pct
        - p.drain_hover_pct_s * dt
        - p.drain_speed_pct_per_m * air_travel
        - p.drain_climb_pct_per_m * climb,
    )
    return s


def attitude_from_accel(prev: BodyState, cur: BodyState, dt: float) -> tuple[float, float]:
    """Roll and pitch (radians) a multicopter would hold for the acceleration between two states.

    Body-frame tilt: pitch forward (negative) to accelerate forward, roll right to accelerate right.
    """
    if dt <= 0:
        return 0.0, 0.0
    ae, an = (cur.v_east - prev.v_east) / dt, (cur.v_north - prev.v_north) / dt
    yaw = math.radians(cur.yaw_deg)
    fwd = an * math.cos(yaw) + ae * math.sin(yaw)
    right = -an * math.sin(yaw) + ae * math.cos(yaw)
    g = 9.81
    return math.atan2(right, g), -math.atan2(fwd, g)
