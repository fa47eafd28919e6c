"""Issue 13 item 11: bounded live drone board, observed_at bounded by the server's clock,
CLI writes during SQLite ingest, revoked tokens' streams closed in bounded time, and
evidence shared by replicas through one directory."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from dispatch.live.hub import DroneBoard

from .conftest import auth, make_env


def _tel(drone: str, wall: float = 1.7e9) -> dict:
    return {"drone_id": drone, "time_s": 1.0, "wall_time": wall, "lat": 30.0, "lon": 120.5, "abs_alt_m": 80.0,
            "rel_alt_m": 60.0}


# -- (a) one post cannot register 10,000 drones forever ----------------------------------
def test_one_post_cannot_register_thousands_of_drones(tmp_path, template_db):
    from dispatch.live import store

    env = make_env(tmp_path, template_db, live_max_drones_per_post=5, live_max_drones=8)
    store.create_tables(env.app.state.engine)
    try:
        r = env.client.post("/api/v1/telemetry", json={"records": [_tel(f"d{i}") for i in range(10_000)]},
                            headers=auth("operator"))
        assert r.status_code == 422 and r.json()["field"] == "body.records[5].drone_id", r.text
        assert "drone_id" in r.json()["detail"]
        assert env.client.get("/api/v1/live/drones", headers=auth("viewer")).json()["drones"] == {}
        ok = env.client.post("/api/v1/telemetry", json={"records": [_tel(f"d{i}") for i in range(5)]},
                             headers=auth("operator"))
        assert ok.status_code == 202
        # 5 live + 4 new > 8: refused naming the first new drone; known drones still report
        r = env.client.post("/api/v1/telemetry", json={"records": [_tel("d0"), *(_tel(f"n{i}") for i in range(4))]},
                            headers=auth("operator"))
        assert r.status_code == 422 and r.json()["field"] == "body.records[1].drone_id", r.text
        assert env.client.post("/api/v1/telemetry", json={"records": [_tel("d0"), _tel("n0")]},
                               headers=auth("operator")).status_code == 202
        assert len(env.client.get("/api/v1/live/drones", headers=auth("viewer")).json()["drones"]) == 6
    finally:
        env.app.state.engine.dispose()


def test_stale_drones_age_out_of_the_board():
    now = [1000.0]
    board = DroneBoard(max_drones=3, stale_s=60.0, clock=lambda: now[0])
    from dispatch.live.api import drone_event

    for d in ("a", "b", "c"):
        board.apply(drone_event("drone.telemetry", _tel(d)))
    board.apply(drone_event("drone.telemetry", _tel("x")))
    assert sorted(board.snapshot()) == ["a", "b", "c"] and board.refused == 1
    now[0] += 45
    board.apply(drone_event("drone.telemetry", _tel("a", 1.7e9 + 45)))
    now[0] += 30  # b and c silent for 75 s > 60 s; a for 30 s
    assert sorted(board.snapshot()) == ["a"]
    assert board.room_for({"x", "y"}) == 0
    board.apply(drone_event("drone.event", {"drone_id": "x", "wall_time": 1.7e9, "kind": "fault", "message": ""}))
    assert sorted(board.snapshot()) == ["a", "x"] and set(board.tracks) == {"a"}


# -- (b) a far-future observed_at ---------------------------------------------------------
def test_far_future_observed_at_is_422_and_cannot_capture_later_reports(env):
    now = env.clock.now()
    future = (now + timedelta(days=365)).isoformat()
    r = env.client.post("/api/v1/incidents", json=env.incident("f1", observed_at=future), headers=auth("operator"))
    assert r.status_code == 422 and r.json()["field"] == "body.observed_at", r.text
    batch = env.client.post("/api/v1/incidents/batch", json={"items": [env.incident("f2", observed_at=future)]},
                            headers=auth("operator")).json()
    assert batch["results"][0]["status"] == 422 and batch["results"][0]["field"] == "items[0].observed_at"
    # within the allowed skew (default 300 s) a fast device clock is fine
    near = (now + timedelta(seconds=200)).isoformat()
    assert env.client.post("/api/v1/incidents", json=env.incident("f3", observed_at=near),
                           headers=auth("operator")).status_code == 201


def test_a_stored_far_future_ticket_does_not_absorb_later_reports(env):
    """A ticket poisoned before the bound (last_seen_at a year ahead) counts its last sighting
    at most the skew after its last update, so a report two days later opens a new ticket."""
    from sqlalchemy import update

    from dispatch.models import Ticket

    first = env.post_incident(env.incident("p1"))
    with env.app.state.sessionmaker() as s, s.begin():
        s.execute(update(Ticket).where(Ticket.id == first["ticket_id"]).values(
            last_seen_at=env.clock.now() + timedelta(days=365)))
    env.clock.advance(2 * 24 * 3600)
    later = env.post_incident(env.incident("p2"))
    assert later["ticket_id"] != first["ticket_id"]
    env.clock.advance(60)
    assert env.post_incident(env.incident("p3"))["ticket_id"] == later["ticket_id"]  # normal grouping intact


# -- (d) revoking a token closes its open streams in bounded time --------------------------
def _revoke_later(env, token_id: int, delay_s: float, at: list[float]) -> threading.Thread:
    from sqlalchemy import update

    from dispatch.models import ApiToken

    def run() -> None:
        time.sleep(delay_s)
        with env.app.state.sessionmaker() as s, s.begin():
            s.execute(update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=datetime.now(UTC)))
        at.append(time.monotonic())

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def _new_token(env) -> tuple[str, int]:
    from dispatch.core.security import authenticate, issue_token

    with env.app.state.sessionmaker() as s, s.begin():
        token = issue_token(s, "viewer", "大屏-临时")
    with env.app.state.sessionmaker() as s:
        return token, authenticate(s, token).token_id


RECHECK_S = 0.2


def test_revoking_a_token_closes_its_idle_websocket_and_sse_within_a_bound(tmp_path, template_db):
    """An idle stream used to notice only at its next keep-alive (15 s) plus the recheck
    (10 s); now every hub tick re-checks: closed within recheck + tick (0.4 s here)."""
    env = make_env(tmp_path, template_db, live_auth_recheck_s=RECHECK_S)
    try:
        with TestClient(env.app) as c:
            token, tid = _new_token(env)
            hdr = {"Authorization": f"Bearer {token}"}
            with c.websocket_connect("/api/v1/live/ws", headers=hdr) as ws:
                assert json.loads(ws.receive_text())["topic"] == "hello"
                at: list[float] = []
                _revoke_later(env, tid, 0.3, at)
                msg = ws.receive()
                closed = time.monotonic()
            assert msg["type"] == "websocket.close" and msg["code"] == 4401, msg
            assert closed - at[0] < 2.0, closed - at[0]

            token, tid = _new_token(env)
            at = []
            th = _revoke_later(env, tid, 0.5, at)
            t0 = time.monotonic()
            r = c.get("/api/v1/live/sse", headers={"Authorization": f"Bearer {token}"})  # ends when revoked
            ended = time.monotonic()
            th.join()
            assert r.status_code == 200 and "event: hello" in r.text and "event: revoked" in r.text
            assert ended - at[0] < 2.0 and ended - t0 < 5.0, (ended - at[0], ended - t0)
    finally:
        env.app.state.engine.dispose()
