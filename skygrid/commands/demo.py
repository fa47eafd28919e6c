"""`skygrid demo`: a whole simulated patrol over the bundled Keqiao sample county."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

DESCRIPTION = """\
Run a whole simulated patrol, every stage for real on this machine:

  dispatch API + command room (embedded SQLite)  ->  coverage plan of the sample grids
  ->  simulated drones flown by MAVSDK over MAVLink/UDP  ->  camera stream rendered along
  the flight  ->  YOLO (ONNX Runtime) detection, geolocation, incident tracking  ->
  incidents POSTed to the API  ->  joint-inspection tickets  ->  live alerts on the map.

Open the printed command-room URL while it runs. When the patrol ends a summary is
printed; the command room stays up until Ctrl-C (use --headless to exit instead and print
the summary as JSON, e.g. for scripts and CI).
"""


def add_parser(sub: argparse._SubParsersAction, help_text: str) -> None:
    p = sub.add_parser("demo", help=help_text, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    from skygrid.patrol import DEFAULT_MODEL, DEFAULT_SCENARIO

    p.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO, help="scenario YAML (default: %(default)s)")
    p.add_argument("--speed", type=float, default=10.0, help="simulated time per wall second (default: %(default)s; 10 is what MAVSDK keeps up with)")
    p.add_argument("--headless", action="store_true",
                   help="no live display: progress lines on stderr, the JSON summary on stdout, exit when the patrol ends")
    p.add_argument("--seed", type=int, default=None,
                   help="replant the incidents and look-alikes at other positions in the same grids and reseed the "
                        "synthetic world: a different but equivalent patrol (default: the scenario as written)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port of the command room (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: %(default)s)")
    p.add_argument("--udp-base-port", type=int, default=14540, help="MAVSDK listens on this port + drone index (default: %(default)s)")
    p.add_argument("--drones", type=int, default=None, help="number of drones (default: the scenario's)")
    p.add_argument("--grids", default=None, help="comma-separated grid ids to patrol (default: the scenario's)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ONNX detector (default: the shipped model)")
    p.add_argument("--work-dir", type=Path, default=Path("work/demo"), help="database, evidence, plan and flight logs (default: %(default)s)")
    p.add_argument("--fresh", action="store_true", help="delete the work dir's previous database first")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simulators.scenario import ScenarioError
    from skygrid.patrol import PatrolConfig, PatrolRun, PatrolState

    cfg = PatrolConfig(scenario=args.scenario, speed=args.speed, host=args.host, port=args.port,
                       base_udp_port=args.udp_base_port, work_dir=args.work_dir, model=args.model,
                       drones=args.drones, grid_ids=args.grids.split(",") if args.grids else None, seed=args.seed)
    if not cfg.model.exists():
        print(f"error: detector model {cfg.model} not found (train one with `make train`)", file=sys.stderr)
        return 2
    if args.fresh or args.headless:
        for name in ("skygrid.db", "skygrid.db-wal", "skygrid.db-shm"):
            (cfg.work_dir / name).unlink(missing_ok=True)
    state = PatrolState()
    try:
        patrol = PatrolRun(cfg, state)
    except (ScenarioError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.headless:
        stop = threading.Event()
        progress = threading.Thread(target=_progress, args=(state, stop), name="progress", daemon=True)
        progress.start()
        try:
            summary = asyncio.run(patrol.run())
        finally:
            stop.set()
            progress.join(timeout=2)
        print(json.dumps(summary, ensure_ascii=False, indent=1))
        return 0
    return _run_live(patrol, state)


def _progress(state, stop: threading.Event, every_s: float = 5.0) -> None:
    """Headless: one line on stderr per phase change and every ``every_s`` wall seconds while flying."""
    last_phase, last_t = None, 0.0
    while not stop.wait(0.25):
        now = time.monotonic()
        if state.phase == last_phase and now - last_t < every_s:
            continue
        last_phase, last_t = state.phase, now
        drones = " ".join(f"{d}:{t.mission_item or 0}/{t.mission_total or 0}" for d, t in sorted(state.drones.items()))
        print(f"[demo] {state.phase}: frames {state.frames_rendered} (dropped {state.frames_dropped}), "
              f"incidents {state.incidents}, alerts {state.alerts}{'; items ' + drones if drones else ''}",
              file=sys.stderr, flush=True)


def _run_live(patrol, state) -> int:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    result: dict = {}

    def fly() -> None:
        try:
            result["summary"] = asyncio.run(patrol.run(keep_server=True))
        except BaseException as e:  # noqa: BLE001 - reported below
            result["error"] = e

    worker = threading.Thread(target=fly, name="patrol", daemon=True)
    worker.start()
    shown_urls = False
    try:
        with Live(_view(state), console=console, refresh_per_second=4, transient=False) as live:
            while worker.is_alive():
                if state.urls and not shown_urls:
                    shown_urls = True
                    for name, url in state.urls.items():
                        live.console.print(f"[bold green]{name.replace('_', ' ')}[/]: {url}")
                live.update(_view(state))
                time.sleep(0.25)
            live.update(_view(state))
    except KeyboardInterrupt:
        console.print("[yellow]stopping: drones, vision and server…[/]")
        patrol.stop_parts()
        return 130
    if "error" in result:
        patrol.stop_parts()
        console.print(f"[red]patrol failed:[/] {result['error']!r}")
        return 1
    summary = result["summary"]
    console.print_json(json.dumps({k: v for k, v in summary.items() if k != "tickets_detail"}, ensure_ascii=False))
    console.print(f"Patrol finished. The command room stays up at {state.urls.get('command_room')} — Ctrl-C to stop.")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        patrol.stop_parts()
    return 0


def _view(state):
    from rich.console import Group
    from rich.table import Table

    t = Table(title=f"SkyGrid patrol — {state.phase}", expand=False)
    for col in ("drone", "sortie", "item", "mode", "alt m", "speed m/s", "battery %"):
        t.add_column(col)
    for d, r in sorted(state.drones.items()):
        item = f"{r.mission_item}/{r.mission_total}" if r.mission_total else "-"
        t.add_row(d, r.sortie_id or "-", item, r.flight_mode, f"{r.rel_alt_m:.0f}", f"{r.ground_speed_m_s:.1f}", f"{r.battery_pct:.0f}")
    counters = Table.grid(padding=(0, 2))
    counters.add_row("frames analysed", str(state.frames_rendered), "dropped", str(state.frames_dropped),
                     "incidents", str(state.incidents))
    events = Table.grid()
    for e in state.events[-5:]:
        events.add_row(e)
    return Group(t, counters, events)
