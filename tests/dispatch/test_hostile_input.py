"""Issue 13 (hostile and careless clients), items 1, 2, 5, 6, 9, 10, 12: body limits and
authentication before the body, paged and capped live replay with retention, bounded
free-form telemetry, decompression bombs and polyglot evidence, non-finite numbers and
other inputs that used to answer 500, and the API docs served without a CDN."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest

from dispatch.guard import JsonRejected, parse_json_strict

from .conftest import auth, jpeg_bytes, make_env, png_bytes

MiB = 1024 * 1024


# -- ASGI harness: drive the app with a body we count as it is consumed -------------------
async def _asgi(app, method: str, path: str, headers: dict[str, str], chunks: int, chunk: bytes = b"x" * MiB,
                query: str = "", first: bytes | None = None) -> tuple[int, dict, int]:
    """(status, json body, chunks the server read) for a request of ``chunks`` x ``chunk``
    (the first one replaced by ``first`` when given)."""
    read = 0
    sent: list[dict] = []

    async def receive():
        nonlocal read
        if read < chunks:
            read += 1
            body = first if read == 1 and first is not None else chunk
            return {"type": "http.request", "body": body, "more_body": read < chunks}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": query.encode(), "root_path": "", "scheme": "http",
             "server": ("testserver", 80), "client": ("127.0.0.1", 1234),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    await asyncio.wait_for(app(scope, receive, send), 30)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body or b"null"), read


def test_huge_body_without_token_is_refused_before_it_is_read(env):
    # 300 MiB, chunked (no Content-Length), no token: 401 after reading nothing
    status, body, read = asyncio.run(_asgi(env.app, "POST", "/api/v1/incidents",
                                           {"content-type": "application/json"}, 300))
    assert status == 401 and body["field"] == "header.authorization" and read == 0
    status, _, read = asyncio.run(_asgi(env.app, "POST", "/api/v1/incidents",
                                        {"content-type": "application/json", "authorization": "Bearer nope"}, 300))
    assert status == 401 and read == 0


def test_body_limits_per_route_declared_and_streamed(env):
    hdr = {"content-type": "application/json", "authorization": "Bearer tok-dispatcher"}
    # a declared length over the limit: 413 before a byte is read
    status, body, read = asyncio.run(_asgi(env.app, "POST", "/api/v1/incidents",
                                           {**hdr, "content-length": str(300 * MiB)}, 300))
    assert status == 413 and body["field"] == "body" and read == 0
    # chunked, valid token: cut off as soon as the count passes the route's limit
    status, _, read = asyncio.run(_asgi(env.app, "POST", "/api/v1/incidents", hdr, 300))
    assert status == 413 and read <= 8  # the incident route takes one 5 MiB image (base64) + JSON
    # a JSON-only route has a much smaller limit than an evidence route
    status, _, read = asyncio.run(_asgi(env.app, "POST", "/api/v1/tickets/1/comments", hdr, 300))
    assert status == 413 and read == 1
    # multipart photo upload (not JSON): streamed through, cut off at its limit
    photo = {"content-type": "multipart/form-data; boundary=xx", "authorization": "Bearer tok-worker1"}
    head = b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    status, _, read = asyncio.run(_asgi(env.app, "POST", "/api/v1/tickets/1/photos", photo, 300, first=head))
    assert status == 413 and read <= 7
    # what fits still works
    assert env.client.post("/api/v1/incidents", json=env.incident("fits", evidence=True),
                           headers=auth("operator")).status_code == 201


@pytest.mark.parametrize("bad, field", [
    ('{"lat": NaN}', "body.lat"), ('{"lat": Infinity}', "body.lat"), ('{"lat": -Infinity}', "body.lat"),
    ('{"lat": 1e400}', "body.lat"), ('{"items": [{}, {"lat": 1e999}]}', "body.items[1].lat"),
    ('{"external_id": "\\ud800"}', "body.external_id"), ('{"external_id": "a\\u0000b"}', "body.external_id"),
])
def test_strict_json_names_the_field(bad, field):
    with pytest.raises(JsonRejected) as e:
        parse_json_strict(bad)
    assert e.value.field == field
    assert parse_json_strict('{"lat": 1.5, "t": "中文"}') == {"lat": 1.5, "t": "中文"}


def _post_raw(env, path: str, raw: str | bytes, token: str = "operator", method: str = "POST"):
    return env.client.request(method, path, content=raw.encode() if isinstance(raw, str) else raw,
                              headers={**auth(token), "content-type": "application/json"})


def test_non_finite_and_unencodable_input_is_422_naming_the_field(env):
    base = env.incident("nan1")
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        raw = json.dumps(base).replace(f'"lat": {base["lat"]}', f'"lat": {literal}')
        r = _post_raw(env, "/api/v1/incidents", raw)
        assert r.status_code == 422 and r.json()["field"] == "body.lat", (literal, r.text)
    raw = json.dumps({**base, "drone_id": "PLACEHOLDER"}).replace("PLACEHOLDER", "\\udc80")
    r = _post_raw(env, "/api/v1/incidents", raw)
    assert r.status_code == 422 and r.json()["field"] == "body.drone_id"
    r = _post_raw(env, "/api/v1/incidents", json.dumps({**base, "drone_id": "d\x00"}))
    assert r.status_code == 422 and r.json()["field"] == "body.drone_id"
    r = _post_raw(env, "/api/v1/incidents", b'{"external_id": "\xff\xfe"}')
    assert r.status_code == 422 and r.json()["field"] == "body"
    # telemetry: NaN never reaches the live stream
    tel = {"records": [{"drone_id": "d1", "time_s": 0, "wall_time": 1.7e9, "lat": 30.0, "lon": 120.5,
                        "abs_alt_m": "NaN", "rel_alt_m": 50}]}
    r = _post_raw(env, "/api/v1/telemetry", json.dumps(tel).replace('"NaN"', "NaN"))
    assert r.status_code == 422 and r.json()["field"] == "body.records[0].abs_alt_m"


def test_query_values_that_used_to_answer_500(env):
    env.post_incident(env.incident("q1"))
    h = auth("dispatcher")
    # NaN in a validated query number: the 422 handler itself failed before
    r = env.client.get("/api/v1/tickets", params={"bbox": "nan,nan,nan,nan"}, headers=h)
    assert r.status_code in (400, 422)
    r = env.client.get("/api/v1/grids", params={"lat": "nan"}, headers=h)
    assert r.status_code < 500
    r = env.client.get("/api/v1/tickets", params={"limit": "1e400"}, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "query.limit"
    for since in ("9999-12-31T23:59:59", "0001-01-01T00:00:00"):
        r = env.client.get("/api/v1/stats", params={"since": since}, headers=h)
        assert r.status_code == 422 and r.json()["field"] == "query.since", (since, r.text)
        r = env.client.get("/api/v1/tickets", params={"until": since}, headers=h)
        assert r.status_code == 422 and r.json()["field"] == "query.until"
    r = env.client.get("/open311/v2/requests.json", params={"start_date": "9999-12-31T00:00:00"}, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "query.start_date"
    for rid in ("²", "٣", "99999999999999999999999"):
        r = env.client.get("/open311/v2/requests.json", params={"service_request_id": rid}, headers=h)
        assert r.status_code == 400 and r.json()["field"] == "query.service_request_id", (rid, r.text)
    r = env.client.get("/api/v1/tickets", params={"grid_id": "a\x00b"}, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "query.grid_id"


def test_observed_at_out_of_range_is_422(env):
    for when in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"):
        r = env.client.post("/api/v1/incidents", json=env.incident("y1", observed_at=when), headers=auth("operator"))
        assert r.status_code == 422 and r.json()["field"] == "body.observed_at", (when, r.text)


def test_deep_json_is_422_not_500(env):
    deep = "[" * 100_000 + "]" * 100_000
    for path, method in (("/api/v1/plan", "PUT"), ("/api/v1/incidents", "POST"), ("/api/v1/telemetry", "POST")):
        r = _post_raw(env, path, deep, method=method)
        assert r.status_code == 422 and r.json()["field"] == "body", (path, r.text[:200])
    nested = {"records": [], "events": [{"drone_id": "d1", "wall_time": 1.7e9, "kind": "note", "data": {}}]}
    d = nested["events"][0]["data"]
    for _ in range(255):
        d["x"] = {}
        d = d["x"]
    r = _post_raw(env, "/api/v1/telemetry", json.dumps(nested))
    assert r.status_code == 422 and r.json()["field"].startswith("body.events[0].data")


def test_docs_pages_load_no_script_from_a_cdn(env):
    for page in ("/docs", "/redoc"):
        html = env.client.get(page).text
        assert "cdn.jsdelivr" not in html and "fonts.googleapis" not in html and "unpkg" not in html, page
        for src in ("/static/docs/swagger-ui-bundle.js", "/static/docs/swagger-ui.css") if page == "/docs" else (
                "/static/docs/redoc.standalone.js",):
            assert src in html
            r = env.client.get(src)
            assert r.status_code == 200 and len(r.content) > 100_000, src


# -- item 2: live replay paged, capped, retention ---------------------------------------
def _fill_outbox(env, n: int, at: datetime | None = None) -> int:
    """``n`` ticket events straight into the outbox; returns the head id."""
    from sqlalchemy import func, insert, select

    from dispatch.models import LiveEvent as Row

    at = at or datetime.now(UTC)
    rows = [{"at": at, "topic": "ticket.updated", "payload": {"id": i, "status": "accepted"},
             "grid_id": "330603-YXQ-001", "tier": "village", "class_name": "straw_burning", "priority": 1}
            for i in range(n)]
    with env.app.state.engine.begin() as c:
        c.execute(insert(Row.__table__), rows)
        return int(c.execute(select(func.max(Row.__table__.c.id))).scalar())


def test_replay_is_paged_not_loaded_whole(env):
    from dispatch.live.events import EventFilter

    head = _fill_outbox(env, 2500)
    hub = env.app.state.live_hub

    async def run() -> list[int]:
        sub = hub.subscribe(EventFilter(), after=0)
        sizes = [len(page) async for page in hub.replay_pages(sub, page=1000)]
        assert sub.skip_upto == head
        return sizes

    assert asyncio.run(run()) == [1000, 1000, 500]


def test_replay_too_far_back_or_pruned_gets_resync(tmp_path, template_db):
    from dispatch.live import store

    env = make_env(tmp_path, template_db, live_replay_max_events=100)
    month_ago = datetime.now(UTC) - timedelta(days=30)
    head = _fill_outbox(env, 300, at=month_ago)
    hdr = auth("viewer")
    with env.client as c:
        with c.websocket_connect("/api/v1/live/ws?after=0", headers=hdr) as ws:
            assert json.loads(ws.receive_text())["topic"] == "hello"
            rs = json.loads(ws.receive_text())
            assert rs["topic"] == "resync" and rs["data"]["reason"] == "too_far_back"
            assert rs["data"]["last_id"] == head and "GET /api/v1/tickets" in rs["data"]["detail"]
        with c.websocket_connect(f"/api/v1/live/ws?after={head - 50}", headers=hdr) as ws:
            assert json.loads(ws.receive_text())["topic"] == "hello"
            got = [json.loads(ws.receive_text())["id"] for _ in range(50)]
            assert got == list(range(head - 49, head + 1))
        # the retention deletes old rows, oldest first, in short batches
        # (never the newest row: SQLite would hand its ids out again)
        assert store.outbox_prune(env.app.state.engine, datetime.now(UTC) - timedelta(days=7), batch=70) == 299
        assert store.outbox_oldest(env.app.state.engine) == head
        assert _fill_outbox(env, 1) == head + 1
        env.app.state.live_hub.cursor = head + 1
        # asking for what was deleted is a resync
        for n in (0, 5):
            if n:
                env.app.state.live_hub.cursor = _fill_outbox(env, n)
            with c.websocket_connect(f"/api/v1/live/ws?after={head - 50}", headers=hdr) as ws:
                assert json.loads(ws.receive_text())["topic"] == "hello"
                assert json.loads(ws.receive_text())["data"]["reason"] == "pruned"
    env.app.state.engine.dispose()


def test_drone_commands_are_pruned_with_the_retention_and_ids_never_reused(env):
    from dispatch.live import store

    eng = env.app.state.engine
    with env.client:  # the app creates the live tables at start
        old = [store.command_add(eng, "d0", "rtl", "值班长")["id"] for _ in range(3)]
        assert store.commands_prune(eng, datetime.now(UTC) - timedelta(days=7)) == 0  # all recent
        assert store.commands_prune(eng, datetime.now(UTC) + timedelta(seconds=1)) == 3
        assert store.commands_after(eng, None, 0) == []
        assert store.command_add(eng, "d0", "hold", "值班长")["id"] > max(old)  # a reporter's cursor stays valid


def test_retention_runs_in_the_tailer(tmp_path, template_db):
    from dispatch.live import store

    env = make_env(tmp_path, template_db, live_retention_s=3600)
    store.create_tables(env.app.state.engine)
    _fill_outbox(env, 30, at=datetime.now(UTC) - timedelta(hours=2))
    keep = _fill_outbox(env, 5)
    hub = env.app.state.live_hub

    async def run() -> None:
        hub._last_prune = 0.0
        await hub.pump(feed=False)

    asyncio.run(run())
    assert store.outbox_oldest(env.app.state.engine) == keep - 4
    env.app.state.engine.dispose()


# -- item 5: bounded free-form telemetry; one bad record never breaks a read -------------
def test_free_form_event_data_is_bounded(env):
    from dispatch.live import store

    store.create_tables(env.app.state.engine)
    ev = {"drone_id": "d1", "wall_time": 1.7e9, "kind": "note", "data": {}}
    d = ev["data"]
    for _ in range(10):  # within the edge's depth, beyond the event data's
        d["x"] = {}
        d = d["x"]
    r = env.client.post("/api/v1/telemetry", json={"events": [ev]}, headers=auth("operator"))
    assert r.status_code == 422 and "events" in r.text and "data" in r.text
    r = env.client.post("/api/v1/telemetry", json={"events": [{**ev, "data": {"blob": "x" * 20_000}}]},
                        headers=auth("operator"))
    assert r.status_code == 422
    r = env.client.post("/api/v1/telemetry", json={"events": [{**ev, "data": {"ok": [1, {"a": "b"}]}}]},
                        headers=auth("operator"))
    assert r.status_code == 202


def test_one_bad_drone_record_never_breaks_the_snapshot(env):
    from dispatch.live.api import drone_event
    from dispatch.live.events import LiveEvent

    hub = env.app.state.live_hub
    deep: dict = {}
    d = deep
    for _ in range(3000):
        d["x"] = {}
        d = d["x"]
    good = {"drone_id": "ok", "wall_time": 1.7e9, "lat": 30.0, "lon": 120.5}
    hub.publish_many([drone_event("drone.telemetry", good)])
    # records as a stored feed row from another process could carry them
    hub.publish_many([LiveEvent(id=None, topic="drone.event", at="", data={"drone_id": "bad", "data": deep}),
                      LiveEvent(id=None, topic="drone.telemetry", at="",
                                data={"drone_id": "nan", "wall_time": 1.7e9, "lat": math.nan, "lon": 1.0}),
                      LiveEvent(id=None, topic="drone.telemetry", at="", data={"drone_id": "nolat"})])
    r = env.client.get("/api/v1/live/drones", headers=auth("viewer"))
    assert r.status_code == 200 and list(r.json()["drones"]) == ["ok"]
    ev = LiveEvent.make(id=None, topic="drone.event", at="", data={"v": math.inf})
    assert json.loads(ev.encoded)["data"] == {"unencodable": "ValueError"}  # standard JSON, never NaN


def test_unreadable_feed_row_is_skipped(env):
    from sqlalchemy import insert

    from dispatch.live import store

    store.create_tables(env.app.state.engine)
    with env.app.state.engine.begin() as c:
        c.execute(insert(store.drone_feed).values(created_at=datetime.now(UTC), origin="other", topic="x",
                                                  payload="[" * 5000))
    rows = store.feed_after(env.app.state.engine, 0)
    assert len(rows) == 1 and rows[0][2] == []


# -- item 6: decompression bombs and polyglots -------------------------------------------
def _png_bomb(w: int, h: int) -> bytes:
    """A valid grey PNG of w x h zero pixels, a few hundred KiB compressed."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    comp = zlib.compressobj(9)
    row = b"\x00" * (w + 1)
    idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding(env, monkeypatch):
    import dispatch.evidence as evidence

    bomb = _png_bomb(12000, 12000)
    assert len(bomb) < 1024 * 1024
    decoded = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a, **k: decoded.append(1) or real(*a, **k))
    body = env.incident("bomb", evidence=False)
    body["evidence"] = {"content_type": "image/png", "data_b64": base64.b64encode(bomb).decode()}
    r = env.client.post("/api/v1/incidents", json=body, headers=auth("operator"))
    assert r.status_code == 413 and r.json()["field"] == "body.evidence.data_b64" and "pixels" in r.text
    assert decoded == []
    assert evidence.image_size(jpeg_bytes(64, 48), "image/jpeg") == (64, 48)
    assert evidence.image_size(png_bytes(16, 9), "image/png") == (16, 9)


