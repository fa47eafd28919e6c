"""Issue 13 (hostile and careless clients), items 1, 2, 5, 6, 9, 10, 12: body limits and
authentication before the body, paged and capped live replay with retention, bounded
free-form telemetry, decompression bombs and polyglot evidence, non-finite numbers and
other inputs that used to answer 500, and the API docs served without a CDN."""

from __future__ import annotations

import asyncio
import json

import pytest

from dispatch.guard import JsonRejected, parse_json_strict

from .conftest import auth

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
