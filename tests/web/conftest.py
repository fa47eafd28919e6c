"""Fixtures for the live/web tests: the real dispatch app under uvicorn on a free loopback
port with a temporary SQLite file, the Keqiao sample grids and one token per role."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from shapely.geometry import shape

from geo.crs import gcj02_to_wgs84
from tests.conftest import ROOT, free_tcp_port

GRIDS = ROOT / "examples" / "keqiao" / "grids.geojson"
TOKENS = {
    "tok-dispatcher": {"role": "dispatcher", "name": "指挥员"},
    "tok-operator": {"role": "operator", "name": "飞手"},
    "tok-viewer": {"role": "viewer", "name": "值班"},
}


def grid_points() -> dict[str, tuple[float, float]]:
    """grid id -> a WGS-84 (lat, lon) inside it (the file is GCJ-02)."""
    gj = json.loads(GRIDS.read_text(encoding="utf-8"))
    out = {}
    for f in gj["features"]:
        p = shape(f["geometry"]).representative_point()
        lon, lat = gcj02_to_wgs84(p.x, p.y)
        out[f["properties"]["grid_id"]] = (lat, lon)
    return out


@dataclass
class Server:
    url: str
    app: Any
    uv: Any
    thread: threading.Thread

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    def h(self, token: str = "tok-operator") -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def ingest(self, class_name: str, lat: float, lon: float, external_id: str, error_m: float = 6.0,
               evidence: dict | None = None) -> dict:
        body = {"external_id": external_id, "source": "drone", "class_name": class_name, "lat": lat, "lon": lon,
                "error_m": error_m, "confidence": 0.9, "observed_at": datetime.now(UTC).isoformat(),
                "drone_id": "d0", "sortie_id": "s0", "frames_seen": 3, "evidence": evidence}
        r = httpx.post(f"{self.url}/api/v1/incidents", json=body, headers=self.h(), timeout=10)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def act(self, ticket_id: int, action: str, token: str = "tok-dispatcher") -> dict:
        r = httpx.post(f"{self.url}/api/v1/tickets/{ticket_id}/actions", json={"action": action},
                       headers=self.h(token), timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def stop(self) -> None:
        self.uv.should_exit = True
        self.thread.join(timeout=10)


def start_server(db: Path, tmp: Path, extra_tokens: dict | None = None, **overrides: Any) -> Server:
    import uvicorn

    from dispatch.app import SERVER_OPTIONS, create_app
    from dispatch.core.config import Settings

    settings = Settings(database_url=f"sqlite:///{db}", evidence_dir=str(tmp / "evidence"), grids_file=str(GRIDS),
                        bootstrap_tokens={**TOKENS, **(extra_tokens or {})}, sla_check_interval_s=5.0,
                        **overrides)
    app = create_app(settings)
    port = free_tcp_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                       **SERVER_OPTIONS))
    th = threading.Thread(target=uv.run, daemon=True, name=f"uvicorn-{port}")
    th.start()
    deadline = time.monotonic() + 60  # hang guard
    while not uv.started:
        assert th.is_alive() and time.monotonic() < deadline, "dispatch app did not start"
        time.sleep(0.02)
    return Server(url=f"http://127.0.0.1:{port}", app=app, uv=uv, thread=th)


@pytest.fixture(scope="session")
def points() -> dict[str, tuple[float, float]]:
    return grid_points()


@pytest.fixture
def make_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Server]]:
    """Factory: start_server(db=...) with cleanup; several may share one SQLite file."""
    monkeypatch.setenv("SKYGRID_LIVE_POLL_S", "0.2")
    started: list[Server] = []

    def make(db: Path | None = None, extra_tokens: dict | None = None, **overrides: Any) -> Server:
        s = start_server(db or tmp_path / "dispatch.db", tmp_path, extra_tokens, **overrides)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    return make_server()
