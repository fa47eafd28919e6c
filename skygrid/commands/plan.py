"""`skygrid plan`: grid polygons in, coverage routes, sorties and drone assignments out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
导入网格（GeoJSON、KML/KMZ、Shapefile，可为 zip），逐网格规划覆盖航线、分配架次与无人机，
写出计划 JSON、QGC .plan、KML 和大疆航线 KMZ。坐标系用 --crs 指明（wgs84、gcj02 或 bd09）。

Import grid polygons (GeoJSON, KML/KMZ or ESRI Shapefile, also zipped), plan a boustrophedon coverage
route per grid at the cheapest sweep angle (concave grids and no-fly holes handled; the
path never leaves the grid nor enters a buffered no-fly zone), chain the grids into one
tour from the launch point, cut it into battery-sized sorties and share them among drones.

Writes the plan JSON that `skygrid fly` reads, and optionally QGroundControl .plan files,
DJI route KMZ (WPML, for DJI Pilot 2 / FlightHub 2), KML and GeoJSON of routes and footprints.

Coordinates: --crs names the datum of the grid file AND of --home. A file that declares
its CRS (GeoJSON "crs" member, shapefile .prj) needs no --crs; one that does not (KML, most
AMap exports) must be told with --crs or SKYGRID_GRIDS_CRS (the same setting `skygrid serve`
reads): GCJ-02 and WGS-84 differ by ~500 m and cannot be told apart from the file alone.
"""

EPILOG = """\
examples:
  skygrid plan examples/keqiao/grids.geojson --crs gcj02 --no-fly examples/keqiao/no_fly.geojson \\
      --home 30.0879584,120.3289584 --drones 2 --out plan.json --qgc plan.plan --kml plan.kml
  skygrid plan grids.shp --gsd 2.5 --camera p4rtk --grids 330603-YXQ-003,330603-YXQ-004 --out plan.json
  skygrid plan grids.kmz --crs gcj02 --camera m3e --skip-bad --out plan.json --dji route.kmz

--qgc / --dji write the named file; a plan of several sorties also writes one file per
sortie next to it (out.d0-s1.plan, out.d1-s1.plan, ...; QGC and DJI hold one flight per file).

A no-fly zone overlapping part of a grid is planned around (a hole) with a warning; a grid
mostly inside a zone, or unreachable from home, is an error naming grid and zone.
"""


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser("plan", help=help_text, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("grids_file", metavar="GRIDS_FILE",
                   help="grid polygons: .geojson/.json, .kml/.kmz, .shp or a zipped shapefile (.zip)")
    p.add_argument("--crs", choices=["wgs84", "gcj02", "bd09"], default=None,
                   help="坐标系 datum of the grid file and of --home (AMap/Tencent gcj02, Baidu bd09, GPS wgs84). "
                        "Default: the file's own declaration, else SKYGRID_GRIDS_CRS; required when neither says")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out a grid that cannot be used (bad outline, missing id) with a warning instead "
                        "of refusing the whole file (no-fly zones are never skipped)")
    p.add_argument("--id-field", default=None, help="property holding the grid id (default: grid_id, id, code, ...)")
    p.add_argument("--grids", default=None, metavar="ID,ID", help="plan only these grid ids (comma separated)")
    alt = p.add_mutually_exclusive_group()
    alt.add_argument("--gsd", type=float, default=None, metavar="CM_PX", help="ground sample distance in cm/px")
    alt.add_argument("--altitude", type=float, default=None, metavar="M",
                     help="flight altitude above ground in metres (default 80)")
    p.add_argument("--camera", default="m3e", help="camera preset (m3e, p4rtk, p1-35mm, m30-wide); default m3e")
    p.add_argument("--side-overlap", type=float, default=0.2, help="side overlap 0..1 (default 0.2)")
    p.add_argument("--front-overlap", type=float, default=0.6, help="front overlap 0..1 (default 0.6)")
    p.add_argument("--speed", type=float, default=10.0, metavar="M_S", help="cruise speed in m/s (default 10)")
    p.add_argument("--no-fly", default=None, metavar="FILE", help="no-fly zones (same formats; property buffer_m)")
    p.add_argument("--no-fly-crs", default=None, choices=["wgs84", "gcj02", "bd09"],
                   help="datum of the no-fly file (default: same as --crs)")
    p.add_argument("--drones", type=int, default=1, help="number of drones sharing the work (default 1)")
    p.add_argument("--home", default=None, metavar="LAT,LON[,ALT]",
                   help="launch point in the grids' CRS (--crs); default: a point inside a grid nearest their "
                        "centre; ALT = metres AMSL")
    p.add_argument("--endurance-min", type=float, default=35.0, help="flight minutes per battery (default 35)")
    p.add_argument("--reserve", type=float, default=0.2, help="battery fraction kept in reserve (default 0.2)")
    p.add_argument("--edge-margin", type=float, default=0.0, metavar="M",
                   help="how far in metres the path may stray outside a grid (default 0)")
    p.add_argument("--max-no-fly-fraction", type=float, default=None, metavar="F",
                   help="strict mode: a grid with at least this fraction (0..1) inside one buffered no-fly zone "
                        "is an error. Default: no limit, the zone is planned around as a hole and the plan "
                        "warns how much of the grid is left unimaged; only a grid entirely inside a zone fails")
    p.add_argument("--authorised-airspace", action="store_true",
                   help="allow altitudes above 120 m AGL (only with an airspace approval)")
    p.add_argument("--out", required=True, metavar="PLAN_JSON", help="plan JSON to write (read by `skygrid fly`)")
    p.add_argument("--qgc", default=None, metavar="OUT.plan",
                   help="QGroundControl plan: this file, plus one per sortie when there are several")
    p.add_argument("--dji", default=None, metavar="OUT.kmz",
                   help="DJI route KMZ (WPML) for Pilot 2 / FlightHub 2 (cameras m3e, m30-wide, p1-35mm): this "
                        "file, plus one per sortie when there are several")
    p.add_argument("--kml", default=None, metavar="OUT.kml", help="KML of grids, routes and footprints")
    p.add_argument("--geojson", default=None, metavar="OUT.geojson", help="GeoJSON of grids, routes and footprints")
    p.set_defaults(func=run)
    return p