def test_stored_evidence_is_re_encoded_so_appended_scripts_are_not_served(env):
    payload = b"<script>alert(document.cookie)</script>"
    for ctype, raw in (("image/jpeg", jpeg_bytes() + payload), ("image/png", png_bytes() + payload)):
        body = env.incident(f"poly-{ctype[-3:]}", spot=1 if ctype == "image/png" else 2)
        body["evidence"] = {"content_type": ctype, "data_b64": base64.b64encode(raw).decode()}
        tid = env.post_incident(body)["ticket_id"]
        url = env.client.get(f"/api/v1/tickets/{tid}", headers=auth("dispatcher")).json()["evidence_url"]
        served = env.client.get(url, headers=auth("dispatcher")).content
        assert payload not in served and served.startswith(raw[:3])
        img = cv2.imdecode(np.frombuffer(served, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[:2] == cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR).shape[:2]


# -- item 10 on PostgreSQL: a NUL character in any string -------------------------------
@pytest.mark.postgres
def test_nul_in_any_string_is_422_on_postgres(pg_url, tmp_path):
    from .test_postgres import _reset, pg_env

    _reset(pg_url)
    env = pg_env(pg_url, tmp_path)
    try:
        tid = env.post_incident(env.incident("pg-nul-0"))["ticket_id"]
        posts = [
            ("POST", "/api/v1/incidents", "operator", env.incident("pg\x00nul"), "body.external_id"),
            ("POST", "/api/v1/incidents", "operator", env.incident("pg-nul-1", drone_id="d\x00"), "body.drone_id"),
            ("POST", "/api/v1/incidents/batch", "operator", {"items": [env.incident("pg-nul-2", sortie_id="\x00")]},
             "body.items[0].sortie_id"),
            ("POST", f"/api/v1/tickets/{tid}/comments", "dispatcher", {"text": "a\x00"}, "body.text"),
            ("POST", f"/api/v1/tickets/{tid}/actions", "dispatcher", {"action": "sign", "comment": "\x00"},
             "body.comment"),
            ("POST", "/api/v1/drones/d1/commands", "dispatcher", {"action": "rtl", "note": "\x00"}, "body.note"),
            ("POST", "/api/v1/telemetry", "operator", {"events": [{"drone_id": "d\x00", "wall_time": 1.7e9,
                                                                   "kind": "k"}]}, "body.events[0].drone_id"),
            ("PUT", "/api/v1/plan", "operator", {"format": "skygrid.plan/1\x00"}, "body.format"),
        ]
        for method, path, role, body, field in posts:
            r = env.client.request(method, path, json=body, headers=auth(role))
            assert r.status_code == 422 and r.json()["field"] == field, (path, r.status_code, r.text[:300])
        for path, param in (("/api/v1/tickets", "grid_id"), ("/api/v1/stats", "department"),
                            ("/open311/v2/requests.json", "service_code"), ("/api/v1/drones/commands", "drone_id")):
            r = env.client.get(path, params={param: "a\x00b"}, headers=auth("dispatcher"))
            assert r.status_code == 422 and r.json()["field"] == f"query.{param}", (path, r.text[:300])
        r = env.client.post(f"/api/v1/tickets/{tid}/photos", headers=auth("dispatcher"), data={"caption": "a\x00"},
                            files={"file": ("a.jpg", jpeg_bytes(), "image/jpeg")})
        assert r.status_code == 422 and r.json()["field"] == "form.caption", r.text[:300]
        r = env.client.post("/api/v1/drones/d%00x/commands", json={"action": "rtl"}, headers=auth("dispatcher"))
        assert r.status_code == 422 and r.json()["field"] == "path"
    finally:
        env.app.state.engine.dispose()
        _reset(pg_url)


def test_live_websocket_refuses_large_client_messages():
    from dispatch.app import SERVER_OPTIONS

    assert SERVER_OPTIONS["ws_max_size"] <= 64 * 1024  # uvicorn's default buffers 16 MiB per message
