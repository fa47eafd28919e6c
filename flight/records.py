"""Typed records that ``flight`` streams to its listeners (command room, vision, flight log).

Times: ``time_s`` is vehicle time in seconds (it follows the simulator's time scale),
``wall_time`` is the receiving computer's UNIX time in seconds. Positions WGS-84 degrees;
altitudes metres; angles degrees (yaw 0 = north, clockwise).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Telemetry:
    drone_id: str
    time_s: float
    wall_time: float
    lat: float
    lon: float
    abs_alt_m: float
    rel_alt_m: float
    roll_deg: float
    pitch_deg: float
    yaw_deg: float
    ground_speed_m_s: float
    battery_pct: float
    flight_mode: str
    armed: bool
    in_air: bool
    sortie_id: str | None = None
    mission_item: int | None = None
    mission_total: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FlightEvent:
    """A fault, decision or milestone, logged with time and position."""

    drone_id: str
    wall_time: float
    kind: str  # e.g. "connected", "mission_uploaded", "item_reached", "link_lost", "resumed", "rtl", "landed", "sortie_done"
    message: str
    lat: float | None = None
    lon: float | None = None
    sortie_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FlightListener(Protocol):
    """Receives the flight streams. Implementations must not block (queue heavy work)."""

    def on_telemetry(self, record: Telemetry) -> None: ...

    def on_event(self, event: FlightEvent) -> None: ...
