"""Helpers to fly against SkyGrid's simulated vehicle at 30x with free ports, and to
judge a flight from the simulator's *true* track (sampled in a thread, so it includes
what happened while the link was down)."""

from __future__ import annotations

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
    """Samples ``sim.state`` every ``period_s`` wall seconds in a thread (ground truth)."""

    def __init__(self, sim, period_s: float = 0.01) -> None:
        self.sim = sim
        self.period_s = period_s
        self.track: list[tuple[float, float, float, float, bool, str]] = []  # t, lat, lon, rel_alt, in_air, mode
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TrackSampler:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join(2)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                s = self.sim.state
                self.track.append((s.time_s, s.lat, s.lon, s.rel_alt_m, s.in_air, s.mode))
            except RuntimeError:
                pass
            time.sleep(self.period_s)


def dist_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    lat = math.radians((lat1 + lat2) / 2)
    return math.hypot((lat1 - lat2) * 110574.0, (lon1 - lon2) * 111320.0 * math.cos(lat))


def visits(track, lat: float, lon: float, alt: float, near_m: float = 6.0, leave_m: float = 25.0,
           modes: frozenset[str] | None = None) -> int:
    """How many separate times the true track came within ``near_m`` of a waypoint at its
    altitude (+-5 m; a visit ends when the track is ``leave_m`` away again).

    ``modes`` (e.g. ``{"MISSION"}``) counts only samples flown in those flight modes: a
    vehicle switching to RTL a few metres short of a waypoint brakes and climbs *through*
    it (10 m/s needs ~10-15 m to stop), which is not the mission flying that waypoint."""
    n, inside = 0, False
    for _t, la, lo, ra, in_air, mode in track:
        if not in_air or (modes is not None and mode not in modes):
            continue
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
