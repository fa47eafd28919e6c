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
    "demo": "run a whole simulated patrol: server, command room, drones, camera, detection, tickets",
    "plan": "import grid polygons and plan coverage routes, sorties and drones",
    "fly": "fly a plan with MAVSDK on one or more drones",
    "sim": "start simulated MAVLink vehicles (for manual use, QGroundControl, tests)",
    "vision": "synthetic data, training, export, detection on images",
    "serve": "run the dispatch API and command room; manage tokens",
    "audit": "verify the dispatch audit log's hash chain",
}

EPILOG = """\
A whole simulated patrol:   skygrid demo            (then open http://127.0.0.1:8000)
Piece by piece:             skygrid serve | skygrid sim vehicle --count 2 |
                            skygrid plan grids.geojson --crs gcj02 --out plan.json |
                            skygrid fly plan.json --connect udpin://127.0.0.1:14540 --connect udpin://127.0.0.1:14541
Each command has its own --help.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skygrid",
        description="SkyGrid: drones in the sky + grid workers on the ground (天上无人机 + 地上网格员).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
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
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
