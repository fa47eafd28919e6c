"""Helpers to fly against SkyGrid's simulated vehicle at 30x with free ports, and to
judge a flight from the simulator's *true* track (recorded after every physics step, so it includes
what happened while the link was down)."""

from __future__ import annotations

import bisect
import math
import threading
import time
from dataclasses import dataclass, field

from flight.records import FlightEvent, Telemetry
from tests.conftest import free_udp_port

from .planfactory import HOME

SPEED = 30.0


def start_sim(instance: int = 0, home: tuple[float, float] = HOME, **kw):
    from simulators.vehicle import SimVehicle, VehicleConfig

    cfg = VehicleConfig(instance=instance, home_lat=home[0], home_lon=home[1], home_alt_amsl=10.0,
                        speed_factor=kw.pop("speed_factor", SPEED), gcs_port=free_udp_port(),
                        listen_port=free_udp_port(), rtl_alt_m=kw.pop("rtl_alt_m", 25.0), **kw)
    return SimVehicle(cfg).start()


class TrackSampler:
    """Records the simulator's true track after every physics step (ground truth).

    The record is taken inside the vehicle thread, once per ``physics_dt_s`` of vehicle time
    (0.05 s = 0.5 m at 10 m/s), so its resolution does not depend on wall-clock speed. (A
    thread polling ``sim.state`` every 10 ms wall saw gaps of 30+ m at 30x on a loaded
    machine, because the simulator catches up several physics steps per tick, and a
    waypoint flown in such a gap counted as "never flown": the low-battery test's flake.)
    """

    def __init__(self, sim) -> None:
        self.sim = sim
        self.track: list[tuple[float, float, float, float, bool, str]] = []  # t, lat, lon, rel_alt, in_air, mode
        self.clock: list[tuple[float, float]] = []  # (wall time.time(), vehicle time s) after each step
        self._ap = None

    def __enter__(self) -> TrackSampler:
        ap = self.sim.ap
        if ap is None:
            raise RuntimeError("TrackSampler: start the simulated vehicle first")
        step = ap.step  # the bound method; the instance attribute below shadows it

        def recorded_step(dt: float, *args, **kw) -> None:
            step(dt, *args, **kw)
            s = ap.snapshot()
            self.track.append((s.time_s, s.lat, s.lon, s.rel_alt_m, s.in_air, s.mode))
            self.clock.append((time.time(), s.time_s))

        s = ap.snapshot()
        self.track.append((s.time_s, s.lat, s.lon, s.rel_alt_m, s.in_air, s.mode))
        ap.step = recorded_step
        self._ap = ap
        return self

    def __exit__(self, *exc) -> None:
        if self._ap is not None:
            del self._ap.step  # back to the class's method
            self._ap = None

    def vehicle_time_at(self, wall: float) -> float:
        """The simulator's true clock (vehicle s) at a wall time (``time.time()``), from the
        steps recorded: what a pose's ``time_s`` should be, whatever the machine's speed."""
        i = bisect.bisect_right(self.clock, (wall, math.inf))
        if i == 0:
            raise ValueError(f"wall time {wall} before the first recorded step")
        return self.clock[i - 1][1]


def dist_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    lat = math.radians((lat1 + lat2) / 2)
    return math.hypot((lat1 - lat2) * 110574.0, (lon1 - lon2) * 111320.0 * math.cos(lat))


def visits(track, lat: float, lon: float, alt: float, near_m: float = 6.0, leave_m: float = 25.0,
           modes: frozenset[str] | None = None) -> int:
    """How many separate times the true track came within ``near_m`` of a waypoint at its
    altitude (+-5 m; a visit ends when the track is ``leave_m`` away again).

    ``modes`` (e.g. ``{"MISSION"}``) counts only samples flown in those flight modes: a
    vehicle switching to RTL a few metres short of a waypoint brakes and climbs *through*
    it (10 m/s needs ~10-15 m to stop), which is not the mission flying that waypoint. The
    last sample before a switch out of ``modes`` is not counted either: the failsafe that
    switched ran before the autopilot's waypoint check of that step."""
    n, inside = 0, False
    for k, (_t, la, lo, ra, in_air, mode) in enumerate(track):
        if not in_air or (modes is not None and mode not in modes):
            continue
        if modes is not None and (k + 1 == len(track) or track[k + 1][5] not in modes):
            continue  # the mode changed in the next step, before the autopilot judged this sample
        d = dist_m(la, lo, lat, lon) if abs(ra - alt) < 5.0 else 1e9
        if not inside and d <= near_m:
            n += 1
            inside = True
        elif inside and d >= leave_m:
            inside = False
    return n


@dataclass
class Recorder:
    """A FlightListener keeping everything, with hooks on events."""

    telemetry: list[Telemetry] = field(default_factory=list)
    events: list[FlightEvent] = field(default_factory=list)
    hooks: list = field(default_factory=list)

    def on_telemetry(self, record: Telemetry) -> None:
        self.telemetry.append(record)

    def on_event(self, event: FlightEvent) -> None:
        self.events.append(event)
        for h in list(self.hooks):
            h(event)

    def kinds(self, drone_id: str | None = None) -> list[str]:
        return [e.kind for e in self.events if drone_id is None or e.drone_id == drone_id]

    def reached(self, drone_id: str = "d0", sortie_prefix: str = "") -> list[tuple[str, int]]:
        return [(e.sortie_id, e.data["item"]) for e in self.events
                if e.kind == "item_reached" and e.drone_id == drone_id and (e.sortie_id or "").startswith(sortie_prefix)]


class LinkOutage:
    """Drops the simulated link until the *vehicle* has done something, then restores it.

    A fixed wall-clock outage (``faults.link_loss(5.0)``) meant a different amount of vehicle
    time on a loaded machine (the simulator drops time when a tick is late by over 1 s), so
    the vehicle sometimes had not landed, or not flown on, when the link came back. Here the
    link stays down until the executor has reported ``link_lost`` (MAVSDK's own ~3 s wall
    timeout) *and* ``ready(sim.state)`` holds; ``timeout_s`` (wall) bounds the wait so a test
    that never gets there fails on its assertions instead of hanging.
    """

    def __init__(self, sim, rec: Recorder, ready, timeout_s: float = 60.0) -> None:
        self.sim, self.rec, self.ready, self.timeout_s = sim, rec, ready, timeout_s
        self.started = threading.Event()
        self.restored_by_condition: bool | None = None
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        """Drop the link now (callable from a listener hook) and start watching."""
        if self.started.is_set():
            return
        self.started.set()
        self.sim.faults.link_loss(None)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        ok = False
        while time.monotonic() < deadline:
            if "link_lost" in self.rec.kinds() and self.ready(self.sim.state):
                ok = True
                break
            time.sleep(0.01)
        self.restored_by_condition = ok
        self.sim.faults.link_restore()
