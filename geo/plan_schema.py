"""The plan JSON: the contract between ``geo`` (planning) and ``flight`` (execution).

Versioned by ``schema`` ("skygrid.plan/1"). Positions are WGS-84 degrees; waypoint
altitudes are metres above the home (take-off) point, as MAVSDK's relative altitude;
polygons are GeoJSON-style rings of [lon, lat]. Readers refuse unknown major versions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

PLAN_SCHEMA = "skygrid.plan/1"

WaypointKind = Literal["transit", "survey", "line_start", "line_end"]
CameraAction = Literal["start_distance", "stop_distance", "photo"]


class PlanFormatError(ValueError):
    """A plan file that cannot be read; the message names the file and the field."""


_ADAPTER: Any = None


def _check_types(d: dict[str, Any], source: str) -> None:
    """Check every field's type against the dataclasses below (strict: no "12" for a
    number, no NaN/Infinity, no unknown fields), naming the first bad field's path.

    Why: a plan travels (PUT /api/v1/plan) from the planner to the pages and the flight
    stage; a string where a number belongs is at best a crash there and at worst markup.
    pydantic is imported here, lazily, so reading the dataclasses stays import-light."""
    global _ADAPTER
    from pydantic import ConfigDict, TypeAdapter, ValidationError

    if _ADAPTER is None:
        cfg = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")
        for klass in (Waypoint, Sortie, PlannedGrid, NoFlyZone, Home, Plan):
            klass.__pydantic_config__ = cfg  # type: ignore[attr-defined]
        _ADAPTER = TypeAdapter(Plan)
    try:
        # JSON mode: strict there still takes objects for the dataclasses, numbers stay numbers
        _ADAPTER.validate_json(json.dumps(d, allow_nan=True))
    except ValidationError as e:
        err = e.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        got = repr(err.get("input"))[:60]
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise PlanFormatError(f"{source}: field {where!r}: {err['msg']}, got {got}{more}") from None


@dataclass
class Waypoint:
    lat: float
    lon: float
    rel_alt_m: float
    speed_m_s: float
    kind: WaypointKind = "survey"
    grid_id: str | None = None
    #: camera action at this waypoint (start/stop distance triggering, or one photo)
    camera: CameraAction | None = None
    #: trigger distance in metres for ``camera == "start_distance"``
    trigger_distance_m: float | None = None
    gimbal_pitch_deg: float | None = -90.0


@dataclass
class Sortie:
    """One take-off-to-landing flight of one drone."""

    id: str
    drone: int
    index: int
    grid_ids: list[str]
    waypoints: list[Waypoint]
    distance_m: float = 0.0
    duration_s: float = 0.0
    battery_fraction: float = 0.0

    @property
    def mission_items(self) -> int:
        return len(self.waypoints)


@dataclass
class PlannedGrid:
    id: str
    name: str
    #: exterior ring then hole rings, each [[lon, lat], ...], WGS-84 (the largest part)
    rings: list[list[list[float]]]
    area_m2: float = 0.0
    coverage_ratio: float = 0.0
    properties: dict[str, Any] = field(default_factory=dict)
    #: every part of a multi-part grid, each as ``rings`` (empty for a one-part grid: use ``rings``)
    parts: list[list[list[list[float]]]] = field(default_factory=list)

    def all_parts(self) -> list[list[list[list[float]]]]:
        """Every polygon of the grid (exterior + holes each), so no output drops a part."""
        return self.parts or [self.rings]


@dataclass
class NoFlyZone:
    id: str
    name: str
    #: exterior ring then hole rings of the largest part, [[lon, lat], ...], WGS-84
    rings: list[list[list[float]]]
    buffer_m: float = 0.0
    #: every part of a multi-part zone (empty for a one-part zone: use ``rings``)
    parts: list[list[list[list[float]]]] = field(default_factory=list)

    def all_parts(self) -> list[list[list[list[float]]]]:
        """Every polygon of the zone, so a fence or a map never drops a part."""
        return self.parts or [self.rings]


@dataclass
class Home:
    lat: float
    lon: float
    alt_amsl_m: float = 0.0


@dataclass
class Plan:
    home: Home
    camera: dict[str, Any]
    altitude_m: float
    gsd_cm: float
    speed_m_s: float
    side_overlap: float
    front_overlap: float
    line_spacing_m: float
    trigger_distance_m: float
    drones: int
    grids: list[PlannedGrid]
    sorties: list[Sortie]
    no_fly: list[NoFlyZone] = field(default_factory=list)
    created_at: str = ""
    source: str = ""
    schema: str = PLAN_SCHEMA
    #: planner warnings for the operator (optional; e.g. a grid planned around a no-fly zone)
    warnings: list[str] = field(default_factory=list)

    def sorties_for(self, drone: int) -> list[Sortie]:
        """Sorties of one drone in flying order."""
        return sorted((s for s in self.sorties if s.drone == drone), key=lambda s: s.index)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<plan>") -> Plan:
        schema = d.get("schema")
        if not isinstance(schema, str) or not schema.startswith("skygrid.plan/"):
            raise PlanFormatError(f"{source}: field 'schema' must be {PLAN_SCHEMA!r}, got {schema!r}")
        if schema.split("/")[1].split(".")[0] != PLAN_SCHEMA.split("/")[1]:
            raise PlanFormatError(f"{source}: unsupported plan schema {schema!r} (this SkyGrid reads {PLAN_SCHEMA!r})")
        _check_types(d, source)
        try:
            sorties = []
            for s in d["sorties"]:
                wps = [Waypoint(**w) for w in s["waypoints"]]
                sorties.append(Sortie(**{**s, "waypoints": wps}))
            return cls(
                **{
                    **d,
                    "home": Home(**d["home"]),
                    "grids": [PlannedGrid(**g) for g in d["grids"]],
                    "no_fly": [NoFlyZone(**z) for z in d.get("no_fly", [])],
                    "sorties": sorties,
                }
            )
        except KeyError as e:
            raise PlanFormatError(f"{source}: missing field {e.args[0]!r}") from None
        except TypeError as e:
            raise PlanFormatError(f"{source}: {e}") from None

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise PlanFormatError(f"{p}: cannot read plan: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise PlanFormatError(f"{p}: line {e.lineno} column {e.colno}: invalid JSON: {e.msg}") from None
        return cls.from_dict(data, source=str(p))
