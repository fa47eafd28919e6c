"""Issue 13 items 3 and 4 in a real browser (Debian chromium, the pages' real CSP): a
hostile plan is refused by the API, and even one already in the store (written past the
API) shows as text on /operator and in the command room and runs nothing; the pages keep
no token in the address, the streams' URLs or localStorage; a one-time login link works
once and lands on the clean page URL."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from dispatch.live import store
from tests.web.test_live import small_plan
from tests.web.test_pages import LAUNCH_ARGS

pytestmark = pytest.mark.browser

XSS = '<img src=x onerror="window.__xss=(window.__xss||0)+1">'
STATIC = __import__("pathlib").Path(__file__).resolve().parents[2] / "dispatch" / "web" / "static"


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


def _hostile(plan: dict) -> dict:
    bad = copy.deepcopy(plan)
    bad["drones"] = XSS
    bad["altitude_m"] = XSS
    bad["gsd_cm"] = XSS
    bad["created_at"] = XSS
    bad["grids"][0]["name"] = XSS
    s = bad["sorties"][0]
    s["id"], s["distance_m"], s["grid_ids"] = XSS, XSS, [XSS]
    return bad


def test_api_refuses_strings_in_a_plans_numbers(server, points) -> None:
    bad = _hostile(small_plan(points))
    r = httpx.put(f"{server.url}/api/v1/plan", json=bad, headers=server.h())
    assert r.status_code == 422, r.text
    assert "drones" in r.text or "altitude_m" in r.text
    one = copy.deepcopy(small_plan(points))
    one["sorties"][0]["waypoints"][0]["lat"] = "30.1"
    r = httpx.put(f"{server.url}/api/v1/plan", json=one, headers=server.h())
    assert r.status_code == 422 and "sorties[0].waypoints[0].lat" in r.text


def test_hostile_plan_in_the_store_runs_nothing_in_the_pages(browser, server, points, artifacts_dir) -> None:
    store.plan_put(server.app.state.engine, _hostile(small_plan(points)), "attacker")
    dialogs: list[str] = []
    csp_errors: list[str] = []
    for path, token in (("/operator", "tok-operator"), ("/", "tok-dispatcher")):
        ctx = browser.new_context(viewport={"width": 1400, "height": 860}, locale="zh-CN")  # real CSP
        page = ctx.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(f"{server.url}{path}?token={token}")
        page.wait_for_selector("body[data-ready='1']", timeout=30000)
        # wait for the hostile names to be drawn (a locator wait: the real CSP forbids
        # wait_for_function's eval), not a fixed sleep that a loaded machine can outlast
        if path == "/operator":
            page.locator("#sorties", has_text=XSS).wait_for(timeout=30000)
            assert XSS in page.locator("#sorties").inner_text()  # shown as text
        else:
            page.locator(".leaflet-interactive").first.wait_for(timeout=30000)
            for el in page.locator(".leaflet-interactive").all()[:30]:  # hover routes and grids: tooltips
                try:
                    el.hover(timeout=500, force=True)
                except Exception:  # noqa: BLE001 - overlapped shapes
                    pass
        page.screenshot(path=str(artifacts_dir / f"xss{path.replace('/', '_') or '_room'}.png"))
        assert page.evaluate("window.__xss") is None, path
        assert page.locator("img[src='x']").count() == 0, path
        # no token left in the address bar or in storage
        assert "token" not in page.url
        assert page.evaluate("JSON.stringify(Object.assign({}, localStorage))").find("tok-") < 0
        assert all("tok-" not in c["value"] for c in ctx.cookies())
        ctx.close()
    assert dialogs == []
    assert not [e for e in csp_errors if "script" in e], csp_errors


def test_pages_send_security_headers(server) -> None:
    for path in ("/", "/operator", "/worker", "/static/web/common.js", "/api/v1/live/config"):
        r = httpx.get(server.url + path)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp


def test_no_page_builds_html_from_strings() -> None:
    """Every page script builds DOM (SG.h / textContent); nothing assigns HTML strings."""
    bad = re.compile(r"\.(innerHTML|outerHTML)\s*[+]?=|insertAdjacentHTML|document\.write|\bSG\.esc\b")
    hits = [f"{p.name}:{i}" for p in STATIC.glob("*.js")
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if bad.search(line)]
    assert hits == []
    for html in STATIC.glob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert re.search(r"<script(?![^>]*\bsrc=)", text) is None, f"{html.name}: inline script"
        assert re.search(r"\son[a-z]+=", text) is None, f"{html.name}: inline event handler"


def test_login_link_sets_the_cookie_once_and_lands_on_a_clean_url(browser, server) -> None:
    from dispatch.core.db import write_transaction
    from dispatch.core.security import login_code_for

    with write_transaction(server.app.state.sessionmaker) as s:
        code = login_code_for(s, "tok-operator")
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{server.url}/login?code={code}&next=/operator")
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    assert page.url == f"{server.url}/operator"
    ws_urls: list[str] = []
    page.on("websocket", lambda ws: ws_urls.append(ws.url))
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    deadline = time.monotonic() + 30  # hang guard: the stream opens after the page is ready
    while not ws_urls and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert ws_urls and all("ticket=sgc_" in u and "tok-" not in u for u in ws_urls)
    cookie = next(c for c in ctx.cookies() if c["name"] == "skygrid_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["value"].startswith("tok-")
    ctx.close()
    # the same link a second time: no session, the login box
    ctx2 = browser.new_context()
    page2 = ctx2.new_page()
    page2.goto(f"{server.url}/login?code={code}&next=/operator")
    page2.wait_for_selector("#sg-login", state="visible", timeout=30000)
    assert not [c for c in ctx2.cookies() if c["name"] == "skygrid_session"]
    ctx2.close()
