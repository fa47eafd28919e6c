"""`skygrid fly`: fly a plan on one or more MAVLink vehicles with MAVSDK."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DESCRIPTION = """\
按航线计划飞行：每个架次在真实或仿真的 MAVLink 无人机上执行（起飞前检查、上传航线与电子围栏、
失联续飞、低电量返航并重新规划剩余部分）；--report-to 把遥测送往指挥室并接收返航/悬停/继续指令。

Fly every sortie of a plan (from `skygrid plan`) on real or simulated MAVLink vehicles.

Drone k of the plan flies on the k-th --connect URL (d0, d1, ...); with fewer URLs than
planned drones, the extra drones' sorties are queued on the connected ones. For each
sortie: wait for health, pre-flight checks (battery, GPS, home inside the patrol area,
distance to the first waypoint), upload mission + geofence, verify by download, arm,
start, monitor. With --report-to the plan is uploaded first (PUT /api/v1/plan) so the command room shows
its routes. A lost link is waited for and the mission continued from the last
reached waypoint; a low battery returns the drone and re-plans the rest as a follow-up
sortie; command-room orders (rtl / hold / resume) arrive via --report-to.
"""

EPILOG = """\
examples:
  skygrid fly plan.json --connect udpin://0.0.0.0:14540
  skygrid fly plan.json --connect udpin://0.0.0.0:14540 --connect udpin://0.0.0.0:14541 \\
      --report-to http://127.0.0.1:8000 --token $SKYGRID_OPERATOR_TOKEN --log-dir work/flightlogs
