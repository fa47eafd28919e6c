"""The command room's server side (issue 15 items 4-5): priority order and search, 派单 with
department/person/deadline/instructions, 考核 with a score, 标记重复 with candidates, the
photo rule for 处置完毕, CSV/Excel export, and stage statistics counted once per ticket."""

from __future__ import annotations

import csv
import io

from .conftest import auth


def _to_handling(env, tid: int) -> None:
    for a in ("sign", "route", "arrive"):
        assert env.act(tid, a).status_code == 200


def test_resolve_requires_an_onsite_photo_taken_in_the_handling_stage(env):
    tid = env.post_incident(env.incident("ph1"))["ticket_id"]
    assert env.photo(tid).status_code == 201  # before 处置: does not count for resolving
    env.clock.advance(5)
    _to_handling(env, tid)
    r = env.act(tid, "resolve", token="worker1")
    assert r.status_code == 422 and r.json()["code"] == "photo_required" and r.json()["field"] == "body.action"
    env.clock.advance(5)
    assert env.photo(tid, token="worker1").status_code == 201
    r = env.act(tid, "resolve", token="worker1", comment="已清理")
    assert r.status_code == 200 and r.json()["status"] == "supervising"
    wf = env.client.get("/api/v1/workflow").json()
    assert {a["id"]: a["requires"] for a in wf["actions"]}["resolve"] == ["photo"]


def test_a_workflow_file_can_drop_the_photo_rule(tmp_path):
    import yaml

    from dispatch.workflow import WORKFLOW_FILE, parse_workflow

    data = yaml.safe_load(WORKFLOW_FILE.read_text(encoding="utf-8"))
    del data["actions"]["resolve"]["requires"]
    assert parse_workflow(data).actions["resolve"].requires == ()
    data["actions"]["resolve"]["requires"] = ["signature"]
    try:
        parse_workflow(data)
    except ValueError as e:
        assert "resolve" in str(e) and "signature" in str(e)
    else:
        raise AssertionError("unknown requirement accepted")


def test_route_records_department_person_deadline_and_instructions(env):
    tid = env.post_incident(env.incident("as1"))["ticket_id"]
    env.act(tid, "sign")
    r = env.act(tid, "route", department="nope")
    assert r.status_code == 422 and r.json()["code"] == "unknown_department"
    r = env.act(tid, "route", department="agriculture", assignee="李农技", deadline="2026-12-05T10:00:00",
                instructions="带上测烟仪")
    assert r.status_code == 200, r.text
    a = r.json()["assignment"]
    assert a == {"department": "agriculture", "assignee": "李农技", "deadline": "2026-12-05T10:00:00Z",
                 "instructions": "带上测烟仪"}
    ev = env.client.get(f"/api/v1/tickets/{tid}/events", headers=auth("viewer")).json()[-1]
    assert ev["data"]["assignee"] == "李农技" and ev["data"]["department"] == "agriculture"
    page = env.client.get("/api/v1/tickets", params={"department": "agriculture"}, headers=auth("viewer")).json()
    assert [t["id"] for t in page["items"]] == [tid]
    # 派单 without choices: the rule's lead department
    t2 = env.post_incident(env.incident("as2", spot=40))["ticket_id"]
    env.act(t2, "sign")
    assert env.act(t2, "route").json()["assignment"]["department"] == "ecology"


def test_assess_needs_a_score_that_the_stats_average(env):
    tid = env.post_incident(env.incident("sc1"))["ticket_id"]
    _to_handling(env, tid)
    env.step(tid, "resolve")
    r = env.act(tid, "assess")
    assert r.status_code == 422 and r.json()["code"] == "score_required" and r.json()["field"] == "body.score"
    assert env.act(tid, "assess", score=101).status_code == 422
    r = env.act(tid, "assess", score=85)
    assert r.status_code == 200 and r.json()["score"] == 85 and r.json()["status"] == "closed"
    st = env.client.get("/api/v1/stats", params={"group_by": "grid"}, headers=auth("viewer")).json()
    assert st["total"]["score_avg"] == 85.0 and st["total"]["scored"] == 1
    assert env.act(tid, "reopen").json()["score"] is None


