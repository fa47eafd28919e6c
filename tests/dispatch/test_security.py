"""Tokens and roles, grid-scoped access for grid workers, and the hash-chained audit log."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

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
    # a token in the query string is never accepted (URLs end up in logs)
    assert env.client.get("/api/v1/tickets?token=tok-viewer").status_code == 401
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
    # another grid's ticket answers exactly like a missing one (403 would confirm the id exists)
    missing = env.client.get("/api/v1/tickets/999999", headers=w1)
    other = env.client.get(f"/api/v1/tickets/{theirs}", headers=w1)
    assert other.status_code == missing.status_code == 404
    assert other.json()["detail"].replace(str(theirs), "N") == missing.json()["detail"].replace("999999", "N")
    assert env.client.get(f"/api/v1/tickets/{theirs}/events", headers=w1).status_code == 404
    r = env.act(theirs, "arrive", token="worker1")
    assert r.status_code == 404 and r.json()["field"] == "path.ticket_id"
    assert env.client.post(f"/api/v1/tickets/{theirs}/comments", json={"text": "x"}, headers=w1).status_code == 404
    assert env.client.post(f"/api/v1/tickets/{theirs}/photos", headers=w1,
                           files={"file": ("a.jpg", b"x", "image/jpeg")}).status_code in (404, 415)
    assert env.client.get(f"/open311/v2/requests/{theirs}.json", headers=w1).status_code == 404
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


# -- issue 13 item 4: no tokens in URLs, sessions with CSRF, stream tickets, lifetimes ------------
def test_session_cookie_is_httponly_and_writes_need_the_csrf_header(env):
    tid = env.post_incident(env.incident("cs1"))["ticket_id"]
    c = env.client
    r = c.post("/api/v1/session", json={"token": "tok-dispatcher"})
    assert r.status_code == 200 and r.json()["role"] == "dispatcher"
    set_cookie = ";".join(r.headers.get_list("set-cookie"))
    assert "skygrid_session=" in set_cookie and "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
    assert "tok-dispatcher" not in set_cookie  # the cookie holds a session code, not the token
    assert c.get("/api/v1/me").json()["role"] == "dispatcher"  # reads: the cookie alone
    r = c.post(f"/api/v1/tickets/{tid}/comments", json={"text": "x"})
    assert r.status_code == 403 and r.json()["field"] == "header.x-csrf-token"
    r = c.post(f"/api/v1/tickets/{tid}/comments", json={"text": "x"}, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    csrf = c.cookies.get("skygrid_csrf")
    assert c.post(f"/api/v1/tickets/{tid}/comments", json={"text": "x"},
                  headers={"X-CSRF-Token": csrf}).status_code in (200, 201)
    assert c.delete("/api/v1/session").status_code == 204  # logout ends it server-side
    c.cookies.clear()
    assert c.get("/api/v1/me").status_code == 401


def test_stream_tickets_are_single_use_and_tokens_are_not_taken_from_urls(env):
    from starlette.websockets import WebSocketDisconnect

    ticket = env.client.post("/api/v1/live/tickets", headers=auth("viewer")).json()["ticket"]
    with env.client.websocket_connect(f"/api/v1/live/ws?ticket={ticket}") as ws:
        assert json.loads(ws.receive_text())["topic"] == "hello"
    for url in (f"/api/v1/live/ws?ticket={ticket}", "/api/v1/live/ws?token=tok-viewer"):
        with pytest.raises(WebSocketDisconnect) as e, env.client.websocket_connect(url) as ws:
            ws.receive_text()
        assert e.value.code == 1008
    assert env.client.get("/api/v1/live/sse?token=tok-viewer").status_code == 401
    assert env.client.get("/api/v1/evidence/1?token=tok-viewer").status_code == 401


def test_tokens_expire_and_rotation_keeps_the_old_one_only_for_the_grace(env):
    from datetime import UTC, datetime, timedelta

    from dispatch.core.security import parse_duration, rotate_token

    assert parse_duration("90d") == timedelta(days=90) and parse_duration("never") is None
    with pytest.raises(ValueError, match="expires"):
        parse_duration("soon")
    with env.app.state.sessionmaker() as s, s.begin():
        short = issue_token(s, "viewer", "临时", expires_at=datetime.now(UTC) - timedelta(seconds=1))
        live = issue_token(s, "viewer", "值班", expires_at=datetime.now(UTC) + timedelta(days=1))
    assert env.client.get("/api/v1/me", headers={"Authorization": f"Bearer {short}"}).status_code == 401
    assert env.client.get("/api/v1/me", headers={"Authorization": f"Bearer {live}"}).status_code == 200
    with env.app.state.sessionmaker() as s, s.begin():
        old_id = s.scalar(select(ApiToken.id).where(ApiToken.token_hash == hash_token(live)))
        new, _row = rotate_token(s, old_id, timedelta(0), None)
    assert env.client.get("/api/v1/me", headers={"Authorization": f"Bearer {live}"}).status_code == 401
    assert env.client.get("/api/v1/me", headers={"Authorization": f"Bearer {new}"}).json()["name"] == "值班"


def test_cli_creates_expiring_tokens_rotates_and_prints_login_links(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    run = lambda *a: subprocess.run([sys.executable, "-m", "skygrid", "serve", "token", *a, "--db", db],  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    r = run("create", "--role", "viewer", "--name", "大屏", "--expires", "2h")
    assert r.returncode == 0, r.stderr
    listed = run("list").stdout
    assert "never" not in listed.split("\n", 3)[-1] or "大屏" in listed
    rot = run("rotate", "1", "--grace", "5m")
    assert rot.returncode == 0 and rot.stdout.strip().startswith("sg_") and rot.stdout.strip() != r.stdout.strip()
    link = run("login-link", "2", "--base", "http://h:1", "--page", "/worker")
    assert link.returncode == 0 and link.stdout.startswith("http://h:1/login?code=sgc_") and "next=%2Fworker" in link.stdout
    assert run("create", "--role", "viewer", "--name", "x", "--expires", "soon").returncode == 2


def test_failed_tokens_are_throttled_per_address(env):
    codes = [env.client.get("/api/v1/me", headers={"Authorization": f"Bearer guess-{k}"}).status_code
             for k in range(25)]
    assert codes[:20] == [401] * 20 and codes[20:] == [429] * 5
    r = env.client.get("/api/v1/me", headers=auth("viewer"))  # the address, not the token, is throttled
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_access_log_never_holds_a_secret():
    import logging

    from dispatch.core.logs import install_redaction

    install_redaction()
    records: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    logger = logging.getLogger("uvicorn.access")
    h = Grab()
    h.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(h)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:  # the call uvicorn's httptools/h11 protocols make for each request
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET",
                    "/?token=sg_SECRET1&x=1&ticket=sgc_SECRET2", "1.1", 200)
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/login?code=sgc_SECRET3&next=/", "1.1", 303)
    finally:
        logger.removeHandler(h)
        logger.setLevel(old)
    assert len(records) == 2 and "x=1" in records[0] and "next=/" in records[1]
    assert not any("SECRET" in r for r in records), records


# -- issue 13 item 8: verify on a live database; anchoring against a rewritten tail ---------------
def test_audit_verify_is_not_fooled_by_a_concurrent_append(env):
    from sqlalchemy import event

    from dispatch import audit
    from dispatch.core.db import write_transaction

    _busy_chain(env)
    engine = env.app.state.engine
    fired = []

    def append_meanwhile(conn, cursor, statement, *a) -> None:  # noqa: ANN001 - SQLAlchemy hook
        if "FROM audit_log" in statement and not fired:  # right after verify read the entries
            fired.append(1)
            with write_transaction(env.app.state.sessionmaker) as w:
                audit.append(w, datetime.now(UTC), "other-replica", "ticket.comment", "ticket:1", {})

    event.listen(engine, "after_cursor_execute", append_meanwhile)
    try:
        with env.app.state.sessionmaker() as s:
            result = verify(s)
    finally:
        event.remove(engine, "after_cursor_execute", append_meanwhile)
    assert fired and result.ok, result.problems
    with env.app.state.sessionmaker() as s:
        assert verify(s).entries == 6


def _rewrite_from(env, entry_id: int) -> None:
    """What someone with DB write access can do: edit an entry and recompute every later hash and the head."""
    from dispatch.audit import entry_hash
    from dispatch.models import AuditHead

    with env.app.state.engine.begin() as c:
        c.exec_driver_sql("DROP TRIGGER audit_log_no_update")
    with env.app.state.sessionmaker() as s, s.begin():
        prev = s.get(AuditEntry, entry_id - 1).hash if entry_id > 1 else "0" * 64
        for e in s.scalars(select(AuditEntry).where(AuditEntry.id >= entry_id).order_by(AuditEntry.id)):
            if e.id == entry_id:
                e.actor = "someone else"
            e.prev_hash = prev
            e.hash = prev = entry_hash(prev, e.id, e.at, e.actor, e.action, e.target, e.detail)
        head = s.get(AuditHead, 1)
        head.last_hash = prev


def test_signed_checkpoints_catch_a_recomputed_chain(env, tmp_path):
    from dispatch.audit import checkpoint, load_key, verify_checkpoints

    _busy_chain(env)
    key = b"k" * 32
    with env.app.state.sessionmaker() as s:
        lines = [json.dumps(checkpoint(s, key))]
        assert verify_checkpoints(s, lines, key) == []
    _rewrite_from(env, 3)
    with env.app.state.sessionmaker() as s:
        assert verify(s).ok  # the chain alone cannot tell
        problems = verify_checkpoints(s, lines, key)
        assert problems and "entry 5 differs" in problems[0]
        forged = json.dumps(checkpoint(s, b"not the key" * 3))
        assert "bad signature" in verify_checkpoints(s, [forged], key)[0]
    keyfile = tmp_path / "audit.key"
    keyfile.write_bytes(b"0123456789abcdef0123\n")
    assert load_key({"SKYGRID_AUDIT_KEY_FILE": str(keyfile)}) == b"0123456789abcdef0123"
    assert load_key({}) is None


def test_audit_checkpoint_cli(env, tmp_path):
    _busy_chain(env)
    env.app.state.engine.dispose()
    out = tmp_path / "cp.jsonl"
    envvars = {**__import__("os").environ, "SKYGRID_AUDIT_KEY": "a-key-kept-elsewhere"}
    base = [sys.executable, "-m", "skygrid", "audit"]
    db = ["--db", env.settings.database_url]
    r = subprocess.run(base + ["checkpoint", *db, "--out", str(out)], capture_output=True, text=True, env=envvars,
                       timeout=60)
    assert r.returncode == 0 and json.loads(out.read_text())["id"] == 5, r.stderr
    r = subprocess.run(base + ["verify", *db, "--checkpoints", str(out)], capture_output=True, text=True,
                       env=envvars, timeout=60)
    assert r.returncode == 0 and "1 signed checkpoints hold" in r.stdout, r.stdout
    _rewrite_from(env, 2)
    env.app.state.engine.dispose()
    r = subprocess.run(base + ["verify", *db, "--checkpoints", str(out)], capture_output=True, text=True,
                       env=envvars, timeout=60)
    assert r.returncode == 1 and "differs from the checkpoint" in r.stdout, r.stdout

