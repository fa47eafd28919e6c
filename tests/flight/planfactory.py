"""Small hand-made plans for the flight tests (independent of the geo planner)."""

from __future__ import annotations

from geo.plan_schema import Home, NoFlyZone, Plan, PlannedGrid, Sortie, Waypoint
from geo.projection import LocalFrame

HOME = (30.0690, 120.5310)  # near Yangxunqiao, Keqiao


def grid_square(frame: LocalFrame, gid: str, e0: float, n0: float, size: float) -> PlannedGrid:
    pts = [(e0, n0), (e0 + size, n0), (e0 + size, n0 + size), (e0, n0 + size), (e0, n0)]
    ring = [list(map(float, frame.to_wgs84(e, n))) for e, n in pts]
    return PlannedGrid(id=gid, name=gid, rings=[ring], area_m2=size * size)


def lawnmower(frame: LocalFrame, gid: str, e0: float, n0: float, size: float, lines: int,
              alt: float, speed: float, trigger_m: float = 20.0) -> list[Waypoint]:
    """``lines`` east-west lines over a square; camera on along each line."""
    wps: list[Waypoint] = []
    step = size / max(1, lines - 1) if lines > 1 else 0.0
    for i in range(lines):
        n = n0 + i * step
        a, b = (e0, e0 + size) if i % 2 == 0 else (e0 + size, e0)
        for e, cam, kind in ((a, "start_distance", "line_start"), (b, "stop_distance", "line_end")):
            lon, lat = frame.to_wgs84(e, n)
            wps.append(Waypoint(lat=float(lat), lon=float(lon), rel_alt_m=alt, speed_m_s=speed, kind=kind,
                                grid_id=gid, camera=cam, trigger_distance_m=trigger_m if cam == "start_distance" else None))
    return wps


def make_plan(grids_per_drone: list[list[tuple[float, float]]], size: float = 120.0, lines: int = 3,
              alt: float = 40.0, speed: float = 10.0, home: tuple[float, float] = HOME,
              no_fly: bool = False, sorties_per_drone: list[list[int]] | None = None) -> Plan:
    """Each drone's list holds grid origins (east, north) in metres. ``sorties_per_drone``
    splits a drone's grids into sorties by count (default: one sortie with all of them)."""
    frame = LocalFrame(*home)
    grids, sorties = [], []
    for d, origins in enumerate(grids_per_drone):
        split = (sorties_per_drone or [])[d] if sorties_per_drone and d < len(sorties_per_drone) else [len(origins)]
        k = 0
        for si, count in enumerate(split):
            wps: list[Waypoint] = []
            gids = []
            for e0, n0 in origins[k:k + count]:
                gid = f"G{d}{k}"
                gids.append(gid)
                grids.append(grid_square(frame, gid, e0, n0, size))
                wps += lawnmower(frame, gid, e0, n0, size, lines, alt, speed)
                k += 1
            sorties.append(Sortie(id=f"d{d}-s{si}", drone=d, index=si, grid_ids=gids, waypoints=wps,
                                  battery_fraction=0.3))
    nf = []
    if no_fly:
        ring = [list(map(float, frame.to_wgs84(e, n))) for e, n in
                [(-300, -300), (-250, -300), (-250, -250), (-300, -250), (-300, -300)]]
        nf.append(NoFlyZone(id="NF1", name="substation", rings=[ring], buffer_m=20.0))
    return Plan(home=Home(home[0], home[1], 10.0), camera={"preset": "m3e"}, altitude_m=alt, gsd_cm=1.5,
                speed_m_s=speed, side_overlap=0.7, front_overlap=0.8, line_spacing_m=size / max(1, lines - 1),
                trigger_distance_m=20.0, drones=len(grids_per_drone), grids=grids, sorties=sorties, no_fly=nf)
