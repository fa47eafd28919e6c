"""DispatchClient against a tiny local FastAPI stub of POST /api/v1/incidents: idempotent
posting with evidence, retries on 5xx and network errors, no retry on 4xx, never blocking.

"Never blocks" is checked structurally, not by a stopwatch: ``submit`` returns while the stub
holds a POST open on a :class:`threading.Event`. Waits are event-driven with generous
deadlines that only guard against a hang (a loaded CI machine is slow, not wrong)."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid

import cv2
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from tests.conftest import free_tcp_port
from vision.contracts import Incident
from vision.reporter import DispatchClient, incident_payload

TOKEN = "op-token"
HANG_GUARD_S = 60.0  # wall seconds: only a hung test waits this long


class Stub:
    """In-memory dispatch: dedupes by external_id; fails the first ``fail_first`` requests with 503."""

    def __init__(self) -> None:
        self.fail_first = 0
        self.gate: threading.Event | None = None  # set: a POST waits here until the test opens it
        self.held = threading.Event()  # a POST is being held at the gate
        self.strict = False  # like dispatch since issue 13 item 7: a changed payload under a stored key is 409
        self.requests: list[dict] = []
        self.incidents: dict[str, dict] = {}
        self.app = FastAPI()

        @self.app.post("/api/v1/incidents")
        async def post(request: Request, authorization: str = Header("")):
            if authorization != f"Bearer {TOKEN}":
                raise HTTPException(401, "bad token")
            body = await request.json()
            self.requests.append(body)
            if self.gate is not None:
                self.held.set()
                await asyncio.to_thread(self.gate.wait, HANG_GUARD_S)
            if len(self.requests) <= self.fail_first:
                return JSONResponse({"detail": "database busy"}, status_code=503)
            ext = body["external_id"]
            if ext in self.incidents:
                if self.strict and body != self.incidents[ext]["body"]:
                    return JSONResponse({"detail": "external_id: different payload", "field": "body.external_id",
                                         "code": "external_id_conflict"}, status_code=409)
                self.incidents[ext]["body"] = body
                return JSONResponse({**self.incidents[ext]["ids"], "created": False}, status_code=200)
            ids = {"incident_id": len(self.incidents) + 1, "ticket_id": 100 + len(self.incidents)}
            self.incidents[ext] = {"ids": ids, "body": body}
            return JSONResponse({**ids, "created": True}, status_code=201)


@pytest.fixture(scope="module")
def server():
    stub = Stub()
    port = free_tcp_port()
    srv = uvicorn.Server(uvicorn.Config(stub.app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.monotonic() + HANG_GUARD_S
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    yield stub, f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(5)


@pytest.fixture
def stub(server):
    s, url = server
    s.fail_first, s.gate, s.strict = 0, None, False
    s.held.clear()
    s.requests.clear()
    s.incidents.clear()
    return s, url


def incident(n: int = 1, frames: int = 3) -> Incident:
    jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 120, np.uint8))[1].tobytes()
    return Incident(id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"t/{n}")), class_name="straw_burning", lat=30.1, lon=120.6,
                    error_m=2.5, confidence=0.87, first_seen_s=10.0, last_seen_s=12.0, frames_seen=frames,
                    drone_id="d0", sortie_id="s1", evidence_jpeg=jpeg, first_frame_wall_time=1.7e9)


def test_payload_follows_the_contract():
    p = incident_payload(incident())
    assert set(p) == {"external_id", "source", "class_name", "lat", "lon", "error_m", "confidence", "observed_at",
                      "drone_id", "sortie_id", "frames_seen", "evidence"}
    assert p["source"] == "drone" and p["observed_at"].startswith("2023-11-14T22:13:20") and p["observed_at"].endswith("Z")
    assert base64.b64decode(p["evidence"]["data_b64"])[:2] == b"\xff\xd8" and p["evidence"]["content_type"] == "image/jpeg"
    assert incident_payload(Incident(**{**incident().__dict__, "evidence_jpeg": None}))["evidence"] is None


def test_posts_idempotently_with_evidence(stub):
    s, url = stub
    with DispatchClient(url, TOKEN) as c:
        c.submit(incident(1))
        assert c.flush(HANG_GUARD_S)
        c.submit(incident(1, frames=5))  # an update of the same incident
        c.submit(incident(2))
        assert c.flush(HANG_GUARD_S)
        assert c.results[incident(1).id] == {"incident_id": 1, "ticket_id": 100, "created": False}
        assert c.results[incident(2).id]["created"] is True
    assert len(s.incidents) == 2 and len(s.requests) == 3
    assert s.incidents[incident(1).id]["body"]["frames_seen"] == 5


def test_refused_update_is_counted_not_a_failure(stub):
    """Dispatch keeps the first version (409 on a changed payload): for an incident this client
    reported, that is an update refused, not a failure; for a key it never stored, a failure."""
    s, url = stub
    s.strict = True
    with DispatchClient(url, TOKEN, backoff_s=0.05) as c:
        c.submit(incident(5))
        assert c.flush(HANG_GUARD_S)
        first = dict(c.results[incident(5).id])
        c.submit(incident(5))  # exact re-send: 200
        c.submit(incident(5, frames=7))
        assert c.flush(HANG_GUARD_S)
        assert c.updates_refused == 1 and not c.failures and c.results[incident(5).id]["incident_id"] == first[
            "incident_id"]
    s.incidents[incident(6).id] = {"ids": {"incident_id": 99, "ticket_id": 99}, "body": {"other": 1}}
    with DispatchClient(url, TOKEN, backoff_s=0.05) as c:
        c.submit(incident(6))
        assert c.flush(HANG_GUARD_S)
        assert "HTTP 409" in c.failures[incident(6).id] and c.updates_refused == 0 and c.retries == 0


def test_retries_5xx_with_backoff(stub):
    s, url = stub
    s.fail_first = 2
    with DispatchClient(url, TOKEN, backoff_s=0.05) as c:
        c.submit(incident(3))
        assert c.flush(HANG_GUARD_S)
        assert c.retries == 2 and c.results[incident(3).id]["created"] is True and not c.failures
    assert len(s.requests) == 3 and len(s.incidents) == 1


def test_4xx_is_not_retried_and_is_recorded(stub):
    s, url = stub
    with DispatchClient(url, "wrong", backoff_s=0.05) as c:
        c.submit(incident(4))
        assert c.flush(HANG_GUARD_S)
        assert "HTTP 401" in c.failures[incident(4).id] and c.retries == 0


def test_network_down_is_retried_and_recovers_when_dispatch_comes_up():
    """Dispatch down: submits queue (updates of one incident coalesce), the sender retries;
    once dispatch is up everything lands, newest version of each incident. (That ``submit``
    never waits on the network is shown by ``test_submit_returns_while_dispatch_holds_a_post``.)"""
    port = free_tcp_port()
    stub = Stub()
    c = DispatchClient(f"http://127.0.0.1:{port}", TOKEN, backoff_s=0.1, max_backoff_s=0.3, max_attempts=1000,
                       timeout_s=1.0)
    for i in range(50):
        c.submit(incident(10 + i % 5, frames=i))  # updates of 5 incidents coalesce in the queue
    deadline = time.monotonic() + HANG_GUARD_S
    while c.retries < 1 and time.monotonic() < deadline:  # the sender has met the closed port
        time.sleep(0.02)
    assert c.retries >= 1 and not c.results and not c.failures
    srv = uvicorn.Server(uvicorn.Config(stub.app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    try:
        assert c.flush(HANG_GUARD_S)
        assert len(stub.incidents) == 5 and len(c.results) == 5 and not c.failures
        assert len(stub.requests) <= 10  # coalesced: not 50 posts
        assert {b["body"]["frames_seen"] for b in stub.incidents.values()} == {45, 46, 47, 48, 49}
    finally:
        c.close(2)
        srv.should_exit = True
        th.join(5)


def test_submit_returns_while_dispatch_holds_a_post(stub):
    """The detection loop is never held up: with the sender thread stuck inside a POST that
    dispatch holds open (a gate only this test opens), ``submit`` still returns and queues.
    A blocking ``submit`` would wait for that POST (client timeout 600 s) and fail the join."""
    s, url = stub
    s.gate = threading.Event()
    with DispatchClient(url, TOKEN, timeout_s=600.0) as c:
        try:
            c.submit(incident(20))
            assert s.held.wait(HANG_GUARD_S), "the stub never received the first POST"
            producer = threading.Thread(target=lambda: [c.submit(incident(21 + i)) for i in range(2)], daemon=True)
            producer.start()
            producer.join(HANG_GUARD_S)
            assert not producer.is_alive(), "submit blocked while dispatch held a POST open"
            assert c.sent == 0 and not c.results and len(s.requests) == 1  # the first POST is still held
        finally:
            s.gate.set()
        assert c.flush(HANG_GUARD_S) and len(c.results) == 3 and not c.failures


def test_stage_reports_each_incident_once_with_its_final_state(stub):
    from geo.camera import PRESETS
    from geo.georef import CameraPose
    from vision.contracts import Detection, Frame
    from vision.pipeline import VisionStage
    from vision.tracker import IncidentTracker

    class Fixed:
        def detect(self, image):
            return [Detection("hazmat_fire", 3, 0.8, (300, 220, 340, 260))]

    s, url = stub
    cam = PRESETS["m3e"].scaled(640)
    pose = CameraPose(30.0, 120.0, 100.0, 20.0)
    with DispatchClient(url, TOKEN) as c:
        stage = VisionStage(Fixed(), IncidentTracker("rep", k=2, n=3), cam, reporter=c)
        for i in range(6):
            stage.process(Frame(image=np.zeros((480, 640, 3), np.uint8), camera=cam, pose=pose, frame_id=i, time_s=i))
        stage.finish()
        assert c.flush(HANG_GUARD_S)
    (only,) = s.incidents.values()
    assert only["body"]["class_name"] == "hazmat_fire" and only["body"]["frames_seen"] == 6
    assert only["body"]["evidence"]["content_type"] == "image/jpeg"
