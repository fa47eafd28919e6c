"""The closed loop as a state machine: every legal transition applies and is recorded,
every illegal one is refused with 409 naming the current state and the allowed actions."""

from __future__ import annotations

from collections import deque

import pytest

from dispatch.workflow import default_workflow

from .conftest import auth

WF = default_workflow()


def path_to(state: str) -> list[str]:
    """Shortest list of actions from the initial state to ``state`` (BFS over the data)."""
    seen, queue = {WF.initial: []}, deque([WF.initial])
    while queue:
        s = queue.popleft()
        for a in WF.actions.values():
            if s in a.sources and a.target not in seen:
                seen[a.target] = [*seen[s], a.id]
                queue.append(a.target)
    return seen[state]


def bring_to(env, state: str, n: int) -> int:
    """A fresh ticket (its own place) moved to ``state`` by the dispatcher."""
    tid = env.post_incident(env.incident(f"wf-{state}-{n}", spot=n))[
        "ticket_id"]
    other = None
    for action in path_to(state):
        kw = {}
        if action == "mark_duplicate":
            other = other or env.post_incident(env.incident(f"wf-other-{state}-{n}", class_name="illegal_dumping"))[
                "ticket_id"]
            kw["duplicate_of"] = other
        r = env.step(tid, action, **kw)
        assert r.status_code == 200, r.text
    return tid


LEGAL = [(a.id, s) for a in WF.actions.values() for s in a.sources]
ILLEGAL = [(a.id, s) for a in WF.actions.values() for s in WF.states if s not in a.sources]


def test_every_state_reachable():
    for s in WF.states:
        assert s == WF.initial or path_to(s), s


def test_every_legal_transition_applies_and_is_recorded(env):
    for n, (action, source) in enumerate(LEGAL):
        tid = bring_to(env, source, n)
        env.clock.advance(7)
        kw = {"duplicate_of": env.post_incident(env.incident(f"dup-{n}", class_name="hazmat_fire"))["ticket_id"]} \
            if action == "mark_duplicate" else {}
        role = "dispatcher" if "dispatcher" in WF.actions[action].roles else "department"
        r = env.step(tid, action, comment=f"why {action}", token=role, **kw)
        assert r.status_code == 200, (action, source, r.text)
        target = WF.actions[action].target
        assert r.json()["status"] == target
        assert r.json()["allowed_actions"] == WF.allowed(target)
        events = env.client.get(f"/api/v1/tickets/{tid}/events", headers=auth("viewer")).json()
        last = events[-1]
        assert (last["kind"], last["action"], last["from_status"], last["to_status"]) == (
            "transition", action, source, target)
        actor = {"dispatcher": "值班长", "department": "生态环境分局"}[role]
        assert last["comment"] == f"why {action}" and last["actor"] == actor and last["actor_role"] == role
        assert last["at"] == env.clock.now().isoformat().replace("+00:00", "Z")
        stage = WF.states[source].stage
        assert last["stage"] == stage
        if stage:
            assert last["duration_s"] == pytest.approx(7.0)


def test_every_illegal_transition_is_refused_with_409(env):
    by_state = {}
    for n, state in enumerate(WF.states):
        by_state[state] = bring_to(env, state, 50 + n)
    for action, state in ILLEGAL:
        tid = by_state[state]
        before = env.client.get(f"/api/v1/tickets/{tid}", headers=auth("viewer")).json()
        r = env.act(tid, action, duplicate_of=1)
        assert r.status_code == 409, (action, state, r.text)
        body = r.json()
        assert body["current_status"] == state
        assert body["allowed_actions"] == WF.allowed(state)
        assert state in body["detail"] and action in body["detail"] and body["field"] == "body.action"
        after = env.client.get(f"/api/v1/tickets/{tid}", headers=auth("viewer")).json()
        assert after["status"] == state and len(after["events"]) == len(before["events"])


def test_unknown_action_is_422_naming_field(env):
    tid = env.post_incident(env.incident("u1"))["ticket_id"]
    r = env.act(tid, "teleport")
    assert r.status_code == 422 and r.json()["field"] == "body.action"
    assert r.json()["allowed_actions"] == WF.allowed("accepted")


def test_roles_per_action(env):
    tid = env.post_incident(env.incident("r1"))["ticket_id"]
    assert env.act(tid, "sign", token="department").status_code == 403
    assert env.act(tid, "sign", token="viewer").status_code == 403
    assert env.act(tid, "sign", token="operator").status_code == 403
    assert env.act(tid, "sign").status_code == 200
    assert env.act(tid, "route").status_code == 200
    # the grid's own worker and the departments act on site
    assert env.act(tid, "arrive", token="worker1").status_code == 200
    assert env.step(tid, "resolve", token="department").status_code == 200
    assert env.act(tid, "assess", token="worker1", score=80).status_code == 403
    assert env.act(tid, "assess", score=80).json()["status"] == "closed"


def test_grid_worker_claims_without_resetting_the_clock_and_can_send_back(env):
    tid = env.post_incident(env.incident("c1"))["ticket_id"]
    env.act(tid, "sign")
    env.act(tid, "route")
    due = env.client.get(f"/api/v1/tickets/{tid}", headers=auth("viewer")).json()["sla"]["due_at"]
    env.clock.advance(60)
    assert env.act(tid, "claim").status_code == 403  # the worker's or a department's action
    r = env.act(tid, "claim", token="worker1", comment="正在前往")
    assert r.status_code == 200 and r.json()["status"] == "routed"
    assert r.json()["sla"]["due_at"] == due  # signing for the order does not buy more time
    r = env.act(tid, "return", token="worker1", comment="非本网格")
    assert r.status_code == 200 and r.json()["status"] == "analyzing"  # back to the dispatcher to re-route
    assert env.act(tid, "claim", token="worker1").status_code == 409


def test_mark_duplicate_needs_another_ticket(env):
    tid = env.post_incident(env.incident("d1"))["ticket_id"]
    for dup in (None, tid, 99999):
        r = env.act(tid, "mark_duplicate", duplicate_of=dup)
        assert r.status_code == 422 and r.json()["field"] == "body.duplicate_of"
    other = env.post_incident(env.incident("d2", class_name="illegal_dumping"))["ticket_id"]
    r = env.act(tid, "mark_duplicate", duplicate_of=other)
    assert r.status_code == 200 and r.json()["duplicate_of"] == other
    r = env.act(tid, "reopen", comment="not the same")
    assert r.json()["status"] == "accepted" and r.json()["duplicate_of"] is None and r.json()["closed_at"] is None


def test_transitions_emit_live_events_in_the_same_transaction(env):
    from sqlalchemy import func, select

    from dispatch.models import LiveEvent

    tid = env.post_incident(env.incident("o1"))["ticket_id"]
    env.act(tid, "sign")
    env.act(tid, "assess")  # refused: nothing written
    with env.app.state.sessionmaker() as s:
        rows = s.scalars(select(LiveEvent).order_by(LiveEvent.id)).all()
        assert [(r.topic, r.payload["change"]) for r in rows] == [("ticket.created", "created"),
                                                                   ("ticket.updated", "transition")]
        assert rows[1].payload["status"] == "analyzing" and rows[1].grid_id == "330603-YXQ-001"
        assert s.scalar(select(func.count(LiveEvent.id))) == 2
