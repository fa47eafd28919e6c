"""Regenerate the bundled sample county (Yangxunqiao street, Keqiao district, Shaoxing).

The grid cells are synthetic but shaped like a county export: one polygon per village
block, shared (notched) borders so some cells are concave, drawn on an AMap basemap and
therefore stored in GCJ-02. Run: ``python examples/keqiao/generate.py`` (deterministic).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from geo.crs import wgs84_to_gcj02
from geo.projection import LocalFrame

HERE = Path(__file__).resolve().parent
ORIGIN = (30.0885, 120.3190)  # WGS-84 lat, lon of the south-west corner of the block
COLS, ROWS = 6, 6
CELL_W, CELL_H = 320.0, 280.0  # metres

VILLAGES = ["杨汛村", "江桥村", "麒麟村", "桃源村", "新建村", "浦联村"]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = ["建国", "海燕", "志强", "秀英", "伟", "丽娟", "国平", "晓峰", "春梅", "立新", "红霞", "永康"]


def build() -> None:
    rng = random.Random(20261123)
    frame = LocalFrame(*ORIGIN)
    # jittered lattice of corner points shared by neighbouring cells
    corners = {}
    for i in range(COLS + 1):
        for j in range(ROWS + 1):
            jx = 0.0 if i in (0, COLS) else rng.uniform(-40, 40)
            jy = 0.0 if j in (0, ROWS) else rng.uniform(-35, 35)
            corners[i, j] = (i * CELL_W + jx, j * CELL_H + jy)
    # every interior edge gets a notch vertex shared by both sides (makes concave cells)
    notch = {}

    def edge_mid(a, b):
        key = (min(a, b), max(a, b))
        if key not in notch:
            (x1, y1), (x2, y2) = corners[key[0]], corners[key[1]]
            mx, my = (x1 + x2) / 2, (y1 + y2) / 2
            boundary = (key[0][0] == key[1][0] and key[0][0] in (0, COLS)) or (
                key[0][1] == key[1][1] and key[0][1] in (0, ROWS)
            )
            if boundary or rng.random() < 0.45:
                notch[key] = None
            else:
                dx, dy = x2 - x1, y2 - y1
                length = (dx * dx + dy * dy) ** 0.5
                off = rng.choice([-1, 1]) * rng.uniform(45, 85)
                notch[key] = (mx - dy / length * off, my + dx / length * off)
        return notch[key]

    features = []
    n = 0
    for j in range(ROWS):
        for i in range(COLS):
            ring = []
            for a, b in (((i, j), (i + 1, j)), ((i + 1, j), (i + 1, j + 1)), ((i + 1, j + 1), (i, j + 1)), ((i, j + 1), (i, j))):
                ring.append(corners[a])
                m = edge_mid(a, b)
                if m is not None:
                    ring.append(m)
            ring.append(ring[0])
            xs, ys = np.array(ring).T
            lon, lat = frame.to_wgs84(xs, ys)
            glon, glat = wgs84_to_gcj02(lon, lat)
            n += 1
            village = VILLAGES[(j // 2) * 2 + (i // 3)] if (j // 2) * 2 + (i // 3) < len(VILLAGES) else VILLAGES[-1]
            worker = rng.choice(SURNAMES) + rng.choice(GIVEN)
            features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "grid_id": f"330603-YXQ-{n:03d}",
                        "name": f"{village}第{(n - 1) % 6 + 1}网格",
                        "township": "杨汛桥街道",
                        "village": village,
                        "grid_worker": worker,
                        "grid_worker_phone": f"1385{rng.randrange(10**6, 10**7)}",
                        "area_type": "town" if j >= 2 and 1 <= i <= 4 else "countryside",
                    },
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[round(float(a), 7), round(float(b), 7)] for a, b in zip(glon, glat, strict=True)]],
                    },
                }
            )
    # the "crs" member declares the datum, so `skygrid plan`/`serve` need no --crs for this file
    gcj = {"type": "name", "properties": {"name": "gcj02"}}
    fc = {"type": "FeatureCollection", "crs": gcj, "name": "杨汛桥街道网格 (GCJ-02, AMap export)", "features": features}
    (HERE / "grids.geojson").write_text(json.dumps(fc, ensure_ascii=False, indent=1), encoding="utf-8")

    # a substation no-fly zone (circle of 110 m) inside the block
    cx, cy = 2.55 * CELL_W, 3.4 * CELL_H
    ang = np.linspace(0, 2 * np.pi, 25)
    lon, lat = frame.to_wgs84(cx + 110 * np.cos(ang), cy + 110 * np.sin(ang))
    glon, glat = wgs84_to_gcj02(lon, lat)
    nf = {
        "type": "FeatureCollection",
        "crs": gcj,
        "features": [
            {
                "type": "Feature",
                "properties": {"zone_id": "NFZ-01", "name": "杨汛桥110kV变电站", "buffer_m": 20},
                "geometry": {"type": "Polygon", "coordinates": [[[round(float(a), 7), round(float(b), 7)] for a, b in zip(glon, glat, strict=True)]]},
            }
        ],
    }
    (HERE / "no_fly.geojson").write_text(json.dumps(nf, ensure_ascii=False, indent=1), encoding="utf-8")
    hl, hb = frame.to_wgs84(3.0 * CELL_W, -60.0)
    print(f"launch site (WGS-84): {hb:.6f}, {hl:.6f}")


if __name__ == "__main__":
    build()


def _plant(rng: random.Random, polys: dict, grid_ids: list[str], kinds: list[str], prefix: str, taken: list) -> list[dict]:
    """Random WGS-84 points inside the chosen grids, >= 25 m from edges and 60 m apart."""
    from shapely.geometry import Point

    from geo.crs import gcj02_to_wgs84

    frame = LocalFrame(*ORIGIN)
    objs = []
    for k, kind in enumerate(kinds):
        gid = grid_ids[k % len(grid_ids)]
        ring = np.array(polys[gid].exterior.coords)
        lon, lat = gcj02_to_wgs84(ring[:, 0], ring[:, 1])
        from shapely.geometry import Polygon

        local = Polygon(np.column_stack(frame.to_local(lon, lat))).buffer(-25)
        minx, miny, maxx, maxy = local.bounds
        while True:
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if local.contains(Point(x, y)) and all((x - a) ** 2 + (y - b) ** 2 > 60**2 for a, b in taken):
                break
        taken.append((x, y))
        plon, plat = frame.to_wgs84(x, y)
        size = {"illegal_structure": 14, "straw_burning": 16, "illegal_dumping": 10, "hazmat_fire": 14,
                "roof": 12, "cooking_smoke": 6, "haystack": 5, "parked_truck": 10}[kind]
        objs.append({"id": f"{prefix}-{k + 1:02d}-{kind}", "kind": kind, "lat": round(float(plat), 7),
                     "lon": round(float(plon), 7), "heading_deg": round(rng.uniform(0, 180), 1), "size_m": size})
    return objs


def scenarios() -> None:
    import yaml
    from shapely.geometry import shape

    fc = json.loads((HERE / "grids.geojson").read_text(encoding="utf-8"))
    polys = {f["properties"]["grid_id"]: shape(f["geometry"]) for f in fc["features"]}
    incidents = ["illegal_structure", "straw_burning", "illegal_dumping", "hazmat_fire"]
    lookalikes = ["roof", "cooking_smoke", "haystack", "parked_truck"]
    hl, hb = LocalFrame(*ORIGIN).to_wgs84(3.0 * CELL_W, -60.0)
    common = {"grids_file": "grids.geojson", "grids_crs": "gcj02", "no_fly_file": "no_fly.geojson",
              "home": [round(hb, 7), round(hl, 7)], "ground_alt_m": 8.0, "altitude_m": 80.0,
              "speed_m_s": 10.0, "camera": "m3e",
              # the simulated vehicle's pack lasts ~24 min at 10 m/s (simulators.vehicle.physics)
              "endurance_min": 22.0}
    rng = random.Random(7)
    ci_grids = ["330603-YXQ-003", "330603-YXQ-004", "330603-YXQ-009", "330603-YXQ-010"]
    taken: list = []
    ci = {"name": "keqiao-ci", "seed": 11, **common, "drones": 2, "grid_ids": ci_grids,
          "objects": _plant(rng, polys, ci_grids, incidents, "inc", taken) + _plant(rng, polys, ci_grids, lookalikes, "look", taken)}
    (HERE / "scenario-ci.yaml").write_text("# End-to-end CI scenario: 4 grids, 2 drones, one incident of each class + 4 look-alikes.\n"
                                           + yaml.safe_dump(ci, allow_unicode=True, sort_keys=False), encoding="utf-8")
    rng = random.Random(8)
    demo_grids = sorted(polys)[:18]
    taken = []
    demo = {"name": "keqiao-demo", "seed": 23, **common, "drones": 2, "grid_ids": demo_grids,
            "objects": _plant(rng, polys, demo_grids, incidents * 2, "inc", taken) + _plant(rng, polys, demo_grids, lookalikes * 2, "look", taken)}
    (HERE / "scenario.yaml").write_text("# Demo scenario (`skygrid demo`): the southern half of Yangxunqiao's grids, 2 drones,\n# two incidents of each class and two of each look-alike.\n"
                                        + yaml.safe_dump(demo, allow_unicode=True, sort_keys=False), encoding="utf-8")


if __name__ == "__main__":
    scenarios()
