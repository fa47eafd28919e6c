"""The pages in a real headless browser (Debian's chromium driven by Playwright) against the
real dispatch app: nothing fetched beyond loopback, an ingested incident on the map and in
the list, a P0 alert, a grid worker's transition reaching the command room, the operator
view's drone progress and RTL command. Screenshots go to test-artifacts/."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import cv2
import httpx
import numpy as np
import pytest

from geo.crs import wgs84_to_bd09, wgs84_to_gcj02
from tests.web.test_live import G1, G2, _telemetry, small_plan

pytestmark = pytest.mark.browser

LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
WORKER = {"tok-worker": {"role": "grid_worker", "name": "王网格", "grid_ids": [G1]}}


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


class Guard:
    """Blocks and records every request that is not to 127.0.0.1 (pages, XHR, WebSocket)."""

    def __init__(self) -> None:
        self.outside: list[str] = []
        self.errors: list[str] = []

    def attach(self, context, page) -> None:  # noqa: ANN001 - playwright objects
        def route(r) -> None:  # noqa: ANN001
            host = urlparse(r.request.url).hostname
            if r.request.url.startswith("data:") or host == "127.0.0.1":
                r.continue_()
            else:
                self.outside.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page.on("websocket", lambda ws: None if urlparse(ws.url).hostname == "127.0.0.1" else self.outside.append(ws.url))
        page.on("request", lambda req: None if req.url.startswith("data:") or urlparse(req.url).hostname == "127.0.0.1"
                else self.outside.append(req.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


def _page(browser, url: str, guard: Guard, viewport: dict | None = None):  # noqa: ANN001
    # bypass_csp: Playwright's wait_for_function evaluates strings, which the pages' CSP forbids
    # (tests/web/test_security_pages.py checks the pages under their real CSP)
    context = browser.new_context(viewport=viewport or {"width": 1400, "height": 860}, locale="zh-CN",
                                  bypass_csp=True)
    page = context.new_page()
    guard.attach(context, page)
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    return context, page


def _evidence_b64() -> dict:
    img = np.full((120, 160, 3), (40, 90, 200), np.uint8)
    cv2.circle(img, (80, 60), 30, (0, 60, 255), -1)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return {"content_type": "image/jpeg", "data_b64": base64.b64encode(buf.tobytes()).decode()}


def test_command_room_live_map_list_panel_and_p0_alert(browser, make_server, points, artifacts_dir) -> None:
    srv = make_server()
    httpx.put(f"{srv.url}/api/v1/plan", json=small_plan(points), headers=srv.h()).raise_for_status()
    guard = Guard()
    ctx, page = _page(browser, f"{srv.url}/?token=tok-dispatcher", guard)
    try:
        assert "token" not in page.url  # moved to localStorage
        # the JavaScript port of geo/crs.py's forward formulas agrees with the Python ones
        for lat, lon in [points[G1], (39.9087, 116.3975), (22.54, 114.06), (48.85, 2.35)]:
            js_g = page.evaluate(f"SG.wgs84ToGcj02({lon}, {lat})")
            js_b = page.evaluate(f"SG.gcj02ToBd09(...SG.wgs84ToGcj02({lon}, {lat}))")
            assert np.allclose(js_g, wgs84_to_gcj02(lon, lat), atol=1e-9)
            assert np.allclose(js_b, wgs84_to_bd09(lon, lat), atol=1e-9)
        assert page.locator(".leaflet-overlay-pane path").count() > 30  # grid polygons drawn
        # an incident ingested over the API appears in the list and as a coloured marker
        t = srv.ingest("straw_burning", *points[G1], "page-1", evidence=_evidence_b64())
        item = page.locator(f"#tickets li[data-id='{t['ticket_id']}']")
        item.wait_for(timeout=30000)
        assert "秸秆焚烧" in item.inner_text()
        assert "剩余" in item.locator(".sla").inner_text()
        page.locator("path.incident-straw_burning").first.wait_for(timeout=30000)
        # drone telemetry draws a drone and its track
        lat, lon = points[G2]
        for k in range(3):
            httpx.post(f"{srv.url}/api/v1/telemetry", headers=srv.h(),
                       json={"records": [_telemetry("d0", lat + 0.0005 * k, lon, k)]}).raise_for_status()
        page.wait_for_function("window.SGROOM.drones.has('d0') && window.SGROOM.drones.get('d0').track.getLatLngs().length >= 3",
                               timeout=30000)
        # the ticket panel: evidence image, position and error circle, departments, actions
        item.click()
        page.wait_for_selector("#panel img.evidence", timeout=30000)
        page.wait_for_function("document.querySelector('#panel img.evidence').naturalWidth === 160", timeout=30000)
        panel = page.locator("#panel").inner_text()
        assert "生态环境分局" in panel and "误差圈" in panel and "GCJ-02" in panel
        page.locator("#panel button[data-action='sign']").click()
        page.wait_for_function(f"window.SGROOM.tickets.get({t['ticket_id']}).status === 'analyzing'", timeout=30000)
        page.screenshot(path=str(artifacts_dir / "command_room.png"))
        # a P0 (hazmat fire) flashes and beeps
        p0 = srv.ingest("hazmat_fire", *points[G2], "page-p0")
        page.wait_for_selector("#p0-alert.on", timeout=30000)
        assert str(p0["ticket_id"]) in page.locator("#p0-alert").inner_text()
        assert page.evaluate("SG.beeps") >= 1
        assert page.evaluate("document.body.classList.contains('p0-flash')")
        page.screenshot(path=str(artifacts_dir / "command_room_p0.png"))
        assert guard.outside == [] and guard.errors == []
    finally:
        ctx.close()


def test_worker_transition_shows_up_in_the_command_room(browser, make_server, points, artifacts_dir) -> None:
    srv = make_server(extra_tokens=WORKER)
    mine = srv.ingest("illegal_dumping", *points[G1], "w-1")
    other = srv.ingest("illegal_dumping", *points[G2], "w-2")  # not in the worker's grid
    for action in ("sign", "route"):
        srv.act(mine["ticket_id"], action)
    guard = Guard()
    rctx, room = _page(browser, f"{srv.url}/?token=tok-dispatcher", guard)
    wctx, phone = _page(browser, f"{srv.url}/worker?token=tok-worker", guard, {"width": 390, "height": 844})
    try:
        card = phone.locator(f".tcard[data-id='{mine['ticket_id']}']")
        card.wait_for(timeout=30000)
        assert phone.locator(f".tcard[data-id='{other['ticket_id']}']").count() == 0
        amap = card.locator("a.nav-amap").get_attribute("href")
        assert amap.startswith("https://uri.amap.com/marker?position=") and "coordinate=gaode" in amap
        assert card.locator("a.nav-geo").get_attribute("href").startswith("geo:30.")
        card.locator("button[data-do='accept']").click()
        phone.wait_for_function("document.getElementById('toast').textContent === '已接单'", timeout=30000)
        card.locator("button[data-do='arrive']").click()
        room.wait_for_function(f"window.SGROOM.tickets.get({mine['ticket_id']}).status === 'handling'", timeout=30000)
        room_item = room.locator(f"#tickets li[data-id='{mine['ticket_id']}']")
        assert "处置" in room_item.inner_text()
        # photo + note from the phone
        card = phone.locator(f".tcard[data-id='{mine['ticket_id']}']")
        ok, jpg = cv2.imencode(".jpg", np.full((40, 60, 3), 128, np.uint8))
        card.locator("textarea").fill("现场垃圾约两车，已联系环卫")
        card.locator("input[type=file]").set_input_files(files=[{"name": "p.jpg", "mimeType": "image/jpeg",
                                                                 "buffer": jpg.tobytes()}])
        card.locator("button[data-do='report']").click()
        phone.wait_for_function("document.getElementById('toast').textContent === '已提交'", timeout=30000)
        detail = httpx.get(f"{srv.url}/api/v1/tickets/{mine['ticket_id']}", headers=srv.h("tok-dispatcher")).json()
        kinds = [e["kind"] for e in detail["events"]]
        assert "photo" in kinds and any("已接单" in (e["comment"] or "") for e in detail["events"])
        phone.screenshot(path=str(artifacts_dir / "worker_phone.png"))
        phone.locator(f".tcard[data-id='{mine['ticket_id']}'] button[data-do='resolve']").click()
        room.wait_for_function(f"window.SGROOM.tickets.get({mine['ticket_id']}).status === 'supervising'",
                               timeout=30000)
        room.screenshot(path=str(artifacts_dir / "command_room_after_worker.png"))
        assert guard.outside == [] and guard.errors == []
    finally:
        wctx.close()
        rctx.close()


def test_operator_view_progress_and_rtl(browser, make_server, points, artifacts_dir) -> None:
    srv = make_server()
    httpx.put(f"{srv.url}/api/v1/plan", json=small_plan(points), headers=srv.h()).raise_for_status()
    guard = Guard()
    ctx, page = _page(browser, f"{srv.url}/operator?token=tok-operator", guard)
    try:
        assert "s0" in page.locator("#sorties").inner_text()
        httpx.post(f"{srv.url}/api/v1/telemetry", headers=srv.h(),
                   json={"records": [_telemetry("d0", *points[G1], item=10)],
                         "events": [{"drone_id": "d0", "wall_time": time.time(), "kind": "item_reached",
                                     "message": "到达航点 10", "sortie_id": "s0"}]}).raise_for_status()
        card = page.locator("#drone-d0")
        page.wait_for_function("document.querySelector('#drone-d0 .item').textContent === '10 / 20'", timeout=30000)
        assert card.locator(".progress > div").evaluate("e => e.style.width") == "50%"
        assert "到达航点 10" in card.locator(".events").inner_text()
        page.on("dialog", lambda d: d.accept())
        card.locator("button[data-abort='1']").click()
        page.wait_for_function("document.querySelectorAll('#cmds tbody tr').length >= 1", timeout=30000)
        cmds = httpx.get(f"{srv.url}/api/v1/drones/commands?drone_id=d0&after=0", headers=srv.h()).json()["commands"]
        assert [c["action"] for c in cmds] == ["rtl"] and cmds[0]["note"] == "中止任务"
        card.locator("button[data-cmd='hold']").click()
        page.wait_for_function("document.querySelectorAll('#cmds tbody tr').length >= 2", timeout=30000)
        page.screenshot(path=str(artifacts_dir / "operator.png"))
        assert guard.outside == [] and guard.errors == []
    finally:
        ctx.close()


def test_login_box_when_no_token(browser, server) -> None:
    guard = Guard()
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    guard.attach(context, page)
    try:
        page.goto(f"{server.url}/worker")
        page.wait_for_selector("#sg-login input", timeout=30000)
        page.fill("#sg-login input", "wrong-token")
        page.click("#sg-login button")
        page.wait_for_function("document.querySelector('#sg-login .msg').textContent.includes('无效')", timeout=30000)
        page.fill("#sg-login input", "tok-dispatcher")
        page.click("#sg-login button")
        page.wait_for_selector("body[data-ready='1']", timeout=30000)
        assert guard.outside == []
    finally:
        context.close()


def test_intranet_tile_server_and_bd09_display(browser, make_server, points, artifacts_dir) -> None:
    """A configured tile URL (an intranet tile server, here on loopback) is used, and with a
    BD-09 basemap the markers are drawn at BD-09 coordinates."""
    import http.server
    import threading

    from tests.conftest import free_tcp_port

    ok, png = cv2.imencode(".png", np.full((256, 256, 3), (210, 225, 235), np.uint8))
    tiles: list[str] = []

    class Tiles(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            tiles.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png)))
            self.end_headers()
            self.wfile.write(png.tobytes())

        def log_message(self, *_args) -> None:  # noqa: ANN002
            pass

    tport = free_tcp_port()
    tile_srv = http.server.ThreadingHTTPServer(("127.0.0.1", tport), Tiles)
    threading.Thread(target=tile_srv.serve_forever, daemon=True).start()
    srv = make_server(tile_url=f"http://127.0.0.1:{tport}/tiles/{{z}}/{{x}}/{{y}}.png", display_crs="bd09")
    guard = Guard()
    ctx, page = _page(browser, f"{srv.url}/?token=tok-viewer", guard)
    try:
        page.wait_for_selector("img.leaflet-tile-loaded", timeout=30000)
        assert tiles and all(t.startswith("/tiles/") and t.endswith(".png") for t in tiles)
        t = srv.ingest("illegal_structure", *points[G1], "bd-1")
        page.wait_for_function(f"window.SGROOM.markers.has({t['ticket_id']})", timeout=30000)
        drawn = page.evaluate(f"(() => {{ const p = window.SGROOM.markers.get({t['ticket_id']}).getLatLng(); "
                              "return [p.lng, p.lat]; })()")
        assert np.allclose(drawn, wgs84_to_bd09(points[G1][1], points[G1][0]), atol=1e-9)
        assert "BD-09" in page.locator(".legend").inner_text()
        page.locator(f"#tickets li[data-id='{t['ticket_id']}']").click()
        page.wait_for_selector("#panel-status", timeout=30000)
        assert "BD-09" in page.locator("#panel").inner_text()
        assert page.locator("#panel button[data-action]").count() == 0  # a viewer gets no action buttons
        page.screenshot(path=str(artifacts_dir / "command_room_tiles_bd09.png"))
        assert guard.outside == [] and guard.errors == []
    finally:
        ctx.close()
        tile_srv.shutdown()


def test_worker_page_on_a_slow_flaky_connection(browser, make_server, points) -> None:
    """Slow 3G-like link (400 ms RTT, 50 kB/s): the phone page stays small and loads, and a
    failed ticket fetch is retried. On such a link the load time is set by the bytes moved
    and the round trips made, so those are what is asserted (not a stopwatch, which a loaded
    CI machine stretches): bench/bench_pages.py reports the load time on this link."""
    srv = make_server(extra_tokens=WORKER)
    t = srv.ingest("straw_burning", *points[G1], "slow-1")
    guard = Guard()
    context = browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True)
    page = context.new_page()
    guard.attach(context, page)
    failed = {"n": 0}

    def flaky(route) -> None:  # noqa: ANN001 - playwright Route
        if failed["n"] < 2:  # the first two ticket fetches die on the way
            failed["n"] += 1
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/v1/tickets?*", flaky)
    sizes: list[int] = []
    requests: list[str] = []
    page.on("response", lambda r: sizes.append(len(r.body())) if r.request.resource_type != "eventsource" else None)
    page.on("request", lambda r: requests.append(r.url) if r.resource_type != "eventsource" else None)
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 400,
                                                   "downloadThroughput": 50_000, "uploadThroughput": 20_000})
    try:
        page.goto(f"{srv.url}/worker?token=tok-worker")
        page.wait_for_selector(f".tcard[data-id='{t['ticket_id']}']", timeout=120_000)  # hang guard only
        assert failed["n"] == 2  # the page retried past two network failures
        # 64 kB: the session/CSRF/stream-ticket and safe-DOM code in common.js (issue 13) took ~3.5 kB
        assert sum(sizes) < 64_000, f"worker page moved {sum(sizes)} bytes"
        # 11 requests for the page and its data plus the 2 failed ticket fetches and the stream ticket
        # (14 on 2026-12-06); at 400 ms RTT and 50 kB/s even 16 round trips one after another and
        # 64 kB take under 8 s, inside the 20 s target
        assert len(requests) <= 16, requests
        assert guard.outside == []
    finally:
        context.close()
