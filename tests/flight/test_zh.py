"""The Chinese a 飞手 reads: every flight event kind the code emits has a label, the CLI
(flight/zh.py) and the pages (office.js) use the same tables, and the summaries of
`plan`, `fly`, `sim` and `demo` carry no English words beyond units and names."""

from __future__ import annotations

import ast
import re

import pytest

from flight.zh import FLIGHT_EVENT, FLIGHT_MODE, event_zh, mode_zh
from tests.conftest import ROOT

OFFICE_JS = ROOT / "dispatch" / "web" / "static" / "office.js"
ASCII_WORD = re.compile(r"[A-Za-z]{3,}")


def emitted_kinds() -> set[str]:
    """Kinds passed to Emitter.event(state, kind, ...) / Executor._event(kind, ...) anywhere."""
    kinds = set()
    for pkg in ("flight", "skygrid"):
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr in ("event", "_event"):
                    pos = 0 if node.func.attr == "_event" else 1
                    if len(node.args) > pos and isinstance(node.args[pos], ast.Constant) \
                            and isinstance(node.args[pos].value, str):
                        kinds.add(node.args[pos].value)
    return kinds


def js_table(name: str) -> dict[str, str]:
    text = OFFICE_JS.read_text(encoding="utf-8")
    body = re.search(rf"Z\.{name} = \{{(.*?)\}};", text, re.S)
    assert body, f"office.js has no Z.{name}"
    return dict(re.findall(r"([A-Za-z_]+):\s*\"([^\"]*)\"", body.group(1)))


def test_every_emitted_event_kind_has_a_chinese_label():
    kinds = emitted_kinds()
    assert {"item_reached", "link_lost", "low_battery", "turnaround"} <= kinds  # the scan finds them
    assert not sorted(kinds - set(FLIGHT_EVENT)), "event kinds without a Chinese label in flight/zh.py"


def test_pages_and_cli_share_the_tables():
    assert js_table("FLIGHT_EVENT") == FLIGHT_EVENT
    assert js_table("FLIGHT_MODE") == FLIGHT_MODE


@pytest.mark.parametrize("table", [FLIGHT_EVENT, FLIGHT_MODE])
def test_labels_are_chinese(table):
    for code, label in table.items():
        assert not ASCII_WORD.search(label) and re.search(r"[\u4e00-\u9fff]", label), (code, label)


def test_event_lines_carry_their_figures():
    assert event_zh("item_reached", {"item": 4, "total": 20}) == "到达航点 5/20"
    assert event_zh("low_battery", {"battery_pct": 23.6, "resume_index": 9}) == "电量低，返航（电量 24%）"
    assert event_zh("link_restored", {"outage_s": 3.21}) == "数据链恢复（中断 3.2 秒）"
    assert event_zh("command", {"action": "rtl"}) == "收到指挥室指令：返航"
    assert event_zh("failsafe", {"mode": "RETURN_TO_LAUNCH"}) == "触发失控保护：返航"
    assert event_zh("something_new", {}) == "飞行事件"
    assert event_zh("preflight_failed", {"problems": ["a", "b"], "problems_zh": ["电量未知", "GPS 卫星 4 颗，少于 6 颗"]}) \
        == "起飞前检查未通过：电量未知；GPS 卫星 4 颗，少于 6 颗"
    assert mode_zh("mission") == "航线任务" and mode_zh(None) == "未知" and mode_zh("WEIRD") == "其他模式"


def test_demo_summary_reads_chinese():
    from skygrid.commands.demo import phase_zh, summary_zh

    s = {"scenario": "柯桥", "drones": 2, "sorties": 3, "grids_covered": 4, "grids_planned": 4, "coverage_ratio": 0.9987,
         "incidents_planted": 6, "incidents_found": 6, "tickets": 6, "false_tickets": 0, "max_position_error_m": 7.31,
         "frame_to_alert_p95_s": 1.234, "sim_time_s": 1800.0, "wall_time_s": 180.0, "speedup": 10.0,
         "frames_analysed": 900, "frames_dropped": 3, "plan_warnings": []}
    lines = summary_zh(s)
    assert "总覆盖率 99.87%" in lines[1] and "发现 6 处" in lines[2] and "7.3 米" in lines[3]
    assert not any(ASCII_WORD.search(line) for line in lines), lines
    assert phase_zh("flying") == "飞行中"


def test_sim_table_and_fly_table_read_chinese():
    from types import SimpleNamespace

    from rich.console import Console

    from skygrid.commands import fly, sim

    st = SimpleNamespace(time_s=1.0, mode="RTL", armed=True, lat=30.0, lon=120.0, rel_alt_m=50.0, ground_speed_m_s=5.0,
                         battery_pct=80.0, mission_seq=3, mission_count=9, mission_finished=False)
    vehicle = SimpleNamespace(state=st, config=SimpleNamespace(instance=0, gcs_port=14540, listen_port=14580),
                              stats=SimpleNamespace(received={}, sent={}), faults=SimpleNamespace(link_down=True))
    drone = SimpleNamespace(drone_id="d0", state="returning", sortie_id="s1", sortie_no=1, sorties_total=2, item=3,
                            items_total=9, battery_pct=40.0, flight_mode="RETURN_TO_LAUNCH", connected=False,
                            last_event=event_zh("low_battery", {"battery_pct": 24.0}))
    for table in (sim._table([vehicle]), fly._table(SimpleNamespace(status={"d0": drone}))):
        console = Console(width=200, record=True)
        console.print(table)
        text = console.export_text()
        words = set(ASCII_WORD.findall(text)) - {"SkyGrid", "UDP"}
        assert not words, f"English in a 飞手's table: {sorted(words)}\n{text}"
        assert "返航" in text
