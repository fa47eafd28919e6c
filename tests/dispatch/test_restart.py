"""A crash in the middle of ingest loses nothing: a real server process is killed (SIGKILL)
while clients are posting, restarted on the same SQLite file, and the clients re-send
everything (as the vision stage does): every acknowledged incident is still there with
the same ids, every incident ends up stored exactly once, and the audit chain is intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import func, select

from dispatch.audit import verify
from dispatch.core.db import make_engine, make_sessionmaker
from dispatch.grids import load_grid_index
from dispatch.models import Incident
from tests.conftest import free_tcp_port

from .conftest import GRIDS

N = 90
TOKEN = "tok-restart-operator"


def start_server(db: str, evidence: Path, port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, SKYGRID_BOOTSTRAP_TOKENS=json.dumps({TOKEN: {"role": "operator", "name": "op"}}),
               SKYGRID_EVIDENCE_DIR=str(evidence), SKYGRID_SLA_CHECK_INTERVAL_S="0.5")
    proc = subprocess.Popen([sys.executable, "-m", "skygrid", "serve", "--port", str(port), "--db", db,
                             "--grids", str(GRIDS), "--crs", "gcj02", "--log-level", "warning"],
                            env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start")


def bodies() -> list[dict]:
    grids = load_grid_index(str(GRIDS), "gcj02").grids
    out = []
    for i in range(N):
        p = grids[i % len(grids)].polygon.representative_point()
        out.append({"external_id": f"crash-{i}", "source": "drone",
                    "class_name": ("straw_burning", "illegal_dumping", "hazmat_fire")[i % 3],
                    "lat": p.y + (i // len(grids)) * 1e-5, "lon": p.x, "error_m": 4.0, "confidence": 0.8,
                    "observed_at": datetime.now(UTC).isoformat(), "drone_id": "d0", "frames_seen": 2})
    return out


def test_kill_mid_ingest_restart_loses_nothing(tmp_path):
    db = f"sqlite:///{tmp_path / 'crash.db'}"
    port = free_tcp_port()
    log = tmp_path / "server.log"
    proc = start_server(db, tmp_path / "ev", port, log)
    url = f"http://127.0.0.1:{port}/api/v1/incidents"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    acked: dict[str, tuple[int, int]] = {}
    lock = threading.Lock()
    items = bodies()

    def send(body: dict) -> None:
        try:
            r = httpx.post(url, json=body, headers=headers, timeout=10)
        except httpx.HTTPError:
            return  # the server died under this request: the client will resend
        if r.status_code in (200, 201):
            with lock:
                acked[body["external_id"]] = (r.json()["incident_id"], r.json()["ticket_id"])
                if len(acked) == N // 3:  # kill at the N//3-th ack, from the sender itself: mid-stream
                    proc.send_signal(signal.SIGKILL)  # however slow the machine (a polling killer thread
                    # could be starved past the last request on a loaded one)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, items))
    proc.wait(60)
    before_restart = dict(acked)
    assert N // 3 <= len(before_restart) < N, "the kill must land mid-stream"

    proc = start_server(db, tmp_path / "ev", port, log)
    try:
        results = {}
        with httpx.Client(headers=headers, timeout=10) as client:
            for body in items:  # the client resends everything it is not sure about
                r = client.post(url, json=body)
                assert r.status_code in (200, 201), r.text
                results[body["external_id"]] = r.json()
        for ext, (iid, tid) in before_restart.items():
            assert results[ext] == {"incident_id": iid, "ticket_id": tid, "created": False}
    finally:
        proc.terminate()
        proc.wait(60)
    engine = make_engine(db)
    with make_sessionmaker(engine)() as s:
        assert s.scalar(select(func.count(Incident.id))) == N
        assert s.scalar(select(func.count(func.distinct(Incident.external_id)))) == N
        assert verify(s).ok
    engine.dispose()
