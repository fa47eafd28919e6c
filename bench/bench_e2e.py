"""End-to-end patrol benchmark: the CI scenario flown headless, every stage real.

Reports frame-to-alert latency (frame captured -> ticket alert received on the live
WebSocket; target p95 <= 2 s) and the simulated speed-up over real time (target >= 10x),
plus the patrol's quality figures. These speed figures are not asserted by
tests/e2e/test_patrol.py, which checks behaviour only (every reported incident alerted).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from skygrid.patrol import ROOT, PatrolConfig, PatrolRun


def run() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = PatrolConfig(scenario=ROOT / "examples" / "keqiao" / "scenario-ci.yaml", speed=10.0, port=0,
                           base_udp_port=0, work_dir=Path(tmp))
        s = asyncio.run(PatrolRun(cfg).run())
    rows = [
        ("frame-to-alert p95 (s)", "≤ 2", s["frame_to_alert_p95_s"]),
        ("incidents alerted live / reported", "all", f"{s['incidents_alerted']} / {s['incidents_reported']}"),
        ("speed-up over real time", "≥ 10×", s["speedup"]),
        ("grids covered / planned", "all", f"{s['grids_covered']} / {s['grids_planned']}"),
        ("coverage ratio", "≥ 0.995", s["coverage_ratio"]),
        ("incidents found / planted", "all", f"{s['incidents_found']} / {s['incidents_planted']}"),
        ("tickets (false)", "= planted (0)", f"{s['tickets']} ({s['false_tickets']})"),
        ("max position error (m)", "", s["max_position_error_m"]),
        ("frames analysed (dropped)", "", f"{s['frames_analysed']} ({s['frames_dropped']})"),
        ("simulated / wall time (s)", "", f"{s['sim_time_s']} / {s['wall_time_s']}"),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    return (
        "## End-to-end patrol (scenario-ci: 4 grids, 2 drones, 4 incidents + 4 look-alikes)\n\n"
        "`PatrolRun` with the dispatch server, two simulated vehicles flown by MAVSDK at 10×, the synthetic camera, "
        "ONNX detection and the live WebSocket, all on this machine.\n\n"
        "| figure | target | measured |\n|---|---|---|\n" + table + "\n"
    )


if __name__ == "__main__":
    print(run())
