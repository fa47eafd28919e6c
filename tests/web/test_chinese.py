"""Chinese everywhere a user looks: a flight replayed into the operator page and the command
room with the executor's real English event messages and PX4 mode names must show no English
mode names, event texts or error messages (issue 15 item 6). Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.web.test_live import G1, _telemetry, small_plan
from tests.web.test_pages import LAUNCH_ARGS, Guard, _page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


#: (flight mode, event kind, the executor's English message, data) in flight order
FLIGHT = [
    ("MISSION", "preflight_ok", "battery 98 %, GPS fix 3 with 14 satellites", {"battery_pct": 98.0}),
    ("MISSION", "mission_started", "mission started from waypoint #0", {"start_index": 0}),
    ("MISSION", "item_reached", "waypoint 5/20", {"item": 4, "total": 20}),
    ("HOLD", "command", "command room: hold", {"action": "hold"}),
    ("HOLD", "hold", "holding position on command", {}),
    ("MISSION", "resumed", "mission resumed on command", {"from_index": 5}),
    ("MISSION", "link_lost", "link lost in phase mission; last reached waypoint #6, mode MISSION", {"mode": "MISSION"}),
    ("MISSION", "link_restored", "link back after 3.2 s: mode MISSION, in air, vehicle mission item 7",
     {"outage_s": 3.2, "mode": "MISSION", "vehicle_item": 7}),
    ("RETURN_TO_LAUNCH", "low_battery", "battery 24 % <= 25 %: returning", {"battery_pct": 24.0, "resume_index": 9}),
    ("RETURN_TO_LAUNCH", "rtl", "return to launch (low battery)", {"reason": "low battery"}),
    ("LAND", "landed", "landed and disarmed", {}),
]
#: what the operator page's event list must read for some of them (waypoints 1-based)
EXPECTED = {"preflight_ok": "起飞前检查通过（电量 98%）", "item_reached": "到达航点 5/20", "hold": "按指挥室指令悬停",
            "resumed": "已续飞（自航点 6）", "link_restored": "数据链恢复（中断 3.2 秒）",
            "low_battery": "电量低，返航（电量 24%）", "landed": "已降落"}
#: English a 飞手 must not meet: mode names and the words of the executor's messages
ENGLISH = re.compile(r"\b(mission|hold|return|launch|land(ed)?|rtl|loiter|takeoff|waypoint|link|battery|"
                     r"command|resumed?|returning|disarmed|armed|satellites|error|failed|unknown)\b", re.I)


def _replay(srv, step: int) -> None:
    mode, kind, message, data = FLIGHT[step]
    rec = _telemetry("d0", *srv.point, item=min(step * 2, 20))
    rec.update(flight_mode=mode, in_air=mode != "LAND", battery_pct=98.0 - 7 * step)
    httpx.post(f"{srv.url}/api/v1/telemetry", headers=srv.h(),
               json={"records": [rec], "events": [{"drone_id": "d0", "wall_time": time.time(), "kind": kind,
                                                   "message": message, "sortie_id": "s0", "data": data}]},
               timeout=10).raise_for_status()


def test_flight_replay_shows_no_english_on_operator_page_and_room(browser, make_server, points, artifacts_dir) -> None:
    srv = make_server()
    srv.point = points[G1]
    httpx.put(f"{srv.url}/api/v1/plan", json=small_plan(points), headers=srv.h()).raise_for_status()
    guard = Guard()
    octx, op = _page(browser, f"{srv.url}/operator?token=tok-operator", guard)
    rctx, room = _page(browser, f"{srv.url}/?token=tok-dispatcher", guard, {"width": 1366, "height": 768})
    try:
        seen_modes, shown = set(), []
        for step in range(len(FLIGHT)):
            _replay(srv, step)
            want = {"MISSION": "航线任务", "HOLD": "悬停", "RETURN_TO_LAUNCH": "返航", "LAND": "降落"}[FLIGHT[step][0]]
            op.wait_for_function(f"document.querySelector('#drone-d0 .mode') && "
                                 f"document.querySelector('#drone-d0 .mode').textContent.startsWith('{want}')",
                                 timeout=30000)
            seen_modes.add(want)
            if FLIGHT[step][1] in EXPECTED:
                zh = EXPECTED[FLIGHT[step][1]]
                op.locator("#drone-d0 .events", has_text=zh).wait_for(timeout=30000)
                shown.append(FLIGHT[step][1])
            for name, page in (("operator", op), ("room", room)):
                text = page.evaluate("document.body.innerText")
                hit = ENGLISH.search(text)
                assert hit is None, f"{name} page shows English {hit.group(0)!r} after {FLIGHT[step][1]}: " \
                                    f"…{text[max(0, hit.start() - 60):hit.end() + 60]}…"
            if FLIGHT[step][1] == "link_restored":
                op.screenshot(path=str(artifacts_dir / "operator_replay_zh.png"))
        assert seen_modes == {"航线任务", "悬停", "返航", "降落"}
        assert set(shown) == set(EXPECTED), shown  # every event read as its Chinese line with its figures
        room.wait_for_function("window.SGROOM.drones.has('d0')", timeout=30000)
        room.screenshot(path=str(artifacts_dir / "room_replay_zh_1366x768.png"))
        # an error answer from the API reads Chinese on the page (409: a command the state refuses)
        msg = op.evaluate("SGZ.errorText({detail: 'illegal transition', code: 'illegal_transition'}, 409)")
        assert not ENGLISH.search(msg) and "工单状态" in msg
        assert guard.outside == [] and guard.errors == []
    finally:
        octx.close()
        rctx.close()
