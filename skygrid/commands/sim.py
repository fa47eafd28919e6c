"""`skygrid sim`: start simulated MAVLink vehicles (or PX4 SITL) for manual use and tests."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
模拟无人机：启动类似 PX4 的仿真多旋翼，在 PX4 SITL 的同一 UDP 端口上讲 MAVLink，
供 `skygrid fly`、QGroundControl 和测试连接。

`skygrid sim vehicle` starts PX4-like simulated multicopters that speak MAVLink on UDP
exactly where PX4 SITL would: vehicle i sends to 127.0.0.1:(BASE_PORT + i), where
MAVSDK listens (udpin://0.0.0.0:14540 for the first), and listens on 14580 + i.
With --qgc each vehicle also sends to QGroundControl's UDP port 14550.
A live table shows each vehicle's mode, position, altitude, battery and mission item.
Ctrl-C (or --duration) stops them cleanly.

`skygrid sim px4` does the same with real PX4 SITL (SIH) when one is built: --px4-dir or
PX4_DIR names the PX4-Autopilot source tree or its build/px4_sitl_default directory (either
works); --instance or PX4_INSTANCE picks the first instance (ports 14540+i, 14580+i, 18570+i).

Examples:
  skygrid sim vehicle --count 2 --speed 10
  skygrid sim vehicle --home 30.0870,120.4950,12 --qgc
  skygrid fly plan.json --connect udpin://0.0.0.0:14540 --connect udpin://0.0.0.0:14541
"""


def _home(text: str) -> tuple[float, float, float]:
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--home must be LAT,LON[,ALT] in degrees/metres, got {text!r}") from None
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"--home must be LAT,LON[,ALT], got {text!r}")
    lat, lon, alt = parts[0], parts[1], parts[2] if len(parts) == 3 else 0.0
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise argparse.ArgumentTypeError(f"--home latitude/longitude out of range: {text!r}")
    return lat, lon, alt


