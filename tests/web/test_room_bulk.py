"""The command room's bulk selection: tick tickets, print their sheets together, export just
them (CSV and Excel); the API's ``ids`` filter behind it. Screenshots go to test-artifacts/."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest

from tests.web.test_live import G1, G2
from tests.web.test_pages import LAUNCH_ARGS, Guard, _evidence_b64, _page

VIEW = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


def test_ids_filter_lists_and_exports_exactly_those_tickets(server, points) -> None:
    ids = [server.ingest(c, *points[g], f"ids-{i}")["ticket_id"]
           for i, (c, g) in enumerate([("straw_burning", G1), ("illegal_dumping", G2), ("illegal_structure", G1)])]
    pick = f"{ids[2]},{ids[0]}"
    page = httpx.get(f"{server.url}/api/v1/tickets", params={"ids": pick}, headers=server.h("tok-dispatcher")).json()
    assert sorted(t["id"] for t in page["items"]) == sorted([ids[0], ids[2]]) and page["total"] == 2
    r = httpx.get(f"{server.url}/api/v1/export/tickets", params={"ids": pick, "format": "csv"},
                  headers=server.h("tok-dispatcher"))
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert sorted(int(x[0]) for x in rows[1:]) == sorted([ids[0], ids[2]])
    for bad in ("1,x", "0", "-3", ",".join(["1"] * 1001)):
        r = httpx.get(f"{server.url}/api/v1/tickets", params={"ids": bad}, headers=server.h("tok-dispatcher"))
        assert r.status_code == 422 and r.json()["field"] == "query.ids", (bad, r.text)


@pytest.mark.browser
def test_bulk_select_print_and_export(browser, make_server, points, artifacts_dir) -> None:
    srv = make_server()
    a = srv.ingest("straw_burning", *points[G1], "b-1", evidence=_evidence_b64())["ticket_id"]
    b = srv.ingest("illegal_dumping", *points[G2], "b-2", evidence=_evidence_b64())["ticket_id"]
    c = srv.ingest("illegal_structure", *points[G1], "b-3")["ticket_id"]
    guard = Guard()
    ctx, page = _page(browser, f"{srv.url}/?token=tok-dispatcher", guard, VIEW)
    try:
        page.wait_for_selector(f"#tickets li[data-id='{c}']", timeout=30000)
        assert page.is_disabled("#bulk-print") and page.is_disabled("#bulk-csv")
        page.check(f"#tickets input.pick[data-pick='{a}']")
        page.check(f"#tickets input.pick[data-pick='{b}']")
        assert page.inner_text("#bulk-count") == "已选 2 件"
        assert page.evaluate("SGROOM.selected") is None  # ticking a box does not open the ticket
        # the bulk bar's buttons sit inside the 1366x768 window
        for sel in ("#bulk-print", "#bulk-csv", "#bulk-xlsx"):
            box = page.locator(sel).bounding_box()
            assert box and box["y"] + box["height"] <= VIEW["height"] and box["x"] + box["width"] <= VIEW["width"], sel
        page.screenshot(path=str(artifacts_dir / "room_bulk_selection_1366x768.png"))
        # the selection survives a live update of the list
        srv.act(c, "sign")
        page.wait_for_function(f"SGROOM.tickets.get({c}).status === 'analyzing'", timeout=30000)
        assert page.is_checked(f"#tickets input.pick[data-pick='{a}']") and page.inner_text("#bulk-count") == "已选 2 件"
        # export just the selection
        with page.expect_download() as dl:
            page.click("#bulk-csv")
        rows = list(csv.reader(io.StringIO(Path(dl.value.path()).read_bytes().decode("utf-8-sig"))))
        assert rows[0][0] == "工单号" and sorted(int(r[0]) for r in rows[1:]) == sorted([a, b])
        with page.expect_download() as dl:
            page.click("#bulk-xlsx")
        from openpyxl import load_workbook

        vals = list(load_workbook(io.BytesIO(Path(dl.value.path()).read_bytes())).active.values)
        assert sorted(v[0] for v in vals[1:]) == sorted([a, b])
        # print the selected sheets together
        with ctx.expect_page() as popup:
            page.click("#bulk-print")
        sheets = popup.value
        sheets.wait_for_selector("body[data-ready='1']", timeout=30000)
        assert sorted(int(x) for x in sheets.eval_on_selector_all(".sheet", "els => els.map(e => e.dataset.id)")) == \
            sorted([a, b])
        assert sheets.locator(".sheet img.evidence").count() == 2
        sheets.emulate_media(media="print")
        sheets.screenshot(path=str(artifacts_dir / "print_bulk_sheets.png"), full_page=True)
        sheets.close()
        # select all / clear
        page.check("#bulk-all")
        assert page.inner_text("#bulk-count") == "已选 3 件"
        page.click("#bulk-clear")
        assert page.inner_text("#bulk-count") == "未选择" and page.is_disabled("#bulk-print")
        assert not page.is_checked(f"#tickets input.pick[data-pick='{a}']")
        assert guard.outside == [] and guard.errors == []
    finally:
        ctx.close()
