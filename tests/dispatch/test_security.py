"""Tokens and roles, grid-scoped access for grid workers, and the hash-chained audit log."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from dispatch.audit import verify
from dispatch.core.security import hash_token, issue_token
from dispatch.models import ApiToken, AuditEntry

from .conftest import auth


def test_every_mutating_call_needs_a_token(env):
    tid = env.post_incident(env.incident("a1"))["ticket_id"]
    calls = [
        ("post", "/api/v1/incidents", {"json": env.incident("a2")}),
        ("post", f"/api/v1/tickets/{tid}/actions", {"json": {"action": "sign"}}),
        ("post", f"/api/v1/tickets/{tid}/comments", {"json": {"text": "hi"}}),
        ("post", f"/api/v1/tickets/{tid}/photos", {"files": {"file": ("a.jpg", b"x", "image/jpeg")}}),
    ]
    for method, url, kw in calls:
        assert getattr(env.client, method)(url, **kw).status_code == 401, url
        r = getattr(env.client, method)(url, headers={"Authorization": "Bearer nope"}, **kw)
        assert r.status_code == 401 and r.json()["field"] == "header.authorization"
    # a token in the query string is accepted for reads only
    assert env.client.get("/api/v1/tickets?token=tok-viewer").status_code == 200
    assert env.client.post(f"/api/v1/tickets/{tid}/comments?token=tok-dispatcher", json={"text": "x"}).status_code == 401
    assert env.client.post("/api/v1/incidents", json=env.incident("a3"), headers=auth("viewer")).status_code == 403


def test_tokens_are_stored_hashed(env):
    with env.app.state.sessionmaker() as s, s.begin():
        token = issue_token(s, "dispatcher", "新值班员")
    with env.app.state.sessionmaker() as s:
        rows = s.scalars(select(ApiToken)).all()
        assert all(token not in (r.token_hash, r.name) for r in rows)
        assert any(r.token_hash == hash_token(token) for r in rows)
        raw = s.execute(text("SELECT * FROM api_tokens")).all()
        assert token not in repr(raw)
    assert env.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["role"] == "dispatcher"


def test_grid_worker_sees_and_acts_only_in_their_grids(env):
    mine = env.post_incident(env.incident("g1", grid_id="330603-YXQ-001", evidence=True))["ticket_id"]
    theirs = env.post_incident(env.incident("g2", grid_id="330603-YXQ-002", evidence=True))["ticket_id"]
    for tid in (mine, theirs):
        env.act(tid, "sign")
        env.act(tid, "route")
    w1 = auth("worker1")
    listed = env.client.get("/api/v1/tickets", headers=w1).json()
    assert [t["id"] for t in listed["items"]] == [mine] and listed["total"] == 1
    assert env.client.get("/api/v1/tickets", params={"grid_id": "330603-YXQ-002"}, headers=w1).json()["total"] == 0
    assert env.client.get(f"/api/v1/tickets/{theirs}", headers=w1).status_code == 403
    assert env.client.get(f"/api/v1/tickets/{theirs}/events", headers=w1).status_code == 403
    r = env.act(theirs, "arrive", token="worker1")
    assert r.status_code == 403 and r.json()["field"] == "path.ticket_id"
    assert env.client.post(f"/api/v1/tickets/{theirs}/comments", json={"text": "x"}, headers=w1).status_code == 403
    assert env.client.post(f"/api/v1/tickets/{theirs}/photos", headers=w1,
                           files={"file": ("a.jpg", b"x", "image/jpeg")}).status_code in (403, 415)
    assert env.client.get(f"/open311/v2/requests/{theirs}.json", headers=w1).status_code == 403
    assert [r["service_request_id"] for r in env.client.get("/open311/v2/requests.json", headers=w1).json()] == [
        str(mine)]
    assert {g["id"] for g in env.client.get("/api/v1/grids", headers=w1).json()["items"]} == {"330603-YXQ-001"}
    stats = env.client.get("/api/v1/stats", headers=w1).json()
    assert [g["key"] for g in stats["groups"]] == ["330603-YXQ-001"]
    # their own ticket: fine
    assert env.act(mine, "arrive", token="worker1").json()["status"] == "handling"
    # nothing changed on the other ticket
    assert env.client.get(f"/api/v1/tickets/{theirs}", headers=auth("dispatcher")).json()["status"] == "routed"


def _busy_chain(env):
    tid = env.post_incident(env.incident("c1"))["ticket_id"]
    env.post_incident(env.incident("c2", dx_m=10))
    env.act(tid, "sign", comment="签收")
    env.client.post(f"/api/v1/tickets/{tid}/comments", json={"text": "在路上"}, headers=auth("department"))
    env.clock.advance(120)
    env.app.state.run_sla_check()
    return tid


def test_audit_chain_verifies_and_refuses_updates(env):
    _busy_chain(env)
    with env.app.state.sessionmaker() as s:
        result = verify(s)
        actions = [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert result.ok and result.entries == 5, result.problems
    assert actions == ["incident.ingest", "incident.ingest", "ticket.sign", "ticket.comment", "ticket.escalated"]
    with env.app.state.engine.begin() as c, pytest.raises(DatabaseError, match="append-only"):
        c.execute(text("UPDATE audit_log SET actor = 'x' WHERE id = 1"))
    with env.app.state.engine.begin() as c, pytest.raises(DatabaseError, match="append-only"):
        c.execute(text("DELETE FROM audit_log WHERE id = 5"))


@pytest.mark.parametrize("tamper, expect", [
    ("UPDATE audit_log SET detail = '{\"text\": \"没去\"}' WHERE id = 4", "entry 4: content changed"),
    ("DELETE FROM audit_log WHERE id = 2", "entry 3: expected id 2"),
    ("DELETE FROM audit_log WHERE id = 5", "head: records last entry 5"),
    ("UPDATE audit_log SET at = '2020-01-01 00:00:00' WHERE id = 1", "entry 1: content changed"),
])
def test_audit_tampering_is_detected(env, tamper, expect):
    _busy_chain(env)
    with env.app.state.engine.begin() as c:  # a DBA with write access bypasses the triggers
        c.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        c.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
        c.exec_driver_sql(tamper)
    with env.app.state.sessionmaker() as s:
        result = verify(s)
    assert not result.ok and any(expect in p for p in result.problems), result.problems


def test_audit_verify_cli(env):
    _busy_chain(env)
    env.app.state.engine.dispose()
    cmd = [sys.executable, "-m", "skygrid", "audit", "verify", "--db", env.settings.database_url]
    cli = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and "intact" in cli.stdout and "5 entries" in cli.stdout
    with env.app.state.engine.begin() as c:
        c.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        c.exec_driver_sql("UPDATE audit_log SET actor = 'someone else' WHERE id = 3")
    env.app.state.engine.dispose()
    cli = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1 and "BROKEN" in cli.stdout and "entry 3: content changed" in cli.stdout