def _positive(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser("sim", help=help_text, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="sim_command", metavar="{vehicle,px4}", required=True)
    for name, what in (("vehicle", "SkyGrid's simulated PX4-like vehicles"), ("px4", "PX4 SITL SIH instances")):
        v = sub.add_parser(name, help=f"start {what}", description=DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        v.add_argument("--home", type=_home, default=(30.0870, 120.4950, 0.0), metavar="LAT,LON[,ALT]",
                       help="launch site, WGS-84 degrees and metres AMSL (default 30.0870,120.4950,0 near Keqiao)")
        v.add_argument("--plan", default=None, metavar="PLAN_JSON",
                       help="launch at this plan's home (WGS-84, as `skygrid plan` stored it; overrides --home) with "
                            "one vehicle per planned drone unless --count says otherwise: the simulator then stands "
                            "where `skygrid fly PLAN_JSON` expects it, whatever CRS the grids came in")
        v.add_argument("--count", type=int, default=None, help="number of vehicles (default 1, or the plan's drones)")
        v.add_argument("--speed", type=_positive, default=1.0, help="sim seconds per wall second (default 1; tests use 10-20)")
        v.add_argument("--duration", type=_positive, default=None, help="stop after this many wall seconds (default: until Ctrl-C)")
        if name == "vehicle":
            v.add_argument("--base-port", type=int, default=14540, help="vehicle i sends to BASE_PORT+i (default 14540)")
            v.add_argument("--listen-base-port", type=int, default=14580, help="vehicle i listens on this+i (default 14580)")
            v.add_argument("--qgc", action="store_true", help="also send to QGroundControl on udp 14550")
            v.add_argument("--max-speed", type=_positive, default=15.0, help="max horizontal speed m/s (default 15)")
            v.add_argument("--wind", default="0,0", metavar="EAST,NORTH", help="wind toward east/north in m/s (default 0,0)")
            v.add_argument("--gps-noise", type=float, default=0.0, help="GPS noise, metres 1-sigma (default 0)")
            v.add_argument("--datalink-loss-rtl", type=_positive, default=None, metavar="S",
                           help="return to launch after S sim seconds without a ground station (default off)")
        else:
            v.add_argument("--px4-dir", default=None,
                           help="PX4_DIR: the PX4-Autopilot source tree (its build/px4_sitl_default is used) or that "
                                "build/px4_sitl_default directory itself (default: $PX4_DIR)")
            v.add_argument("--instance", type=int, default=None, metavar="I",
                           help="first PX4 instance number (default: $PX4_INSTANCE or 0); instance i sends to UDP "
                                "14540+i, listens on 14580+i, ground-station link on 18570+i")
        v.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import time

    from rich.console import Console
    from rich.live import Live

    console = Console()
    if args.plan:
        from geo.plan_schema import Plan, PlanFormatError

        try:
            plan = Plan.load(args.plan)
        except (PlanFormatError, OSError, ValueError) as e:
            console.print(f"[red]错误：{args.plan}：{e}[/]")
            return 2
        args.home = (plan.home.lat, plan.home.lon, plan.home.alt_amsl_m)
        if args.count is None:
            args.count = plan.drones
        console.print(f"起飞点取自计划 {args.plan}：{args.home[0]:.6f}, {args.home[1]:.6f}（WGS-84）")
    if args.count is None:
        args.count = 1
    if args.count < 1:
        console.print(f"[red]错误：--count 至少为 1，收到 {args.count}[/]")
        return 2
    if args.sim_command == "px4":
        return _run_px4(args, console)

    from simulators.vehicle import start_fleet

    try:
        wind_e, wind_n = (float(x) for x in args.wind.split(","))
    except ValueError:
        console.print(f"[red]错误：--wind 应为 东,北 风速（米/秒），收到 {args.wind!r}[/]")
        return 2
    with console.status(f"正在启动 {args.count} 架模拟无人机…"):
        try:
            fleet = start_fleet(args.count, args.home, speed_factor=args.speed, base_port=args.base_port,
                                listen_base_port=args.listen_base_port, max_speed_m_s=args.max_speed,
                                wind_east_m_s=wind_e, wind_north_m_s=wind_n, gps_noise_m=args.gps_noise,
                                datalink_loss_rtl_s=args.datalink_loss_rtl,
                                extra_gcs=[("127.0.0.1", 14550)] if args.qgc else [])
        except OSError as e:
            console.print(f"[red]错误：无法打开 UDP 端口（是否已有 PX4 SITL 或另一个模拟器在运行？）：{e}[/]")
            return 1
    for v in fleet:
        console.print(f"模拟无人机 {v.config.instance}：系统编号 {v.config.system_id}，MAVSDK 连接 "
                      f"[bold]{v.connection_url}[/]，监听 UDP {v.config.listen_port}")
    t0 = time.monotonic()
    try:
        with Live(_table(fleet), console=console, refresh_per_second=4) as live:
            while args.duration is None or time.monotonic() - t0 < args.duration:
                time.sleep(0.25)
                live.update(_table(fleet))
    except KeyboardInterrupt:
        pass
    finally:
        for v in fleet:
            v.stop()
    console.print("模拟无人机已停止")
    return 0


def _table(fleet):
    from rich.table import Table

    from flight.zh import mode_zh

    t = Table(title="SkyGrid 模拟无人机", expand=False)
    for col in ("#", "UDP 发/收", "模拟时间 秒", "飞行模式", "解锁", "纬度", "经度", "高度 米", "速度 米/秒", "电量",
                "航线", "数据链 收/发"):
        t.add_column(col)
    for v in fleet:
        s = v.state
        rx, tx = sum(v.stats.received.values()), sum(v.stats.sent.values())
        t.add_row(str(v.config.instance), f"{v.config.gcs_port}/{v.config.listen_port}", f"{s.time_s:7.1f}", mode_zh(s.mode), "是" if s.armed else "否",
                  f"{s.lat:.6f}", f"{s.lon:.6f}", f"{s.rel_alt_m:5.1f}", f"{s.ground_speed_m_s:4.1f}",
                  f"{s.battery_pct:5.1f}%", f"{s.mission_seq}/{s.mission_count}" + (" 完成" if s.mission_finished else ""),
                  f"{rx}/{tx}" + (" 中断" if v.faults.link_down else ""))
    return t


def _run_px4(args: argparse.Namespace, console) -> int:
    import os
    import time
    from pathlib import Path

    from simulators.px4 import Px4NotAvailable, Px4Sitl, px4_dir_from_env, px4_instance_from_env, px4_ports

    if args.px4_dir:
        os.environ["PX4_DIR"] = args.px4_dir
    try:
        build = px4_dir_from_env()
    except Px4NotAvailable as e:
        console.print(f"[red]{e}[/]")
        return 1
    try:
        first = px4_instance_from_env() if args.instance is None else args.instance
        px4_ports(first)
    except ValueError as e:
        console.print(f"[red]错误：{e}[/]")
        return 2
    lat, lon, alt = args.home
    sitls = [Px4Sitl(Path(build), instance=first + i, home_lat=lat, home_lon=lon, home_alt=alt,
                     speed_factor=args.speed) for i in range(args.count)]
    started = []
    try:
        for s in sitls:
            with console.status(f"正在启动 PX4 SITL 实例 {s.instance}（等待 'Ready for takeoff'）…"):
                s.start()
            started.append(s)
            console.print(f"PX4 实例 {s.instance}：MAVSDK 连接 [bold]{s.connection_url}[/]，日志 {s.log_path}")
        t0 = time.monotonic()
        while args.duration is None or time.monotonic() - t0 < args.duration:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except RuntimeError as e:
        console.print(f"[red]{e}[/]")
        return 1
    finally:
        for s in started:
            s.stop()
    console.print("PX4 已停止")
    return 0
