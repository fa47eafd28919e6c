"""Live streams over real HTTP/WebSocket against the real dispatch app: filters, resume,
fan-out between two app instances sharing one SQLite file, telemetry, commands, plan."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import websockets

from geo.plan_schema import Home, Plan, PlannedGrid, Sortie, Waypoint

G1, G2, G3 = "330603-YXQ-001", "330603-YXQ-002", "330603-YXQ-003"
HANG_GUARD_S = 30.0  # wall seconds a positive wait may take before the test calls it hung


def bearer(token: str) -> dict[str, str]:
    """The Authorization header (streams take no token in the URL)."""
    return {"Authorization": f"Bearer {token}"}


async def _collect(ws: Any, want: int, timeout: float = HANG_GUARD_S, topic: str = "ticket.") -> list[dict]:
    """Messages whose topic starts with ``topic`` until ``want`` arrived or ``timeout`` s passed."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=left))
        except TimeoutError:
            break
        if msg["topic"].startswith(topic):
            out.append(msg)
    return out


async def _collect_until(ws: Any, ticket_id: int, timeout: float = HANG_GUARD_S) -> list[dict]:
    """Ticket messages until the one for ``ticket_id`` arrived (``timeout``: a hang guard)."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while not out or out[-1]["data"].get("id") != ticket_id:
        left = deadline - time.monotonic()
        assert left > 0, f"no alert for ticket {ticket_id} within {timeout} s; got {out}"
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=left))
        if msg["topic"].startswith("ticket."):
            out.append(msg)
    return out


async def _hello(ws: Any) -> dict:
    msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=HANG_GUARD_S))
    assert msg["topic"] == "hello"
    return msg


def _telemetry(drone: str, lat: float, lon: float, item: int = 3) -> dict:
    return {"drone_id": drone, "time_s": 12.5, "wall_time": time.time(), "lat": lat, "lon": lon, "abs_alt_m": 110.0,
            "rel_alt_m": 100.0, "roll_deg": 0.0, "pitch_deg": 0.0, "yaw_deg": 90.0, "ground_speed_m_s": 9.8,
            "battery_pct": 81.0, "flight_mode": "MISSION", "armed": True, "in_air": True, "sortie_id": "s0",
            "mission_item": item, "mission_total": 20}


def small_plan(points: dict, grid_id: str = G1) -> dict:
    lat, lon = points[grid_id]
    d = 0.002
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]
    wps = [Waypoint(lat=lat - d, lon=lon - d, rel_alt_m=100, speed_m_s=10, grid_id=grid_id),
           Waypoint(lat=lat + d, lon=lon + d, rel_alt_m=100, speed_m_s=10, grid_id=grid_id)]
    plan = Plan(home=Home(lat=lat, lon=lon), camera={"preset": "m3e"}, altitude_m=100, gsd_cm=2.7, speed_m_s=10,
                side_overlap=0.7, front_overlap=0.8, line_spacing_m=60, trigger_distance_m=30, drones=1,
                grids=[PlannedGrid(id=grid_id, name="测试网格", rings=[ring])],
                sorties=[Sortie(id="s0", drone=0, index=0, grid_ids=[grid_id], waypoints=wps, distance_m=640)])
    return plan.to_dict()


def test_ws_filters_by_class_grid_priority_and_scope(make_server, points) -> None:
    srv = make_server(extra_tokens={"tok-worker": {"role": "grid_worker", "name": "网格员", "grid_ids": [G1]}})

    async def run() -> None:
        base = f"{srv.ws_url}/api/v1/live/ws?"
        async with websockets.connect(base + f"class_name=hazmat_fire&grid={G1}", additional_headers=bearer("tok-viewer")) as ws_cls, \
                websockets.connect(base + "priority=P0,P1&topic=ticket", additional_headers=bearer("tok-viewer")) as ws_pri, \
                websockets.connect(base, additional_headers=bearer("tok-worker")) as ws_worker, \
                websockets.connect(base + f"tier=town&grid={G2}", additional_headers=bearer("tok-viewer")) as ws_tier:
            hello = await _hello(ws_cls)
            assert hello["data"]["principal"]["role"] == "viewer"
            for ws in (ws_pri, ws_worker, ws_tier):
                await _hello(ws)
            a = await asyncio.to_thread(srv.ingest, "straw_burning", *points[G1], "f-1")
            b = await asyncio.to_thread(srv.ingest, "hazmat_fire", *points[G2], "f-2")
            c = await asyncio.to_thread(srv.ingest, "hazmat_fire", *points[G1], "f-3")
            d = await asyncio.to_thread(srv.ingest, "illegal_dumping", *points[G3], "f-4")
            # each stream delivers in commit order: once c (the last ticket all three may see)
            # arrived, everything before it has too; only the tier stream expects nothing
            last = c["ticket_id"]
            got_cls = await _collect_until(ws_cls, last)
            got_pri = await _collect_until(ws_pri, last)
            got_worker = await _collect_until(ws_worker, last)
            got_tier = await _collect(ws_tier, 1, timeout=0.5)
        assert [m["data"]["id"] for m in got_cls] == [c["ticket_id"]]
        prio = {m["data"]["id"]: m["priority"] for m in got_pri}
        assert set(prio) <= {a["ticket_id"], b["ticket_id"], c["ticket_id"], d["ticket_id"]}
        assert b["ticket_id"] in prio and c["ticket_id"] in prio and all(p in (0, 1) for p in prio.values())
        assert {m["grid_id"] for m in got_worker} == {G1}
        assert {m["data"]["id"] for m in got_worker} == {a["ticket_id"], c["ticket_id"]}
        assert got_tier == []  # new tickets start at village tier

    asyncio.run(run())


def test_bad_filter_and_missing_token_are_refused(server) -> None:
    async def run() -> None:
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with websockets.connect(f"{server.ws_url}/api/v1/live/ws"):
                pass
        async with websockets.connect(f"{server.ws_url}/api/v1/live/ws?priority=urgent", additional_headers=bearer("tok-viewer")) as ws:
            msg = json.loads(await ws.recv())
            assert msg["topic"] == "error" and "priority" in msg["data"]["detail"]
            with pytest.raises(websockets.exceptions.ConnectionClosed) as exc:
                await ws.recv()
            assert exc.value.rcvd.code == 4400

    asyncio.run(run())
    r = httpx.get(f"{server.url}/api/v1/live/sse", headers=bearer("nope"))
    assert r.status_code == 401
    r = httpx.get(f"{server.url}/api/v1/live/sse?after=x", headers=bearer("tok-viewer"))
    assert r.status_code == 422 and "after" in r.json()["detail"]


def test_ws_declines_per_client_compression(server) -> None:
    # the client offers permessage-deflate (websockets does by default); the server, run with
    # dispatch.app.SERVER_OPTIONS as `skygrid serve` and the patrol run it, must decline it
    async def run() -> None:
        async with websockets.connect(f"{server.ws_url}/api/v1/live/ws?", additional_headers=bearer("tok-viewer")) as ws:
            assert "permessage-deflate" in (ws.request.headers.get("Sec-WebSocket-Extensions") or "")
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
            assert json.loads(await ws.recv())["topic"] == "hello"

    asyncio.run(run())


def test_ws_resume_after_reconnect_replays_missed_events(server, points) -> None:
    async def run() -> None:
        url = f"{server.ws_url}/api/v1/live/ws?topic=ticket"
        async with websockets.connect(url, additional_headers=bearer("tok-viewer")) as ws:
            await _hello(ws)
            first = await asyncio.to_thread(server.ingest, "straw_burning", *points[G1], "r-1")
            got = await _collect(ws, 1)
        assert got[0]["data"]["id"] == first["ticket_id"]
        last_id = got[0]["id"]
        # while disconnected: two new tickets and a transition
        t2 = await asyncio.to_thread(server.ingest, "illegal_dumping", *points[G2], "r-2")
        t3 = await asyncio.to_thread(server.ingest, "illegal_structure", *points[G3], "r-3")
        await asyncio.to_thread(server.act, first["ticket_id"], "sign")
        async with websockets.connect(f"{url}&after={last_id}", additional_headers=bearer("tok-viewer")) as ws:
            await _hello(ws)
            missed = await _collect(ws, 3)
            live = await asyncio.to_thread(server.ingest, "hazmat_fire", *points[G1], "r-4")
            after = await _collect(ws, 1)
        assert [m["data"]["id"] for m in missed] == [t2["ticket_id"], t3["ticket_id"], first["ticket_id"]]
        assert missed[2]["data"]["status"] == "analyzing"
        assert [m["id"] for m in missed] == sorted(m["id"] for m in missed) and missed[0]["id"] > last_id
        assert [m["data"]["id"] for m in after] == [live["ticket_id"]]  # no duplicates of the replay

    asyncio.run(run())


def _sse_events(url: str, headers: dict, want: int, timeout: float = HANG_GUARD_S) -> list[tuple[str | None, dict]]:
    """(id, data) of SSE ``message`` events until ``want`` arrived."""
    out: list[tuple[str | None, dict]] = []
    cur_id, cur_event, data = None, None, None
    with httpx.stream("GET", url, headers=headers, timeout=timeout) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("id: "):
                cur_id = line[4:]
            elif line.startswith("event: "):
                cur_event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "":
                if data is not None and cur_event is None:
                    out.append((cur_id, data))
                    if len(out) >= want:
                        return out
                cur_id, cur_event, data = None, None, None
    return out


def test_sse_last_event_id_resumes(server, points) -> None:
    a = server.ingest("straw_burning", *points[G1], "s-1")
    b = server.ingest("illegal_dumping", *points[G2], "s-2")
    all_events = _sse_events(f"{server.url}/api/v1/live/sse?after=0", server.h("tok-viewer"), 2)
    assert [d["data"]["id"] for _, d in all_events] == [a["ticket_id"], b["ticket_id"]]
    first_id = all_events[0][0]
    assert first_id == str(all_events[0][1]["id"])
    resumed = _sse_events(f"{server.url}/api/v1/live/sse",
                          {"Last-Event-ID": first_id, **bearer("tok-viewer")}, 1)
    assert [d["data"]["id"] for _, d in resumed] == [b["ticket_id"]]
    assert resumed[0][0] == all_events[1][0]
    hub = server.app.state.live_hub
    deadline = time.monotonic() + HANG_GUARD_S
    while hub.subscribers and time.monotonic() < deadline:  # closed streams unsubscribe
        time.sleep(0.05)
    assert not hub.subscribers


def test_two_app_instances_on_one_sqlite_file_see_each_others_events(make_server, tmp_path, points) -> None:
    db = tmp_path / "shared.db"
    a, b = make_server(db), make_server(db)

    async def run() -> None:
        async with websockets.connect(f"{b.ws_url}/api/v1/live/ws?", additional_headers=bearer("tok-viewer")) as on_b, \
                websockets.connect(f"{a.ws_url}/api/v1/live/ws?", additional_headers=bearer("tok-viewer")) as on_a:
            await _hello(on_b)
            await _hello(on_a)
            t = await asyncio.to_thread(a.ingest, "hazmat_fire", *points[G1], "x-1")
            got_b = await _collect(on_b, 1, timeout=HANG_GUARD_S)
            got_a = await _collect(on_a, 1, timeout=HANG_GUARD_S)
            assert [m["data"]["id"] for m in got_b] == [t["ticket_id"]] == [m["data"]["id"] for m in got_a]
            assert got_a[0]["id"] == got_b[0]["id"]
            # a transition on B reaches A; telemetry posted to B reaches A's stream and board
            await asyncio.to_thread(b.act, t["ticket_id"], "sign")
            upd = await _collect(on_a, 1, timeout=HANG_GUARD_S)
            assert upd[0]["data"]["status"] == "analyzing"
            r = await asyncio.to_thread(httpx.post, f"{b.url}/api/v1/telemetry",
                                        json={"records": [_telemetry("d7", *points[G2])], "events": []},
                                        headers=b.h())
            assert r.status_code == 202
            tel = await _collect(on_a, 1, timeout=HANG_GUARD_S, topic="drone.telemetry")
            assert tel[0]["data"]["drone_id"] == "d7"

    asyncio.run(run())
    snap = httpx.get(f"{a.url}/api/v1/live/drones", headers=a.h("tok-viewer")).json()
    assert snap["drones"]["d7"]["telemetry"]["mission_item"] == 3


def test_telemetry_broadcast_board_and_validation(server, points) -> None:
    lat, lon = points[G1]

    async def run() -> None:
        async with websockets.connect(f"{server.ws_url}/api/v1/live/ws?topic=drone", additional_headers=bearer("tok-viewer")) as ws:
            await _hello(ws)
            body = {"records": [_telemetry("d0", lat, lon, 1), _telemetry("d0", lat + 0.001, lon, 2)],
                    "events": [{"drone_id": "d0", "wall_time": time.time(), "kind": "link_lost", "message": "链路中断",
                                "lat": lat, "lon": lon, "sortie_id": "s0", "data": {}}]}
            r = await asyncio.to_thread(httpx.post, f"{server.url}/api/v1/telemetry", json=body, headers=server.h())
            assert r.status_code == 202 and r.json() == {"records": 2, "events": 1}
            got = await _collect(ws, 3, topic="drone.")
        assert [m["topic"] for m in got] == ["drone.telemetry", "drone.telemetry", "drone.event"]
        assert got[2]["data"]["kind"] == "link_lost"

    asyncio.run(run())
    snap = httpx.get(f"{server.url}/api/v1/live/drones", headers=server.h("tok-viewer")).json()["drones"]["d0"]
    assert snap["telemetry"]["mission_item"] == 2 and len(snap["track"]) == 2
    bad = _telemetry("d0", 95.0, lon)
    r = httpx.post(f"{server.url}/api/v1/telemetry", json={"records": [bad]}, headers=server.h())
    assert r.status_code == 422 and "lat" in r.text and "records" in r.text
    r = httpx.post(f"{server.url}/api/v1/telemetry", json={"records": []}, headers=server.h("tok-viewer"))
    assert r.status_code == 403


def test_drone_commands_round_trip(server) -> None:
    r1 = httpx.post(f"{server.url}/api/v1/drones/d0/commands", json={"action": "hold"}, headers=server.h())
    r2 = httpx.post(f"{server.url}/api/v1/drones/d1/commands", json={"action": "rtl"},
                    headers=server.h("tok-dispatcher"))
    assert r1.status_code == 201 and r2.status_code == 201
    c1 = r1.json()
    assert c1["action"] == "hold" and c1["drone_id"] == "d0" and c1["issued_by"] == "飞手"
    got = httpx.get(f"{server.url}/api/v1/drones/commands?drone_id=d1&after=0", headers=server.h()).json()
    assert [c["action"] for c in got["commands"]] == ["rtl"] and got["commands"][0]["issued_by"] == "指挥员"
    assert httpx.get(f"{server.url}/api/v1/drones/commands?after={r2.json()['id']}",
                     headers=server.h()).json() == {"commands": []}
    bad = httpx.post(f"{server.url}/api/v1/drones/d0/commands", json={"action": "explode"}, headers=server.h())
    assert bad.status_code == 422 and "action" in bad.text
    assert httpx.post(f"{server.url}/api/v1/drones/d0/commands", json={"action": "rtl"},
                      headers=server.h("tok-viewer")).status_code == 403
    # an id beyond 64 bits is a 422 naming the field, not a database overflow (found by schemathesis)
    huge = httpx.get(f"{server.url}/api/v1/drones/commands?after=9223372036854775808", headers=server.h())
    assert huge.status_code == 422 and "after" in huge.text


def test_plan_put_get_and_bad_plan_keeps_the_old_one(server, points) -> None:
    assert httpx.get(f"{server.url}/api/v1/plan", headers=server.h("tok-viewer")).status_code == 404
    plan = small_plan(points)
    r = httpx.put(f"{server.url}/api/v1/plan", json=plan, headers=server.h())
    assert r.status_code == 200 and r.json()["sorties"] == 1
    broken = {**plan, "sorties": [{"id": "s9"}]}
    r = httpx.put(f"{server.url}/api/v1/plan", json=broken, headers=server.h())
    assert r.status_code == 422 and "waypoints" in r.text and "sorties[0]" in r.text and "s9" in r.text
    r = httpx.put(f"{server.url}/api/v1/plan", json={**plan, "schema": "skygrid.plan/9"}, headers=server.h())
    assert r.status_code == 422 and "schema" in r.text
    got = httpx.get(f"{server.url}/api/v1/plan", headers=server.h("tok-viewer")).json()
    assert got["sorties"][0]["id"] == "s0" and got["grids"][0]["id"] == G1
    assert httpx.put(f"{server.url}/api/v1/plan", json=plan, headers=server.h("tok-dispatcher")).status_code == 403


def test_ws_batch_mode_sends_json_arrays(server, points) -> None:
    async def run() -> None:
        async with websockets.connect(f"{server.ws_url}/api/v1/live/ws?batch=1&topic=ticket", additional_headers=bearer("tok-viewer")) as ws:
            await _hello(ws)
            ids = [(await asyncio.to_thread(server.ingest, cls, *points[g], f"b-{g}"))["ticket_id"]
                   for cls, g in (("straw_burning", G1), ("illegal_dumping", G2))]
            got: list[dict] = []
            deadline = time.monotonic() + HANG_GUARD_S
            while len(got) < 2 and time.monotonic() < deadline:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=HANG_GUARD_S))
                if isinstance(frame, list):
                    got += frame
        assert [e["data"]["id"] for e in got] == ids
        assert all(e["topic"] == "ticket.created" for e in got)

    asyncio.run(run())
