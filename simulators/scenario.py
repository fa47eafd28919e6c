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


def reseed(scenario: Scenario, seed: int, *, edge_m: float = 25.0, apart_m: float = 60.0) -> Scenario:
    """The same patrol with another world: a different but equivalent scenario for ``seed``.

    Every planted object keeps its kind, size and grid but moves to a random position in
    that grid, at least ``edge_m`` metres inside its border and outside every no-fly zone's
    buffer, and at least ``apart_m`` metres from the others (the rules ``examples/keqiao/
    generate.py`` planted the shipped scenarios by); headings are redrawn and the synthetic
    world (land cover, light, textures) takes ``seed``. Deterministic in ``seed``: an honest
    unseen-seed run of the demo. Raises :class:`ScenarioError` when an object lies in no
    grid of the scenario or its grid has no room left.
    """
    import dataclasses
    import random

    import numpy as np
    import shapely
    from shapely.geometry import Point
    from shapely.ops import unary_union

    from geo.grids import load_grids, load_no_fly
    from geo.projection import LocalFrame

    rng = random.Random(seed)
    frame = LocalFrame(scenario.home_lat, scenario.home_lon)

    def local(geom):
        return shapely.transform(geom, lambda xy: np.column_stack(frame.to_local(xy[:, 0], xy[:, 1])))

    grids = load_grids(scenario.path(scenario.grids_file), crs=scenario.grids_crs)
    if scenario.grid_ids is not None:
        grids = [g for g in grids if g.id in set(scenario.grid_ids)]
    zones = (load_no_fly(scenario.path(scenario.no_fly_file), crs=scenario.grids_crs)
             if scenario.no_fly_file else [])
    forbidden = unary_union([local(z.polygon).buffer(z.buffer_m + edge_m) for z in zones]) if zones else None
    taken: list[tuple[float, float]] = []
    moved = []
    for o in scenario.objects:
        grid = next((g for g in grids if g.polygon.contains(Point(o.lon, o.lat))), None)
        if grid is None:
            raise ScenarioError(f"scenario {scenario.name}: object {o.id} lies in none of its grids; cannot reseed")
        room = local(grid.polygon).buffer(-edge_m)
        if forbidden is not None:
            room = room.difference(forbidden)
        minx, miny, maxx, maxy = room.bounds
        for _ in range(10_000):
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if room.contains(Point(x, y)) and all((x - a) ** 2 + (y - b) ** 2 > apart_m**2 for a, b in taken):
                break
        else:
            raise ScenarioError(f"scenario {scenario.name}: no room for object {o.id} in grid {grid.id} (seed {seed})")
        taken.append((x, y))
        lon, lat = frame.to_wgs84(x, y)
        moved.append(dataclasses.replace(o, lat=round(float(lat), 7), lon=round(float(lon), 7),
                                         heading_deg=round(rng.uniform(0.0, 180.0), 1)))
    return dataclasses.replace(scenario, name=f"{scenario.name}-seed{seed}", seed=seed, objects=moved)