"""


def add_parser(subparsers: argparse._SubParsersAction, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "fly", help=help_text, description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("plan", type=Path, help="plan JSON written by `skygrid plan`")
    p.add_argument("--connect", action="append", metavar="URL", required=True,
                   help="MAVSDK connection URL per drone, e.g. udpin://0.0.0.0:14540 (repeat for more drones)")
    p.add_argument("--report-to", metavar="URL", help="dispatch base URL to stream telemetry to and take orders from")
    p.add_argument("--token", help="operator bearer token for --report-to (or env SKYGRID_TOKEN)")
    p.add_argument("--log-dir", type=Path, default=Path("work/flightlogs"),
                   help="one JSON-lines flight log per sortie goes here (default: work/flightlogs)")
    p.add_argument("--telemetry-hz", type=float, default=5.0, help="telemetry records per wall second (default 5)")
    p.add_argument("--low-battery", type=float, default=20.0, metavar="PCT",
                   help="return and re-plan the rest when the battery falls to this (default 20)")
    p.add_argument("--mission-capacity", type=int, default=2000,
                   help="MAVLink mission items the vehicle holds (PX4 with SD card: 2000)")
    p.add_argument("--turnaround", type=float, default=0.0, metavar="S",
                   help="seconds to wait on the ground between sorties (battery swap)")
    p.add_argument("--swap-timeout", type=float, default=600.0, metavar="S",
                   help="wait this long for a fresh battery between sorties (default 600)")
    p.add_argument("--no-geofence", action="store_true", help="do not upload the geofence")
    p.add_argument("--camera-mode", choices=["distance", "interval"], default="distance",
                   help="camera trigger by distance (default) or photo interval")
    p.add_argument("--summary", type=Path, help="write the per-drone summary JSON here")
    p.add_argument("--quiet", action="store_true", help="no live display")
    p.set_defaults(func=run)
    return p


#: what the 飞手 reads: PX4 flight modes and sortie outcomes in Chinese (one table: flight.zh)
STATUS_ZH = {"done": "完成", "aborted": "中止", "failed": "失败"}


def _table(fleet):  # -> rich Table
    from rich.table import Table

    from flight.zh import mode_zh, state_zh

    t = Table(title="SkyGrid 机队", expand=True)
    for col in ("无人机", "状态", "架次", "航点", "电量", "飞行模式", "数据链", "最近事件"):
        t.add_column(col, overflow="fold")
    for s in fleet.status.values():
        item = f"{(s.item or 0)}/{s.items_total}" if s.items_total else "-"
        bat = f"{s.battery_pct:.0f} %" if s.battery_pct is not None else "-"
        t.add_row(
            s.drone_id, state_zh(s.state), f"{s.sortie_id or '-'} ({s.sortie_no}/{s.sorties_total})", item, bat,
            mode_zh(s.flight_mode) if s.flight_mode else "-", "正常" if s.connected else "中断",
            s.last_event[-80:],
        )
    return t


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import os

    from rich.console import Console
    from rich.live import Live

    from flight.executor import FlightConfig
    from flight.fleet import Fleet
    from geo.plan_schema import Plan, PlanFormatError

    console = Console(stderr=True)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        plan = Plan.load(args.plan)
    except PlanFormatError as e:
        console.print(f"[red]错误:[/red] {e}")
        return 2
    if not plan.sorties:
        console.print(f"[red]错误:[/red] {args.plan}: 计划中没有架次 (the plan has no sorties)")
        return 2
    cfg = FlightConfig(
        telemetry_hz=args.telemetry_hz, low_battery_pct=args.low_battery, mission_capacity=args.mission_capacity,
        upload_geofence=not args.no_geofence, camera_mode=args.camera_mode,
    )
    # refuse over-capacity sorties before touching any vehicle
    from flight.mission import MissionBuildError, MissionCapacityError, build_mission

    for s in plan.sorties:
        try:
            build_mission(s, None, capacity=cfg.mission_capacity, fence=False, camera_mode=cfg.camera_mode)
        except (MissionCapacityError, MissionBuildError) as e:
            console.print(f"[red]错误:[/red] {args.plan}: {e}")
            return 2
    listeners = []
    reporter = None
    if args.report_to:
        from flight.reporting import DispatchReporter

        token = args.token or os.environ.get("SKYGRID_TOKEN")
        if not token:
            console.print("[red]错误:[/red] --report-to 需要 --token（或环境变量 SKYGRID_TOKEN）")
            return 2
        from flight.reporting import upload_plan

        why = upload_plan(args.report_to, token, plan.to_dict())
        if why:
            console.print(f"[yellow]warning:[/yellow] 航线未上传到指挥室（{why}）；飞行照常进行")
        else:
            console.print(f"已上传计划到指挥室：{len(plan.grids)} 个网格，{len(plan.sorties)} 个架次")
        reporter = DispatchReporter(args.report_to, token)
        listeners.append(reporter)
    fleet = Fleet(plan, args.connect, listeners=listeners, log_dir=args.log_dir, config=cfg,
                  turnaround_s=args.turnaround, swap_timeout_s=args.swap_timeout)

    async def main() -> dict:
        task = asyncio.create_task(fleet.run())
        if args.quiet:
            return await task
        with Live(_table(fleet), console=console, refresh_per_second=4) as live:
            while not task.done():
                live.update(_table(fleet))
                await asyncio.sleep(0.25)
            live.update(_table(fleet))
        console.print()
        return task.result()

    try:
        results = asyncio.run(main())
    finally:
        if reporter is not None:
            reporter.close()
    summary = {did: r.to_dict() for did, r in results.items()}
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    for did, r in results.items():
        colour = {"done": "green", "aborted": "yellow"}.get(r.status, "red")
        console.print(f"[{colour}]无人机 {did}：{STATUS_ZH.get(r.status, r.status)}[/{colour}]，"
                      f"已完成架次 {r.completed or '—'}"
                      + (f"；未飞架次 {r.unflown}" if r.unflown else "") + (f"；原因：{r.error_zh or r.error}" if r.error else ""))
    console.print(f"飞行日志目录：{args.log_dir}（可在指挥室“巡查回放”页面回放）")
    return 0 if all(r.status == "done" and not r.unflown for r in results.values()) else 1