def test_mark_duplicate_explains_in_codes_and_offers_nearby_candidates(env):
    a = env.post_incident(env.incident("du1"))["ticket_id"]
    env.clock.advance(env.settings.group_window_s + 60)  # same place, later: a new ticket
    b = env.post_incident(env.incident("du2", dx_m=30))["ticket_id"]
    far = env.post_incident(env.incident("du3", grid_id="330603-YXQ-002"))["ticket_id"]
    assert len({a, b, far}) == 3
    codes = [env.act(b, "mark_duplicate", duplicate_of=d).json().get("code") for d in (None, b, 99999)]
    assert codes == ["duplicate_of_required", "duplicate_of_self", "duplicate_of_unknown"]
    sim = env.client.get(f"/api/v1/tickets/{b}/similar", params={"radius_m": 100},
                         headers=auth("dispatcher")).json()["items"]
    assert [t["id"] for t in sim] == [a] and 20 < sim[0]["distance_m"] < 40
    r = env.act(b, "mark_duplicate", duplicate_of=a, comment="同一处焚烧")
    assert r.status_code == 200 and r.json()["status"] == "duplicate" and r.json()["duplicate_of"] == a


def test_priority_order_puts_a_fresh_p0_on_top_and_text_search_finds(env):
    low = env.post_incident(env.incident("o1", class_name="illegal_structure", spot=1))["ticket_id"]
    mid = env.post_incident(env.incident("o2", class_name="straw_burning", spot=2))["ticket_id"]
    env.clock.advance(10)
    p0 = env.post_incident(env.incident("o3", class_name="hazmat_fire", spot=3))["ticket_id"]
    newest = env.post_incident(env.incident("o4", class_name="illegal_dumping", spot=4))["ticket_id"]
    ids = [t["id"] for t in env.client.get("/api/v1/tickets", params={"order": "priority"},
                                            headers=auth("viewer")).json()["items"]]
    assert ids == [p0, mid, newest, low]
    got = env.client.get("/api/v1/tickets", params={"q": f"#{mid}"}, headers=auth("viewer")).json()["items"]
    assert [t["id"] for t in got] == [mid]
    got = env.client.get("/api/v1/tickets", params={"priority": "P0"}, headers=auth("viewer")).json()["items"]
    assert [t["id"] for t in got] == [p0]
    name = got[0]["grid_name"]
    by_name = env.client.get("/api/v1/tickets", params={"q": name}, headers=auth("viewer")).json()["items"]
    assert p0 in [t["id"] for t in by_name] and all(t["grid_name"] == name for t in by_name)
    assert env.client.get("/api/v1/tickets", params={"priority": "x"}, headers=auth("viewer")).status_code == 422


def test_export_csv_and_xlsx_carry_the_filtered_tickets_with_chinese_headers(env):
    from openpyxl import load_workbook

    a = env.post_incident(env.incident("e1", class_name="hazmat_fire", spot=5))["ticket_id"]
    b = env.post_incident(env.incident("e2", class_name="straw_burning", spot=6))["ticket_id"]
    env.act(b, "sign")
    env.act(b, "route", assignee="张三")
    r = env.client.get("/api/v1/export/tickets", params={"format": "csv"}, headers=auth("viewer"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="skygrid-tickets-' in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["工单号", "类别", "优先级", "状态"]
    assert [row[0] for row in rows[1:]] == [str(a), str(b)]  # priority order
    assert rows[1][1] == "危化品车辆火情" and rows[2][3] == "流转" and "张三" in rows[2]
    r = env.client.get("/api/v1/export/tickets", params={"format": "xlsx", "class_name": "straw_burning"},
                       headers=auth("viewer"))
    assert r.status_code == 200 and r.content[:2] == b"PK"
    ws = load_workbook(io.BytesIO(r.content)).active
    values = list(ws.values)
    assert values[0][0] == "工单号" and len(values) == 2 and values[1][0] == b and values[1][10] == "张三"
    assert env.client.get("/api/v1/export/tickets", params={"format": "pdf"}, headers=auth("viewer")).status_code \
        == 422


def test_on_site_stage_counts_once_per_ticket(env):
    tid = env.post_incident(env.incident("st1"))["ticket_id"]
    env.act(tid, "sign")
    env.act(tid, "route")
    env.clock.advance(30)
    assert env.act(tid, "claim", token="worker1").status_code == 200  # signs for the order, still 流转
    env.clock.advance(30)
    assert env.act(tid, "arrive", token="worker1").status_code == 200
    env.clock.advance(100)
    env.step(tid, "resolve")
    env.act(tid, "send_back", comment="未清理干净")  # 处置 again
    env.clock.advance(50)
    env.step(tid, "resolve")
    st = env.client.get("/api/v1/stats", headers=auth("viewer")).json()["total"]["stages"]
    assert st["on_site"]["count"] == 1 and st["on_site"]["median_s"] == 60.0
    assert st["handle"]["count"] == 1 and st["handle"]["median_s"] == 150.0
