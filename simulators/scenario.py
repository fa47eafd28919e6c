"""A patrol scenario: where the world is, what is planted in it, and who flies.

Planted objects are ground truth: incidents of the four patrol classes and look-alikes
(hard negatives) at known WGS-84 positions. The synthetic camera renders them; the
end-to-end test and the demo summary score the patrol against them. YAML on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

INCIDENT_KINDS = ("illegal_structure", "straw_burning", "illegal_dumping", "hazmat_fire")
LOOKALIKE_KINDS = ("roof", "cooking_smoke", "haystack", "parked_truck")


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names file, item and field."""


@dataclass(frozen=True)
class PlantedObject:
    id: str
    kind: str  # one of INCIDENT_KINDS or LOOKALIKE_KINDS
    lat: float  # WGS-84 degrees
    lon: float
    heading_deg: float = 0.0
    size_m: float = 10.0  # characteristic length in metres

    @property
    def is_incident(self) -> bool:
        return self.kind in INCIDENT_KINDS


@dataclass
class Scenario:
    name: str
    seed: int
    grids_file: str  # relative to the scenario file
    grids_crs: str = "gcj02"
    no_fly_file: str | None = None
    home_lat: float = 0.0  # WGS-84 launch site
    home_lon: float = 0.0
    ground_alt_m: float = 0.0  # flat ground elevation, m AMSL
    drones: int = 2
    altitude_m: float = 80.0
    speed_m_s: float = 10.0
    camera: str = "m3e"
    #: flight endurance of the vehicles in minutes (the planner's battery model); None = planner default
    endurance_min: float | None = None
    grid_ids: list[str] | None = None  # subset of grids to patrol; None = all
    objects: list[PlantedObject] = field(default_factory=list)
    base_dir: Path = Path(".")

    @property
    def incidents(self) -> list[PlantedObject]:
        return [o for o in self.objects if o.is_incident]

    @property
    def lookalikes(self) -> list[PlantedObject]:
        return [o for o in self.objects if not o.is_incident]

    def path(self, rel: str) -> Path:
        return (self.base_dir / rel).resolve()

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        p = Path(path)
        try:
            raw: dict[str, Any] = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except OSError as e:
            raise ScenarioError(f"{p}: cannot read scenario: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ScenarioError(f"{p}: invalid YAML: {e}") from None
        objects = []
        for i, o in enumerate(raw.pop("objects", []) or []):
            where = f"{p}: objects[{i}]"
            kind = o.get("kind")
            if kind not in INCIDENT_KINDS + LOOKALIKE_KINDS:
                raise ScenarioError(f"{where} (id {o.get('id')!r}): field 'kind' is {kind!r}; expected one of {INCIDENT_KINDS + LOOKALIKE_KINDS}")
            for f in ("id", "lat", "lon"):
                if f not in o:
                    raise ScenarioError(f"{where}: missing field {f!r}")
            objects.append(PlantedObject(**o))
        ids = [o.id for o in objects]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ScenarioError(f"{p}: duplicate object ids {sorted(dup)}")
        home = raw.pop("home", None)
        if home:
            raw["home_lat"], raw["home_lon"] = float(home[0]), float(home[1])
        try:
            return cls(**raw, objects=objects, base_dir=p.parent.resolve())
        except TypeError as e:
            raise ScenarioError(f"{p}: {e}") from None
