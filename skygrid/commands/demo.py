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
全流程模拟巡查：指挥系统、航线规划、仿真无人机、相机画面、识别、工单和告警全部在本机真实运行。

Run a whole simulated patrol, every stage for real on this machine:

  dispatch API + command room (embedded SQLite)  ->  coverage plan of the sample grids
  ->  simulated drones flown by MAVSDK over MAVLink/UDP  ->  camera stream rendered along
  the flight  ->  YOLO (ONNX Runtime) detection, geolocation, incident tracking  ->
  incidents POSTed to the API  ->  joint-inspection tickets  ->  live alerts on the map.

Open the printed command-room URL while it runs. When the patrol ends a summary is
printed; the command room stays up until Ctrl-C (use --headless to exit instead and print
the summary as JSON, e.g. for scripts and CI).
"""


#: patrol phases (PatrolState.phase, machine codes) as the 飞手 reads them
PHASE_ZH = {"starting": "准备中", "planning": "规划航线", "starting dispatch": "启动指挥系统", "starting vision": "启动识别",
            "starting drones": "启动无人机", "flying": "飞行中", "finishing": "收尾", "done": "完成"}


#: the printed links (PatrolState.urls keys)
PAGE_ZH = {"command_room": "指挥室", "operator": "飞手页面", "api_docs": "API 文档"}


def phase_zh(phase: str) -> str:
    return PHASE_ZH.get(phase, phase)


def summary_zh(s: dict) -> list[str]:
    """The patrol summary as Chinese lines for the 飞手 (the JSON keeps its English keys for scripts)."""

    def v(key: str, fmt: str = "{}", none: str = "—") -> str:
        return none if s.get(key) is None else fmt.format(s[key])

    lines = [
        f"巡查场景：{s.get('scenario')}；无人机 {s.get('drones')} 架，{s.get('sorties')} 个架次",
        f"网格覆盖：{s.get('grids_covered')}/{s.get('grids_planned')} 个网格达标，总覆盖率 {v('coverage_ratio', '{:.2%}')}",
        f"问题发现：布设 {s.get('incidents_planted')} 处，发现 {s.get('incidents_found')} 处；"
        f"工单 {s.get('tickets')} 张，其中误报 {s.get('false_tickets')} 张",
        f"定位误差最大 {v('max_position_error_m', '{:.1f} 米')}；画面到告警 95% 分位 {v('frame_to_alert_p95_s', '{:.2f} 秒')}",
        f"模拟时长 {v('sim_time_s', '{:.0f} 秒')}，实际用时 {v('wall_time_s', '{:.0f} 秒')}（{v('speedup', '{:.1f} 倍速')}）；"
        f"分析画面 {s.get('frames_analysed')} 帧，丢弃 {s.get('frames_dropped')} 帧",
    ]
    lines += [f"规划提示：{w}" for w in s.get("plan_warnings") or []]
    return lines


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
        print(f"错误：找不到识别模型 {cfg.model}（用 `make train` 训练一个） detector model not found", file=sys.stderr)
        return 2
    if args.fresh or args.headless:
        for name in ("skygrid.db", "skygrid.db-wal", "skygrid.db-shm"):
            (cfg.work_dir / name).unlink(missing_ok=True)
    state = PatrolState()
    try:
        patrol = PatrolRun(cfg, state)
    except (ScenarioError, OSError, ValueError) as e:
        print(f"错误 error: {e}", file=sys.stderr)
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
        print(f"[demo] {phase_zh(state.phase)}：画面 {state.frames_rendered} 帧（丢弃 {state.frames_dropped}），"
              f"发现 {state.incidents} 处，告警 {state.alerts} 条{'；航点 ' + drones if drones else ''}",
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
                        live.console.print(f"[bold green]{PAGE_ZH.get(name, name.replace('grid_worker', '网格员'))}[/]：{url}")
                live.update(_view(state))
                time.sleep(0.25)
            live.update(_view(state))
    except KeyboardInterrupt:
        console.print("[yellow]正在停止：无人机、识别和指挥系统…[/]")
        patrol.stop_parts()
        return 130
    if "error" in result:
        patrol.stop_parts()
        console.print(f"[red]巡查失败：[/] {result['error']!r}")
        return 1
    summary = result["summary"]
    for line in summary_zh(summary):
        console.print(line)
    console.print(f"完整结果（JSON）：{patrol.cfg.work_dir / 'summary.json'}")
    console.print(f"巡查结束。指挥室仍在运行：{state.urls.get('command_room')}（按 Ctrl-C 退出）")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        patrol.stop_parts()
    return 0


def _view(state):
    from rich.console import Group
    from rich.table import Table

    from flight.zh import mode_zh

    t = Table(title=f"SkyGrid 巡查 — {phase_zh(state.phase)}", expand=False)
    for col in ("无人机", "架次", "航点", "飞行模式", "高度 米", "速度 米/秒", "电量 %"):
        t.add_column(col)
    for d, r in sorted(state.drones.items()):
        item = f"{r.mission_item}/{r.mission_total}" if r.mission_total else "-"
        t.add_row(d, r.sortie_id or "-", item, mode_zh(r.flight_mode) if r.flight_mode else "-", f"{r.rel_alt_m:.0f}", f"{r.ground_speed_m_s:.1f}", f"{r.battery_pct:.0f}")
    counters = Table.grid(padding=(0, 2))
    counters.add_row("已分析画面", str(state.frames_rendered), "丢弃", str(state.frames_dropped),
                     "发现问题", str(state.incidents))
    events = Table.grid()
    for e in state.events[-5:]:
        events.add_row(e)
    return Group(t, counters, events)
