"""POST /api/v1/incidents/batch: one request and one transaction for many incidents, one
answer per item in order, per-item idempotency and per-item errors naming items[i].field."""

from __future__ import annotations

import base64

import cv2
import numpy as np
from sqlalchemy import func, select

from dispatch.models import AuditEntry, Incident, LiveEvent, Ticket

from .conftest import auth, jpeg_bytes, make_env


def counts(env) -> tuple[int, int, int, int]:
    with env.app.state.sessionmaker() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Incident, Ticket, LiveEvent, AuditEntry))


def post_batch(env, items, token: str = "operator"):
    return env.client.post("/api/v1/incidents/batch", json={"items": items}, headers=auth(token))


def test_mixed_batch_answers_each_item_in_order_and_stores_only_the_good_ones(env):
    stored = env.post_incident(env.incident("old-1", spot=0))
    before = counts(env)
    bad_schema = env.incident("bad-1", spot=3)
    del bad_schema["class_name"]
    items = [
        env.incident("b-1", spot=1),
        env.incident("old-1", spot=0),  # already stored
        env.incident("b-2", spot=1, dx_m=0.0),  # same place and class as b-1: joins its ticket
        env.incident("out-1", lat=31.5, lon=121.0),  # outside every grid
        bad_schema,
        env.incident("b-1", spot=1),  # repeated inside the batch
        env.incident("b-3", spot=2, confidence=1.5),  # out of range
        env.incident("b-4", spot=4, class_name="hazmat_fire"),
    ]
    r = post_batch(env, items)
    assert r.status_code == 200, r.text
    out = r.json()
    res = out["results"]
    assert [a["index"] for a in res] == list(range(len(items)))
    assert [a["status"] for a in res] == [201, 200, 201, 422, 422, 200, 422, 201]
    assert (out["created"], out["existing"], out["errors"]) == (3, 2, 3)
    assert res[1]["incident_id"] == stored["incident_id"] and res[1]["created"] is False
    assert res[2]["ticket_id"] == res[0]["ticket_id"] != res[7]["ticket_id"]
    assert res[5]["incident_id"] == res[0]["incident_id"] and res[5]["created"] is False
    assert res[3]["field"] == "items[3].lat" and "outside every grid" in res[3]["detail"]
    assert res[4]["field"] == "items[4].class_name" and res[4]["incident_id"] is None
    assert res[6]["field"] == "items[6].confidence"
    n_inc, n_tick, n_live, n_audit = counts(env)
    assert (n_inc, n_tick, n_audit) == (before[0] + 3, before[1] + 2, before[3] + 3)
    assert n_live == before[2] + 2  # one outbox row per touched ticket
    t = env.client.get(f"/api/v1/tickets/{res[0]['ticket_id']}", headers=auth("dispatcher")).json()
    assert [i["external_id"] for i in t["incidents"]] == ["b-1", "b-2"]


def test_reposting_a_batch_is_idempotent(env):
    items = [env.incident(f"i-{k}", spot=k) for k in range(5)]
    first = post_batch(env, items).json()
    before = counts(env)
    again = post_batch(env, items).json()
    assert [a["status"] for a in first["results"]] == [201] * 5
    assert [a["status"] for a in again["results"]] == [200] * 5
    assert [a["incident_id"] for a in again["results"]] == [a["incident_id"] for a in first["results"]]
    assert counts(env) == before
    single = env.client.post("/api/v1/incidents", json=items[2], headers=auth("operator"))
    assert single.status_code == 200 and single.json()["incident_id"] == first["results"][2]["incident_id"]


def test_roles_scope_and_body_shape(env):
    items = [env.incident("g-1", spot=0)]
    assert post_batch(env, items, "viewer").status_code == 403
    assert env.client.post("/api/v1/incidents/batch", json={"items": items}).status_code == 401
    assert post_batch(env, []).status_code == 422
    assert env.client.post("/api/v1/incidents/batch", json=items, headers=auth("operator")).status_code == 422
    own = env.incident("w-1", source="worker")  # worker 1's grid (330603-YXQ-001)
    other = env.incident("w-2", grid_id="330603-YXQ-002", source="worker")
    drone = env.incident("w-3", source="drone")
    res = post_batch(env, [own, other, drone], "worker1").json()["results"]
    assert [a["status"] for a in res] == [201, 403, 403]
    assert res[1]["field"] == "items[1].lat" and res[2]["field"] == "items[2].source"


def test_evidence_budget_refuses_only_the_items_beyond_it(tmp_path, template_db):
    size = len(jpeg_bytes())
    env = make_env(tmp_path, template_db, max_evidence_bytes=size + 10)
    try:
        fit = 4 * (size + 10) // size
        items = [env.incident(f"e-{k}", spot=k, evidence=True) for k in range(fit + 2)]
        items[1]["evidence"]["data_b64"] = "@@not base64@@"
        res = post_batch(env, items).json()["results"]
        statuses = [a["status"] for a in res]
        assert statuses[1] == 422 and res[1]["field"] == "items[1].evidence.data_b64"
        assert statuses.count(201) == fit and statuses[-1] == 413
        assert res[-1]["field"] == f"items[{fit + 1}].evidence.data_b64"
        tid = res[0]["ticket_id"]
        t = env.client.get(f"/api/v1/tickets/{tid}", headers=auth("dispatcher")).json()
        img = env.client.get(t["evidence_url"], headers=auth("dispatcher"))
        sent = cv2.imdecode(np.frombuffer(base64.b64decode(items[0]["evidence"]["data_b64"]), np.uint8), 1)
        served = cv2.imdecode(np.frombuffer(img.content, np.uint8), 1)  # stored re-encoded (issue 13)
        assert img.status_code == 200 and served.shape == sent.shape
    finally:
        env.app.state.engine.dispose()


def test_openapi_documents_the_batch_with_incident_items(env):
    spec = env.client.get("/openapi.json").json()
    op = spec["paths"]["/api/v1/incidents/batch"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    items = spec["components"]["schemas"][ref]["properties"]["items"]
    assert items["items"] == {"$ref": "#/components/schemas/IncidentIn"} and items["maxItems"] == 500
    assert "IncidentBatchOut" in op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert "/api/v1/incidents" in spec["paths"]  # the single POST is unchanged
