"""Idempotency keys (issue 13 item 7): ``external_id`` is scoped by source, the same key
with another payload is refused 409 naming the field, an exact repeat stays 200 (0 lost,
0 duplicated), and migration 0006 carries existing rows over on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import column, create_engine, func, insert, select, table, text
from sqlalchemy.exc import IntegrityError

from dispatch.core.db import current_revision, downgrade, make_engine, upgrade
from dispatch.models import Incident

from .conftest import auth


def _count(env) -> int:
    with env.app.state.sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(Incident))


def test_a_grid_worker_cannot_pre_claim_a_drone_key(env):
    """A worker posting the drone's key first used to make the drone's P0 report answer 200
    "already stored" and vanish; now each source has its own keys."""
    key = "patrol-7/track/1"
    w = env.client.post("/api/v1/incidents", json=env.incident(key, source="worker", class_name="illegal_dumping"),
                        headers=auth("worker1"))
    assert w.status_code == 201, w.text
    d = env.client.post("/api/v1/incidents", json=env.incident(key, class_name="straw_burning"),
                        headers=auth("operator"))
    assert d.status_code == 201 and d.json()["created"] is True, d.text
    assert d.json()["incident_id"] != w.json()["incident_id"]
    assert env.client.get(f"/api/v1/tickets/{d.json()['ticket_id']}", headers=auth("dispatcher")
                          ).json()["class_name"] == "straw_burning"


def test_same_key_other_payload_is_409_exact_repeat_is_200(env):
    body = env.incident("k-1", evidence=True)
    first = env.client.post("/api/v1/incidents", json=body, headers=auth("operator"))
    assert first.status_code == 201
    for _ in range(10):  # idempotent redelivery: same answer, nothing new stored
        again = env.client.post("/api/v1/incidents", json=body, headers=auth("operator"))
        assert again.status_code == 200 and again.json() == {**first.json(), "created": False}
    n = _count(env)
    for change in ({"class_name": "illegal_dumping"}, {"lat": body["lat"] + 0.001}, {"frames_seen": 9},
                   {"observed_at": "2026-01-02T00:00:00Z"}, {"evidence": None}):
        r = env.client.post("/api/v1/incidents", json={**body, **change}, headers=auth("operator"))
        assert r.status_code == 409, (change, r.text)
        assert r.json()["field"] == "body.external_id" and r.json()["code"] == "external_id_conflict"
        assert "external_id" in r.json()["detail"]
    assert _count(env) == n
    # the same payload spelled differently (naive vs Z time, 5 vs 5.0) is the same payload
    same = {**body, "observed_at": body["observed_at"].replace("+00:00", "Z"), "error_m": 5}
    assert env.client.post("/api/v1/incidents", json=same, headers=auth("operator")).status_code == 200


def test_batch_conflicts_per_item_and_redelivery_loses_nothing(env):
    items = [env.incident(f"b-{i}", spot=i) for i in range(20)]
    r = env.client.post("/api/v1/incidents/batch", json={"items": items}, headers=auth("operator")).json()
    assert r["created"] == 20
    for _ in range(10):
        again = env.client.post("/api/v1/incidents/batch", json={"items": items}, headers=auth("operator")).json()
        assert again["existing"] == 20 and again["created"] == again["errors"] == 0
    assert _count(env) == 20
    # within one batch: a repeat is fine, the same key with another payload is that item's 409
    mixed = [env.incident("m-1", spot=30), env.incident("m-1", spot=30), env.incident("m-1", spot=31)]
    res = env.client.post("/api/v1/incidents/batch", json={"items": mixed}, headers=auth("operator")).json()
    assert [x["status"] for x in res["results"]] == [201, 200, 409]
    assert res["results"][2]["field"] == "items[2].external_id"
    # another source may use the same keys
    other = env.client.post("/api/v1/incidents/batch", json={"items": items[:3]}, headers=auth("dispatcher")).json()
    assert other["created"] == 3


_LEGACY = table("incidents", *(column(c) for c in (
    "external_id", "source", "class_name", "lat", "lon", "error_m", "confidence", "observed_at", "received_at",
    "frames_seen", "ticket_id", "reported_by")))


def _migrate_with_legacy_rows(url: str) -> None:
    """Rows stored under 0005 (global keys) get their source from ``reported_by``; after
    0006 a key is unique per source; down to 0005 and up again works."""
    engine = make_engine(url)
    upgrade(engine, "0005")
    now = datetime(2026, 1, 1)
    with engine.begin() as c:
        # incidents only: skip the FK to tickets for this data-migration check
        c.execute(text("SET session_replication_role = replica" if engine.dialect.name == "postgresql"
                       else "PRAGMA foreign_keys=OFF"))
        c.execute(insert(_LEGACY), [{
            "external_id": ext, "source": "drone", "class_name": "straw_burning", "lat": 30.0, "lon": 120.0,
            "error_m": 5.0, "confidence": 0.9, "observed_at": now, "received_at": now, "frames_seen": 1,
            "ticket_id": 1, "reported_by": who} for ext, who in
            (("old-1", "operator:飞手#3"), ("old-2", "dispatcher:值班长#1"), ("old-3", None))])
    upgrade(engine)
    assert current_revision(engine) >= "0006"
    with engine.connect() as c:
        got = dict(c.execute(text("SELECT external_id, source_key FROM incidents")).all())
    assert got == {"old-1": "operator:飞手", "old-2": "dispatcher:值班长", "old-3": "system"}
    with engine.begin() as c:  # a key may repeat under another source ...
        c.execute(text("UPDATE incidents SET external_id = 'old-1' WHERE external_id = 'old-2'"))
    with pytest.raises(IntegrityError), engine.begin() as c:  # ... not twice under one
        c.execute(text("UPDATE incidents SET source_key = 'operator:飞手' WHERE external_id = 'old-1'"))
    with engine.begin() as c:
        c.execute(text("UPDATE incidents SET external_id = 'old-2' WHERE source_key = 'dispatcher:值班长'"))
    downgrade(engine, "0005")
    upgrade(engine)
    engine.dispose()


def test_migration_0006_on_sqlite(tmp_path):
    _migrate_with_legacy_rows(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_migration_0006_on_postgres(pg_url):
    def reset() -> None:
        eng = create_engine(pg_url)
        with eng.begin() as c:
            c.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            c.execute(text("CREATE SCHEMA public"))
        eng.dispose()

    reset()
    try:
        _migrate_with_legacy_rows(pg_url)
    finally:
        reset()
