"""`skygrid` command line: one sub-command per pipeline piece, plus `demo`.

Each sub-command lives in ``skygrid/commands/<name>.py`` with ``add_parser(subparsers)``
and ``run(args) -> int``; modules are imported only when their command runs, so
``skygrid --help`` stays fast and heavy libraries load only where needed.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, str] = {
    "demo": "全流程模拟巡查 run a whole simulated patrol: server, command room, drones, camera, detection, tickets",
    "plan": "导入网格、规划航线 import grid polygons and plan coverage routes, sorties and drones",
    "fly": "执行飞行计划 fly a plan with MAVSDK on one or more drones",
    "sim": "模拟无人机 start simulated MAVLink vehicles (for manual use, QGroundControl, tests)",
    "vision": "识别模型：数据、训练、检测 synthetic data, training, export, detection on images",
    "serve": "指挥系统服务与令牌 run the dispatch API and command room; manage tokens",
    "audit": "审计日志校验 verify the dispatch audit log's hash chain",
}

EPILOG = """\
全流程演示 A whole simulated patrol:   skygrid demo   （然后打开 then open http://127.0.0.1:8000）
分步运行 Piece by piece:   skygrid serve | skygrid sim vehicle --count 2 |
                           skygrid plan grids.geojson --crs gcj02 --out plan.json |
                           skygrid fly plan.json --connect udpin://127.0.0.1:14540 --connect udpin://127.0.0.1:14541
每个子命令都有自己的 --help（Each command has its own --help）。
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skygrid",
        description="SkyGrid：天上无人机 + 地上网格员（drones in the sky + grid workers on the ground）。",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="显示版本 print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        try:
            module = importlib.import_module(f"skygrid.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"skygrid.commands.{name}":
                raise
            continue
        module.add_parser(sub, help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from skygrid import __version__

        print(f"skygrid {__version__}")
        return 0
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("已中断 interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
