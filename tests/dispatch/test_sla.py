"""SLA timers: expiry flags the ticket overdue (督办) and escalates it one tier, recorded as
an event; clocks are stored deadlines that survive a restart; the app's background task
checks them."""

from __future__ import annotations

import time
from datetime import timedelta

from fastapi.testclient import TestClient

from dispatch.core.clock import ManualClock

from .conftest import auth, make_env


def ticket(env, tid):
    return env.client.get(f"/api/v1/tickets/{tid}", headers=auth("dispatcher")).json()


def test_sign_clock_expiry_escalates_tier_by_tier(env):
    tid = env.post_incident(env.incident("s1"))["ticket_id"]
    t0 = env.clock.now()
    t = ticket(env, tid)
    assert (t["tier"], t["overdue"], t["sla"]["stage"]) == ("village", False, "sign")
    env.clock.advance(29)
    assert env.app.state.run_sla_check() == []
    env.clock.advance(2)  # 31 s > sign within 30 s
    assert env.app.state.run_sla_check() == [tid]
    t = ticket(env, tid)
    assert (t["tier"], t["overdue"], t["escalations"]) == ("town", True, 1)
    assert t["status"] == "accepted"  # escalation flags, it does not move the workflow
    ev = t["events"][-1]
    assert ev["kind"] == "escalated" and ev["actor"] == "system" and ev["stage"] == "sign"
    assert ev["data"]["from_tier"] == "village" and ev["data"]["to_tier"] == "town"
    assert t["sla"]["due_at"] == (t0 + timedelta(seconds=61)).isoformat().replace("+00:00", "Z")
    assert env.app.state.run_sla_check() == []  # nothing more until the new clock runs out
    env.clock.advance(30)
    assert env.app.state.run_sla_check() == [tid]
    assert ticket(env, tid)["tier"] == "district"
    env.clock.advance(30)
    assert env.app.state.run_sla_check() == [tid]  # top tier: stays overdue, no further deadline
    t = ticket(env, tid)
    assert (t["tier"], t["overdue"], t["sla"]["due_at"], t["events"][-1]["kind"]) == ("district", True, None, "overdue")
    env.clock.advance(3600)
    assert env.app.state.run_sla_check() == []


def test_acting_late_is_recorded_not_on_time_and_clears_overdue(env):
    tid = env.post_incident(env.incident("s2"))["ticket_id"]
    env.clock.advance(45)
    env.app.state.run_sla_check()
    r = env.act(tid, "sign")
    assert r.json()["overdue"] is False and r.json()["tier"] == "town"  # tier stays escalated
    ev = ticket(env, tid)["events"][-1]
    assert ev["on_time"] is False and ev["duration_s"] == 45
    env.clock.advance(59)
    env.act(tid, "route")
    assert ticket(env, tid)["events"][-1]["on_time"] is True
    stats = env.client.get("/api/v1/stats?group_by=grid", headers=auth("viewer")).json()
    stages = stats["total"]["stages"]
    assert stages["sign"] == {"count": 1, "on_time": 0, "on_time_rate": 0.0, "median_s": 45.0}
    assert stages["dispatch"] == {"count": 1, "on_time": 1, "on_time_rate": 1.0, "median_s": 59.0}
    assert stats["total"]["escalated"] == 1


def test_on_site_clock_depends_on_area_type(env):
    grids = {g.id: env.app.state.runtime.grids.info[g.id] for g in env.app.state.runtime.grids.grids}
    town = next(i for i, g in grids.items() if g.area_type == "town")
    country = next(i for i, g in grids.items() if g.area_type == "countryside")
    ids = {}
    for gid in (town, country):
        ids[gid] = env.post_incident(env.incident(f"a-{gid}", grid_id=gid))["ticket_id"]
        env.act(ids[gid], "sign")
        env.act(ids[gid], "route")
    assert ticket(env, ids[town])["sla"]["stage"] == "on_site"
    env.clock.advance(301)
    assert env.app.state.run_sla_check() == [ids[town]]
    env.clock.advance(299)  # 600 s: the countryside clock; the town's renewed one ends at 601 s
    assert env.app.state.run_sla_check() == [ids[country]]


def test_timers_survive_a_restart(tmp_path, template_db):
    clock = ManualClock()
    env1 = make_env(tmp_path, template_db, clock=clock)
    tid = env1.post_incident(env1.incident("r1"))["ticket_id"]
    env1.app.state.engine.dispose()
    del env1
    clock.advance(40)  # the server was down when the clock ran out
    env2 = make_env(tmp_path, template_db, clock=clock)
    assert env2.app.state.run_sla_check() == [tid]
    assert ticket(env2, tid)["tier"] == "town"


def test_background_task_checks_timers(tmp_path, template_db):
    env = make_env(tmp_path, template_db, sla_check_interval_s=0.05)
    env.app.state.settings.sla_background = True
    with TestClient(env.app) as client:
        tid = env.post_incident(env.incident("b1"))["ticket_id"]
        env.clock.advance(31)
        deadline = time.monotonic() + 60  # hang guard: the 50 ms background check may be late on a busy machine
        while time.monotonic() < deadline:
            t = client.get(f"/api/v1/tickets/{tid}", headers=auth("viewer")).json()
            if t["tier"] == "town":
                break
            time.sleep(0.05)
        assert t["tier"] == "town" and t["overdue"]


def test_per_class_sla_from_routing(env):
    tid = env.post_incident(env.incident("h1", class_name="hazmat_fire"))["ticket_id"]
    for a in ("sign", "route", "arrive"):
        env.act(tid, a)
    t = ticket(env, tid)
    started = t["sla"]["stage_started_at"]
    assert t["sla"]["stage"] == "handle" and t["priority"] == 0 and t["priority_label"] == "P0"
    from datetime import datetime

    due = datetime.fromisoformat(t["sla"]["due_at"]) - datetime.fromisoformat(started)
    assert due.total_seconds() == 3600  # hazmat_fire overrides handle_s in routing.yaml
