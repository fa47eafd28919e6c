"""Fixtures for the dispatch tests: an app on a fresh SQLite file with a manual clock,
known tokens per role, the Keqiao sample grids, and helpers to build incidents."""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from dispatch.app import create_app
from dispatch.core.clock import ManualClock
from dispatch.core.config import Settings
from dispatch.core.db import make_engine, upgrade

ROOT = Path(__file__).resolve().parents[2]
GRIDS = ROOT / "examples" / "keqiao" / "grids.geojson"

TOKENS: dict[str, dict[str, Any]] = {
    "tok-dispatcher": {"role": "dispatcher", "name": "值班长"},
    "tok-operator": {"role": "operator", "name": "飞手"},
    "tok-department": {"role": "department", "name": "生态环境分局"},
    "tok-viewer": {"role": "viewer", "name": "大屏"},
    "tok-worker1": {"role": "grid_worker", "name": "网格员甲", "grid_ids": ["330603-YXQ-001"]},
    "tok-worker2": {"role": "grid_worker", "name": "网格员乙", "grid_ids": ["330603-YXQ-002"]},
}


def auth(role_or_token: str) -> dict[str, str]:
    token = role_or_token if role_or_token.startswith("tok-") else f"tok-{role_or_token}"
    return {"Authorization": f"Bearer {token}"}


def jpeg_bytes(w: int = 64, h: int = 48) -> bytes:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (0, 0, 255)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def png_bytes(w: int = 16, h: int = 16) -> bytes:
    ok, buf = cv2.imencode(".png", np.full((h, w, 3), 200, np.uint8))
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    """One migrated SQLite file, copied for each test (migrations run once per session)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as c:
        c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@dataclass
class Env:
    app: Any
    client: TestClient
    clock: ManualClock
    settings: Settings
    db_path: Path

    def point_in(self, grid_id: str, dx_m: float = 0.0, dy_m: float = 0.0) -> tuple[float, float]:
        """(lat, lon) of a point inside ``grid_id``, shifted by dx/dy metres east/north."""
        g = next(g for g in self.app.state.runtime.grids.grids if g.id == grid_id)
        p = g.polygon.representative_point()
        lat = p.y + dy_m / 111_320.0
        lon = p.x + dx_m / (111_320.0 * np.cos(np.radians(p.y)))
        return lat, lon

    def spot(self, n: int) -> tuple[float, float]:
        """The n-th point of a 70 m lattice laid over all grids ((lat, lon), inside a grid):
        distinct spots never group into one ticket."""
        if not hasattr(self, "_spots"):
            from shapely.geometry import Point

            pts = []
            for g in self.app.state.runtime.grids.grids:
                x0, y0, x1, y1 = g.polygon.bounds
                step_y = 70.0 / 111_320.0
                step_x = step_y / np.cos(np.radians(y0))
                for y in np.arange(y0 + step_y / 2, y1, step_y):
                    for x in np.arange(x0 + step_x / 2, x1, step_x):
                        if g.polygon.buffer(-0.0001).contains(Point(x, y)):
                            pts.append((float(y), float(x)))
            self._spots = pts
        return self._spots[n]

    def incident(self, external_id: str, grid_id: str = "330603-YXQ-001", class_name: str = "straw_burning",
                 dx_m: float = 0.0, dy_m: float = 0.0, evidence: bool = False, **kw: Any) -> dict[str, Any]:
        lat, lon = self.point_in(grid_id, dx_m, dy_m)
        if "spot" in kw:
            lat, lon = self.spot(kw.pop("spot"))
        body = {"external_id": external_id, "source": "drone", "class_name": class_name, "lat": lat, "lon": lon,
                "error_m": 5.0, "confidence": 0.9, "observed_at": self.clock.now().isoformat(), "drone_id": "d0",
                "sortie_id": "s0", "frames_seen": 3, "evidence": None}
        if evidence:
            body["evidence"] = {"content_type": "image/jpeg", "data_b64": base64.b64encode(jpeg_bytes()).decode()}
        body.update(kw)
        return body

    def post_incident(self, body: dict[str, Any], token: str = "operator") -> dict[str, Any]:
        r = self.client.post("/api/v1/incidents", json=body, headers=auth(token))
        assert r.status_code in (200, 201), r.text
        return r.json()

    def act(self, ticket_id: int, action: str, token: str = "dispatcher", **kw: Any):
        return self.client.post(f"/api/v1/tickets/{ticket_id}/actions", json={"action": action, **kw},
                                headers=auth(token))

    def photo(self, ticket_id: int, token: str = "dispatcher", caption: str | None = None):
        """Upload an on-site photo (what ``resolve`` requires by the default workflow)."""
        data = {"caption": caption} if caption else None
        return self.client.post(f"/api/v1/tickets/{ticket_id}/photos", headers=auth(token), data=data,
                                files={"file": ("p.jpg", jpeg_bytes(), "image/jpeg")})

    def step(self, ticket_id: int, action: str, token: str = "dispatcher", **kw: Any):
        """``act`` after meeting the workflow's ``requires`` (a photo before, a score with)."""
        from dispatch.workflow import default_workflow

        req = default_workflow().actions[action].requires if action in default_workflow().actions else ()
        if "photo" in req:
            assert self.photo(ticket_id, token).status_code == 201
        if "score" in req:
            kw.setdefault("score", 90)
        return self.act(ticket_id, action, token, **kw)


def make_env(tmp_path: Path, template_db: Path, clock: ManualClock | None = None, **overrides: Any) -> Env:
    db = tmp_path / "dispatch.db"
    if not db.exists():
        shutil.copy(template_db, db)
    settings = Settings(database_url=f"sqlite:///{db}", evidence_dir=str(tmp_path / "evidence"),
                        grids_file=str(GRIDS), grids_crs="gcj02", bootstrap_tokens=TOKENS,
                        sla_background=False, **overrides)
    clock = clock or ManualClock()
    app = create_app(settings, clock)
    return Env(app=app, client=TestClient(app), clock=clock, settings=settings, db_path=db)


@pytest.fixture
def env(tmp_path, template_db) -> Env:
    e = make_env(tmp_path, template_db)
    yield e
    e.app.state.engine.dispose()
