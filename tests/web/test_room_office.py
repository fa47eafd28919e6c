"""The command room as a county office (issue 15 items 4-6) in headless chromium at 1366x768:
a P0 on top with its banner after a reload, search / filters / closed cases / CSV and Excel
export, 派单 / 考核 / 标记重复 dialogs with the action buttons in view, the grid worker's
evidence and photos before/after in the room, the statistics, print and replay pages.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from tests.web.test_live import G1, G2, G3
from tests.web.test_pages import WORKER, Guard, _evidence_b64, _page

pytestmark = pytest.mark.browser
VIEW = {"width": 1366, "height": 768}
LATIN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@pytest.fixture(scope="module")
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    from tests.web.test_pages import LAUNCH_ARGS

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


def _act(srv, tid: int, action: str, token: str = "tok-dispatcher", **kw) -> dict:
    r = httpx.post(f"{srv.url}/api/v1/tickets/{tid}/actions", json={"action": action, **kw},
                   headers=srv.h(token), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _photo(srv, tid: int, token: str = "tok-dispatcher", color=(60, 160, 60)) -> None:
    ok, jpg = cv2.imencode(".jpg", np.full((90, 120, 3), color, np.uint8))
    r = httpx.post(f"{srv.url}/api/v1/tickets/{tid}/photos", headers=srv.h(token), timeout=10,
                   files={"file": ("p.jpg", jpg.tobytes(), "image/jpeg")}, data={"caption": "已清理"})
    assert r.status_code == 201, r.text


def test_p0_on_top_with_banner_after_reload_and_sound_prompt(browser, make_server, points, artifacts_dir) -> None:
    srv = make_server()
    low = srv.ingest("illegal_structure", *points[G1], "o-1")["ticket_id"]
    mid = srv.ingest("straw_burning", *points[G1], "o-2")["ticket_id"]
    p0 = srv.ingest("hazmat_fire", *points[G2], "o-3", evidence=_evidence_b64())["ticket_id"]
    newer = srv.ingest("illegal_dumping", *points[G1], "o-4")["ticket_id"]  # newest, yet below the P0
    guard = Guard()
    ctx, page = _page(browser, f"{srv.url}/?token=tok-dispatcher", guard, VIEW)
    try:
        page.wait_for_selector("#p0-alert.on", timeout=30000)  # open before the page loaded: still alarms
        assert f"#{p0}" in page.locator("#p0-alert").inner_text()
        ids = page.eval_on_selector_all("#tickets li[data-id]", "els => els.map(e => Number(e.dataset.id))")
        assert ids == [p0, mid, newer, low]
        assert page.evaluate("SGZ.sounds").count(0) >= 1
        prompt = page.locator("#sound-enable")
        assert prompt.count() == 1 and "启用提示音" in prompt.inner_text()
        page.screenshot(path=str(artifacts_dir / "room_p0_on_load.png"))
        page.reload()
        page.wait_for_selector("body[data-ready='1']", timeout=30000)
        page.wait_for_selector("#p0-alert.on", timeout=30000)  # and again after a reload
        assert page.locator("#tickets li[data-id]").first.get_attribute("data-id") == str(p0)
        # a fresh P0 goes on top of the older one; a P2 beeps its own pattern
        p0b = srv.ingest("hazmat_fire", *points[G3], "o-5")["ticket_id"]
        page.wait_for_function(f"document.querySelector('#tickets li[data-id]').dataset.id === '{p0b}'", timeout=30000)
        page.wait_for_function(f"document.getElementById('p0-alert').textContent.includes('#{p0b}')", timeout=30000)
        srv.ingest("illegal_dumping", *points[G2], "o-6")
        page.wait_for_function("SGZ.sounds.includes(2)", timeout=30000)
        page.locator("#p0-alert").click()
        page.wait_for_function("!document.getElementById('p0-alert').classList.contains('on')", timeout=30000)
        page.wait_for_selector("#panel-status", timeout=30000)
        # drones: labelled with their id and mode in Chinese, the whole track kept
        from tests.web.test_live import _telemetry

        lat, lon = points[G2]
        for k in range(5):
            httpx.post(f"{srv.url}/api/v1/telemetry", headers=srv.h("tok-operator"),
                       json={"records": [_telemetry("d7", lat + 0.0004 * k, lon, k)]}).raise_for_status()
        page.wait_for_function("window.SGROOM.drones.has('d7') && SGROOM.drones.get('d7').track.getLatLngs().length >= 5",
                               timeout=30000)
        label = page.locator(".leaflet-tooltip.drone-label").first.inner_text()
        assert label.startswith("d7") and "航线任务" in label and "MISSION" not in label
        page.screenshot(path=str(artifacts_dir / "room_p0_after_reload_1366x768.png"))
        assert guard.outside == [] and guard.errors == []
    finally:
        ctx.close()


def test_search_filters_closed_cases_and_exports(browser, make_server, points, artifacts_dir) -> None:
    srv = make_server()
    straw = srv.ingest("straw_burning", *points[G1], "f-1")["ticket_id"]
    dump = srv.ingest("illegal_dumping", *points[G2], "f-2")["ticket_id"]
    done = srv.ingest("illegal_structure", *points[G1], "f-3")["ticket_id"]
    for a in ("sign", "route", "arrive"):
        _act(srv, done, a)
    _photo(srv, done)
    _act(srv, done, "resolve")
    _act(srv, done, "assess", score=88)
    guard = Guard()
    ctx, page = _page(browser, f"{srv.url}/?token=tok-dispatcher", guard, VIEW)
    try:
        page.wait_for_selector(f"#tickets li[data-id='{dump}']", timeout=30000)
        ids = lambda: page.eval_on_selector_all("#tickets li[data-id]", "els => els.map(e => Number(e.dataset.id))")  # noqa: E731
        assert set(ids()) == {straw, dump}
        page.select_option("#f-class", "illegal_dumping")
        page.wait_for_function("document.getElementById('ticket-count').textContent.includes('查询结果')", timeout=30000)
        page.wait_for_function(f"[...document.querySelectorAll('#tickets li[data-id]')].map(e => +e.dataset.id).join() === '{dump}'",
                               timeout=30000)
        page.click("#reset-filters")
        page.fill("#f-q", f"#{straw}")
        page.wait_for_function(f"[...document.querySelectorAll('#tickets li[data-id]')].map(e => +e.dataset.id).join() === '{straw}'",
                               timeout=30000)
        page.click("#reset-filters")
        page.select_option("#f-grid", G2)
        page.wait_for_function(f"[...document.querySelectorAll('#tickets li[data-id]')].map(e => +e.dataset.id).join() === '{dump}'",
                               timeout=30000)
        page.click("#reset-filters")
        page.click(".filters .tab[data-view='closed']")  # the closed-case list
        page.wait_for_function(f"[...document.querySelectorAll('#tickets li[data-id]')].map(e => +e.dataset.id).join() === '{done}'",
                               timeout=30000)
        assert "考核办结" in page.locator(f"#tickets li[data-id='{done}']").inner_text()
        page.screenshot(path=str(artifacts_dir / "room_closed_cases.png"))
        page.click(".filters .tab[data-view='all']")
        page.wait_for_function("document.querySelectorAll('#tickets li[data-id]').length === 3", timeout=30000)
        with page.expect_download() as dl:
            page.click("#export-csv")
        rows = list(csv.reader(io.StringIO(Path(dl.value.path()).read_bytes().decode("utf-8-sig"))))
        assert rows[0][0] == "工单号" and sorted(int(r[0]) for r in rows[1:]) == sorted([straw, dump, done])
        assert dl.value.suggested_filename.endswith(".csv")
        with page.expect_download() as dl:
            page.click("#export-xlsx")
        from openpyxl import load_workbook

        ws = load_workbook(io.BytesIO(Path(dl.value.path()).read_bytes())).active
        assert dl.value.suggested_filename.endswith(".xlsx")
        vals = list(ws.values)
        assert vals[0][0] == "工单号" and len(vals) == 4
        assert 88 in [v for row in vals for v in row]  # the 考核 score travels with the export
        assert guard.outside == [] and guard.errors == []
    finally:
        ctx.close()


def test_dispatch_assess_and_mark_duplicate_dialogs(browser, make_server, points, artifacts_dir) -> None:
    srv = make_server()
    a = srv.ingest("straw_burning", *points[G1], "d-1", evidence=_evidence_b64())["ticket_id"]
    _act(srv, a, "sign")
    b_id = None
    guard = Guard()
    ctx, page = _page(browser, f"{srv.url}/?token=tok-dispatcher", guard, VIEW)
    try:
        page.wait_for_selector(f"#tickets li[data-id='{a}']", timeout=30000)
        page.click(f"#tickets li[data-id='{a}']")
        page.wait_for_selector("#panel ul.history li", timeout=30000)  # the detail has loaded
        btn = page.locator("#panel button[data-action='route']")
        box = btn.bounding_box()
        assert box and box["y"] + box["height"] <= VIEW["height"], box  # in view without scrolling
        btn.click()
        page.wait_for_selector("dialog#dlg[open]", timeout=30000)
        page.select_option("#route-department", "agriculture")
        page.fill("#route-assignee", "李农技")
        page.fill("#route-deadline", "2030-01-02T09:30")
        page.fill("#route-instructions", "到场核实火点并拍照")
        page.screenshot(path=str(artifacts_dir / "room_dispatch_dialog.png"))
        page.click("#dlg-ok")
        page.wait_for_function(f"SGROOM.tickets.get({a}).status === 'routed'", timeout=30000)
        t = httpx.get(f"{srv.url}/api/v1/tickets/{a}", headers=srv.h("tok-dispatcher")).json()
        assert t["assignment"]["department"] == "agriculture" and t["assignment"]["assignee"] == "李农技"
        assert t["assignment"]["instructions"] == "到场核实火点并拍照"
        assert t["assignment"]["deadline"].startswith("2030-01-02T")
        page.wait_for_function("document.getElementById('panel').textContent.includes('李农技')", timeout=30000)
        _act(srv, a, "arrive")
        # 处置完毕 without a photo: a Chinese message, never the API's English
        page.wait_for_function(f"SGROOM.tickets.get({a}).status === 'handling'", timeout=30000)
        page.click("#panel button[data-action='resolve']")
        page.wait_for_selector("dialog#dlg[open]", timeout=30000)
        page.click("#dlg-ok")
        page.wait_for_function("document.getElementById('dlg-error').textContent.length > 0", timeout=30000)
        msg = page.locator("#dlg-error").inner_text()
        assert "现场照片" in msg and not (set(msg) & LATIN), msg
        ok, jpg = cv2.imencode(".jpg", np.full((60, 80, 3), 90, np.uint8))
        page.set_input_files("#resolve-photo", files=[{"name": "p.jpg", "mimeType": "image/jpeg", "buffer": jpg.tobytes()}])
        page.click("#dlg-ok")
        page.wait_for_function(f"SGROOM.tickets.get({a}).status === 'supervising'", timeout=30000)
        page.click("#panel button[data-action='assess']")
        page.wait_for_selector("dialog#dlg[open]", timeout=30000)
        page.fill("#assess-score", "")
        page.click("#dlg-ok")
        page.wait_for_function("document.getElementById('dlg-error').textContent.includes('考核得分')", timeout=30000)
        page.fill("#assess-score", "92")
        page.fill("#assess-comment", "处置及时")
        page.click("#dlg-ok")
        page.wait_for_function(f"SGROOM.tickets.get({a}).status === 'closed' && SGROOM.tickets.get({a}).score === 92",
                               timeout=30000)
        # 标记重复: a later report of the same fire (new ticket: the old one is closed) picks it from the list
        b_id = srv.ingest("straw_burning", *points[G1], "d-2")["ticket_id"]
        page.wait_for_selector(f"#tickets li[data-id='{b_id}']", timeout=30000)
        page.click(f"#tickets li[data-id='{b_id}']")
        page.locator("#panel button[data-action='mark_duplicate']").click()
        page.wait_for_selector(f"#dup-list input[value='{a}']", timeout=30000)
        page.fill("#dup-comment", "同一处焚烧")
        page.screenshot(path=str(artifacts_dir / "room_duplicate_dialog.png"))
        page.click("#dlg-ok")
        page.wait_for_function(f"SGROOM.tickets.get({b_id}).status === 'duplicate'", timeout=30000)
        assert httpx.get(f"{srv.url}/api/v1/tickets/{b_id}", headers=srv.h("tok-dispatcher")).json()["duplicate_of"] == a
        # the history reads in Chinese verbs
        page.click(".filters .tab[data-view='all']")
        page.wait_for_selector(f"#tickets li[data-id='{a}']", timeout=30000)
        page.click(f"#tickets li[data-id='{a}']")
        page.wait_for_selector("#panel ul.history li", timeout=30000)
        hist = page.locator("#panel ul.history").inner_text()
        for verb in ("发现并立案", "签收", "派单", "到场处置", "上传现场照片", "处置完毕", "考核办结", "92 分"):
            assert verb in hist, (verb, hist)
        assert not any(w in hist for w in ("transition", "photo", "route", "assess"))
        assert guard.outside == [] and guard.errors == []
    finally:
        ctx.close()


def test_worker_sees_drone_evidence_and_room_shows_before_after(browser, make_server, points, artifacts_dir) -> None:
    srv = make_server(extra_tokens=WORKER)
    t = srv.ingest("illegal_dumping", *points[G1], "ba-1", evidence=_evidence_b64())["ticket_id"]
    for a in ("sign", "route"):
        _act(srv, t, a)
    guard = Guard()
    wctx, phone = _page(browser, f"{srv.url}/worker?token=tok-worker", guard, {"width": 390, "height": 844})
    rctx, room = _page(browser, f"{srv.url}/?token=tok-dispatcher", guard, VIEW)
    try:
        card = phone.locator(f".tcard[data-id='{t}']")
        card.wait_for(timeout=30000)
        phone.wait_for_function(f"document.querySelector('.tcard[data-id=\"{t}\"] img.evidence')?.naturalWidth === 160",
                                timeout=30000)
        assert card.locator("svg.minimap polygon").count() >= 1 and card.locator("svg.minimap circle.spot").count() == 1
        phone.screenshot(path=str(artifacts_dir / "worker_evidence_map.png"))
        card.locator("button[data-do='arrive']").click()
        room.wait_for_function(f"SGROOM.tickets.get({t}) && SGROOM.tickets.get({t}).status === 'handling'", timeout=30000)
        # resolving without a photo is refused in Chinese; with one it goes through
        phone.locator(f".tcard[data-id='{t}'] button[data-do='resolve']").click()
        phone.wait_for_function("document.getElementById('toast').textContent.includes('现场照片')", timeout=30000)
        assert not (set(phone.locator("#toast").inner_text()) & LATIN)
        ok, jpg = cv2.imencode(".jpg", np.full((120, 160, 3), (40, 180, 40), np.uint8))
        card = phone.locator(f".tcard[data-id='{t}']")
        card.locator("input[type=file]").set_input_files(files=[{"name": "after.jpg", "mimeType": "image/jpeg",
                                                                 "buffer": jpg.tobytes()}])
        card.locator("textarea").fill("垃圾已清运")
        card.locator("button[data-do='resolve']").click()
        room.wait_for_function(f"SGROOM.tickets.get({t}).status === 'supervising'", timeout=30000)
        room.click(f"#tickets li[data-id='{t}']")
        room.wait_for_function("document.querySelector('#panel .before img.evidence')?.dataset.loaded === '1' && "
                               "document.querySelector('#panel .after img.photo')?.dataset.loaded === '1'", timeout=30000)
        assert room.evaluate("document.querySelector('#panel .before img.evidence').naturalWidth") == 160
        assert "垃圾已清运" in room.locator("#panel .after").inner_text()
        room.screenshot(path=str(artifacts_dir / "room_before_after_1366x768.png"))
        assert guard.outside == [] and guard.errors == []
    finally:
        wctx.close()
        rctx.close()


def test_statistics_print_and_replay_pages(browser, make_server, points, artifacts_dir, tmp_path) -> None:
    from flight.flightlog import FlightLog
    from flight.records import FlightEvent, Telemetry

    srv = make_server()
    t1 = srv.ingest("straw_burning", *points[G1], "s-1", evidence=_evidence_b64())["ticket_id"]
    t2 = srv.ingest("illegal_dumping", *points[G2], "s-2")["ticket_id"]
    for tid in (t1, t2):
        for a in ("sign", "route", "arrive"):
            _act(srv, tid, a)
    _photo(srv, t1)
    _act(srv, t1, "resolve")
    _act(srv, t1, "assess", score=90)
    guard = Guard()
    ctx, page = _page(browser, f"{srv.url}/stats?token=tok-dispatcher", guard, VIEW)
    try:
        assert page.locator("svg.chart").count() == 6
        assert page.locator("svg.chart rect.bar").count() > 10
        assert page.locator("#kpi-tickets b").inner_text() == "2"
        assert page.locator("#kpi-score b").inner_text() == "90"
        assert "到场" in page.locator("#charts").inner_text()
        assert not page.locator("pre").count()  # charts and tables, not raw JSON
        page.screenshot(path=str(artifacts_dir / "stats_1366x768.png"), full_page=True)
        # a printable sheet with the evidence images
        page.goto(f"{srv.url}/print?id={t1},{t2}")
        page.wait_for_selector("body[data-ready='1']", timeout=30000)
        assert page.locator(".sheet").count() == 2
        assert page.evaluate("document.querySelector('.sheet img.evidence').naturalWidth") == 160
        assert page.locator(".sheet img.photo").count() == 1
        assert "90 分" in page.locator(f".sheet[data-id='{t1}']").inner_text()
        page.emulate_media(media="print")
        assert page.locator("header.bar").is_hidden()
        page.screenshot(path=str(artifacts_dir / "print_sheet.png"), full_page=True)
        page.emulate_media(media="screen")
        # patrol replay from a flight log
        log = tmp_path / "d0_s1.jsonl"
        fl = FlightLog(log, "d0", "s1")
        lat, lon = points[G1]
        t0 = time.time()
        for k in range(40):
            fl.on_telemetry(Telemetry("d0", k, t0 + k, lat + 0.0002 * k, lon + 0.0001 * k, 120, 100, 0, 0, 90, 9.5,
                                      90 - k * 0.5, "MISSION" if k < 35 else "RETURN_TO_LAUNCH", True, True, "s1", k, 40))
        fl.on_event(FlightEvent("d0", t0 + 35, "rtl", "return to launch (battery)", lat, lon))
        fl.close()
        page.goto(f"{srv.url}/replay")
        page.wait_for_selector("body[data-ready='1']", timeout=30000)
        page.set_input_files("#log-file", str(log))
        page.wait_for_function("window.SGREPLAY.data && SGREPLAY.data.points.length === 40", timeout=30000)
        page.locator("#replay-slider").fill("36")
        page.wait_for_function("SGREPLAY.i === 36", timeout=30000)
        now = page.locator("#replay-now").inner_text()
        assert "返航" in now and "RETURN" not in now
        assert "返航" in page.locator("#replay-events").inner_text()
        page.screenshot(path=str(artifacts_dir / "replay_1366x768.png"))
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"type": "header", "schema": "other/9"}\n{"type": "telemetry"}\n', encoding="utf-8")
        page.set_input_files("#log-file", str(bad))
        page.wait_for_function("document.getElementById('replay-error').textContent.length > 0", timeout=30000)
        assert "飞行日志" in page.locator("#replay-error").inner_text()
        assert guard.outside == [] and guard.errors == []
    finally:
        ctx.close()