def _parse_home(text: str | None, grids, crs: str, no_fly=()) -> tuple[tuple[float, float, float], str | None]:
    """(lat, lon, alt) WGS-84 of the launch point, and how to name it in messages.

    ``--home`` is read in the grids' CRS (what the 飞手 copied from the same map) and
    converted; the label keeps the user's own numbers so an error points at them.
    """
    from geo.crs import to_wgs84
    from geo.planner import default_home

    if text is None:
        lat, lon = default_home(grids, no_fly)
        return (lat, lon, 0.0), None
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--home {text!r}: expected LAT,LON[,ALT] in degrees (and metres)") from None
    if len(parts) not in (2, 3) or not (-90 <= parts[0] <= 90 and -180 <= parts[1] <= 180):
        raise ValueError(f"--home {text!r}: expected LAT,LON[,ALT] with lat within ±90 and lon within ±180")
    lon, lat = to_wgs84(parts[1], parts[0], crs)
    return (float(lat), float(lon), parts[2] if len(parts) == 3 else 0.0), f"{text} ({crs})"


def run(args: argparse.Namespace) -> int:
    import warnings

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from geo.camera import get_camera
    from geo.export_dji import DjiExportError, dji_model, write_dji_kmz
    from geo.grids import GridImportError, load_grids, load_no_fly, resolve_crs, select_grids
    from geo.outputs import write_geojson, write_kml, write_qgc_plan
    from geo.planner import PlanningError, plan_patrol

    console = Console(stderr=True)
    out = Console()
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            crs = resolve_crs(args.grids_file, args.crs)
            grids = load_grids(args.grids_file, crs=crs, id_field=args.id_field, skip_bad=args.skip_bad)
            grids = select_grids(grids, [s.strip() for s in args.grids.split(",") if s.strip()] if args.grids else None)
            no_fly = []
            if args.no_fly:
                nf_crs = resolve_crs(args.no_fly, args.no_fly_crs or args.crs, "--no-fly-crs")
                no_fly = load_no_fly(args.no_fly, crs=nf_crs)
            camera = get_camera(args.camera)
            if args.dji:
                dji_model(camera.name)  # refuse an unsupported camera before planning
            home, home_label = _parse_home(args.home, grids, crs, no_fly)
            with Progress(TextColumn("规划网格 planning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console, transient=True) as prog:
                task = prog.add_task("plan", total=len(grids))
                plan = plan_patrol(
                    grids, home=home, camera=camera, altitude_m=args.altitude, gsd_cm=args.gsd,
                    speed_m_s=args.speed, side_overlap=args.side_overlap, front_overlap=args.front_overlap,
                    drones=args.drones, no_fly=no_fly, edge_margin_m=args.edge_margin,
                    endurance_s=args.endurance_min * 60.0, reserve=args.reserve,
                    authorised_airspace=args.authorised_airspace, max_no_fly_fraction=args.max_no_fly_fraction,
                    progress=lambda done, total: prog.update(task, completed=done, total=total),
                    source=str(args.grids_file), home_label=home_label,
                )
    except (GridImportError, PlanningError, DjiExportError, KeyError, ValueError) as e:
        for w in caught:
            console.print(f"[yellow]警告：[/] {w.message}")
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        console.print(f"[red]错误：[/] {msg}")
        return 1
    for w in caught:
        console.print(f"[yellow]警告：[/] {w.message}")

    for target in (args.out, args.qgc, args.dji, args.kml, args.geojson):
        if target:  # a fresh work folder is normal: make it instead of failing with a traceback
            Path(target).parent.mkdir(parents=True, exist_ok=True)
    plan.save(args.out)
    written = [args.out]
    notes = []
    if args.qgc:
        paths = write_qgc_plan(plan, args.qgc)
        written.append(str(paths[0]))
        if len(paths) > 1:
            notes.append(f"QGC 每个文件只装一个架次：{paths[0]} 为第一个架次，另按架次写出 "
                         + "、".join(str(p) for p in paths[1:]))
    if args.dji:
        paths = write_dji_kmz(plan, args.dji)
        written.append(str(paths[0]))
        if len(paths) > 1:
            notes.append(f"大疆航线每个 KMZ 一个架次：{paths[0]} 为第一个架次，另按架次写出 "
                         + "、".join(str(p) for p in paths[1:]))
    if args.kml:
        written.append(str(write_kml(plan, args.kml)))
    if args.geojson:
        written.append(str(write_geojson(plan, args.geojson)))

    table = Table(title=f"SkyGrid 巡查计划：{len(plan.grids)} 个网格，航高 {plan.altitude_m:.0f} 米（相对起飞点），"
                        f"地面分辨率 {plan.gsd_cm:.2f} 厘米/像素，航线间距 {plan.line_spacing_m:.0f} 米")
    for col in ("无人机", "架次", "网格数", "公里", "分钟", "电量", "航点"):
        table.add_column(col, justify="right" if col not in ("架次", "网格数") else "left")
    for d in range(plan.drones):
        for s in plan.sorties_for(d):
            table.add_row(f"d{d}", s.id, str(len(s.grid_ids)), f"{s.distance_m / 1000:.2f}", f"{s.duration_s / 60:.1f}",
                          f"{s.battery_fraction:.0%}", str(len(s.waypoints)))
    area = sum(g.area_m2 for g in plan.grids)
    cov = sum(g.area_m2 * g.coverage_ratio for g in plan.grids) / area if area else 0.0
    makespan = max((sum(s.duration_s for s in plan.sorties_for(d)) for d in range(plan.drones)), default=0.0)
    table.add_section()
    table.add_row("合计", f"{len(plan.sorties)} 个架次", str(len(plan.grids)),
                  f"{sum(s.distance_m for s in plan.sorties) / 1000:.2f}",
                  f"{sum(s.duration_s for s in plan.sorties) / 60:.1f}", "", str(sum(len(s.waypoints) for s in plan.sorties)))
    out.print(table)
    for n in notes:
        out.print(n)
    out.print(f"覆盖率 {cov:.2%}（共 {area / 1e6:.3f} 平方公里）· 单机最长飞行 {makespan / 60:.1f} 分钟 · "
              f"已写出 {'、'.join(written)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(add_parser(argparse.ArgumentParser().add_subparsers(), "plan").parse_args()))
