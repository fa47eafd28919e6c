"""Ingest: grouping incidents into one ticket, idempotent re-ingest, routing, evidence
checks and bad input answered with 4xx naming the field while nothing stored is lost."""

from __future__ import annotations

import base64
from datetime import timedelta

import cv2
import numpy as np
import pytest
from sqlalchemy import func, select

from dispatch.models import AuditEntry, Incident, LiveEvent, Ticket
from dispatch.routing import DEFAULT_ROUTING, RoutingError, load_routing, parse_routing

from .conftest import auth, jpeg_bytes, png_bytes


def _pixels(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def counts(env) -> tuple[int, int, int, int]:
    with env.app.state.sessionmaker() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Incident, Ticket, LiveEvent, AuditEntry))


def test_incidents_of_one_place_and_window_merge_into_one_ticket(env):
    a = env.post_incident(env.incident("m1", error_m=4.0))
    b = env.post_incident(env.incident("m2", dx_m=30.0, error_m=4.0))  # 30 m away: same place
    c = env.post_incident(env.incident("m3", dx_m=30.0, class_name="illegal_dumping"))  # other class
    d = env.post_incident(env.incident("m4", dy_m=-120.0))  # 120 m away: another place
    assert a["created"] and b["created"] and a["ticket_id"] == b["ticket_id"]
    assert len({a["ticket_id"], c["ticket_id"], d["ticket_id"]}) == 3
    t = env.client.get(f"/api/v1/tickets/{a['ticket_id']}", headers=auth("dispatcher")).json()
    assert t["incident_count"] == 2 and [i["external_id"] for i in t["incidents"]] == ["m1", "m2"]
    lat0, lon0 = env.point_in("330603-YXQ-001")
    lat1, lon1 = env.point_in("330603-YXQ-001", dx_m=30.0)
    assert t["lon"] == pytest.approx((lon0 + lon1) / 2, abs=1e-9)  # equal errors: the midpoint
    assert t["error_m"] == pytest.approx(4.0 / 2**0.5, abs=0.01)
    assert [e["kind"] for e in t["events"]] == ["created", "incident_merged"]


def test_time_window_and_closed_tickets_start_new_tickets(env):
    first = env.post_incident(env.incident("w1"))["ticket_id"]
    env.clock.advance(env.settings.group_window_s + 60)
    later = env.post_incident(env.incident("w2"))["ticket_id"]  # observed after the window
    assert later != first
    for a in ("sign", "route", "arrive", "resolve", "assess"):
        assert env.step(later, a).status_code == 200
    again = env.post_incident(env.incident("w3"))["ticket_id"]
    assert again not in (first, later)


def test_reingest_is_idempotent(env):
    body = env.incident("idem-1", evidence=True)
    first = env.client.post("/api/v1/incidents", json=body, headers=auth("operator"))
    before = counts(env)
    for _ in range(3):
        r = env.client.post("/api/v1/incidents", json=body, headers=auth("operator"))
        assert r.status_code == 200
        assert r.json() == {**first.json(), "created": False}
    assert first.status_code == 201 and first.json()["created"] is True
    assert counts(env) == before


def test_ticket_names_grid_worker_departments_checklist_priority(env):
    tid = env.post_incident(env.incident("r1", class_name="hazmat_fire"))["ticket_id"]
    t = env.client.get(f"/api/v1/tickets/{tid}", headers=auth("dispatcher")).json()
    assert t["grid_id"] == "330603-YXQ-001" and t["worker"]["name"] == "朱红霞"
    assert t["lead_department"] == "emergency"
    assert t["co_departments"] == ["fire_rescue", "traffic_police", "ecology"]
    assert (t["priority"], t["tier"], t["status"]) == (0, "village", "accepted")
    ids = [i["id"] for i in t["checklist"]]
    assert len(ids) == len(set(ids))  # merged without duplicates
    cordon = next(i for i in t["checklist"] if i["id"] == "emg.cordon")
    assert cordon["departments"] == ["emergency", "fire_rescue"]  # shared item, once, both departments
    routing = load_routing()
    expected = {i.id for d in routing.department_ids("hazmat_fire") for i in routing.departments[d].checklist}
    assert set(ids) == expected


def test_outside_every_grid_is_422_naming_the_field(env):
    before = counts(env)
    r = env.client.post("/api/v1/incidents", json=env.incident("x1", lat=31.5, lon=121.0), headers=auth("operator"))
    assert r.status_code == 422 and r.json()["field"] == "body.lat" and "outside every grid" in r.json()["detail"]
    assert counts(env) == before


@pytest.mark.parametrize(
    "patch, status, field",
    [
        ({"class_name": "ufo"}, 422, "class_name"),
        ({"lat": 95.0}, 422, "lat"),
        ({"lat": "north"}, 422, "lat"),
        ({"source": "satellite"}, 422, "source"),
        ({"observed_at": "yesterday"}, 422, "observed_at"),
        ({"external_id": ""}, 422, "external_id"),
        ({"confidence": 1.5}, 422, "confidence"),
        ({"evidence": {"content_type": "image/gif", "data_b64": "R0lGODlh"}}, 422, "content_type"),
        ({"evidence": {"content_type": "image/jpeg", "data_b64": "%%%notbase64"}}, 422, "data_b64"),
        ({"evidence": {"content_type": "image/jpeg", "data_b64": base64.b64encode(b"hello world").decode()}}, 415,
         "data_b64"),
        ({"evidence": {"content_type": "image/png", "data_b64": base64.b64encode(jpeg_bytes()).decode()}}, 415,
         "data_b64"),
        ({"evidence": {"content_type": "image/png",
                       "data_b64": base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()}}, 422, "data_b64"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(env, patch, status, field):
    env.post_incident(env.incident("keep"))
    before = counts(env)
    r = env.client.post("/api/v1/incidents", json={**env.incident("bad"), **patch}, headers=auth("operator"))
    assert r.status_code == status, r.text
    body = r.json()
    named = body.get("field") or ".".join(str(x) for x in body["detail"][0]["loc"])
    assert field in named, body
    assert counts(env) == before


def test_malformed_json_and_oversized_evidence(env):
    r = env.client.post("/api/v1/incidents", content=b'{"external_id": ', headers={
        **auth("operator"), "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "body"
    env.app.state.settings.max_evidence_bytes = 2000
    big = env.incident("big", evidence=True)
    big["evidence"]["data_b64"] = base64.b64encode(jpeg_bytes(400, 300) + b"\0" * 5000).decode()
    r = env.client.post("/api/v1/incidents", json=big, headers=auth("operator"))
    assert r.status_code == 413 and r.json()["field"] == "body.evidence.data_b64"


def test_evidence_png_stored_and_served_to_authorised_roles_only(env):
    body = env.incident("ev1", evidence=True)
    body["evidence"] = {"content_type": "image/png", "data_b64": base64.b64encode(png_bytes()).decode()}
    tid = env.post_incident(body)["ticket_id"]
    t = env.client.get(f"/api/v1/tickets/{tid}", headers=auth("dispatcher")).json()
    url = t["evidence_url"]
    r = env.client.get(url, headers=auth("dispatcher"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert np.array_equal(_pixels(r.content), _pixels(png_bytes()))  # stored re-encoded, lossless
    assert env.client.get(url, headers=auth("worker1")).status_code == 200  # own grid
    assert env.client.get(url, headers=auth("worker2")).status_code == 404  # another grid: as if missing
    assert env.client.get(url, headers=auth("viewer")).status_code == 403
    assert env.client.get(url).status_code == 401


def test_worker_reports_and_photo_upload(env):
    body = env.incident("wk1", source="worker", drone_id=None)
    assert env.client.post("/api/v1/incidents", json=body, headers=auth("worker2")).status_code == 403  # not theirs
    tid = env.post_incident(body, token="worker1")["ticket_id"]
    r = env.client.post(f"/api/v1/tickets/{tid}/photos", headers=auth("worker1"),
                        files={"file": ("site.jpg", jpeg_bytes(), "image/jpeg")}, data={"caption": "到场"})
    assert r.status_code == 201, r.text
    served = env.client.get(r.json()["url"], headers=auth("worker1")).content
    assert served[:3] == b"\xff\xd8\xff" and _pixels(served).shape == _pixels(jpeg_bytes()).shape  # re-encoded
    r = env.client.post(f"/api/v1/tickets/{tid}/photos", headers=auth("worker1"),
                        files={"file": ("x.jpg", b"not an image", "image/jpeg")})
    assert r.status_code == 415 and r.json()["field"] == "form.file"
    events = env.client.get(f"/api/v1/tickets/{tid}/events", headers=auth("worker1")).json()
    assert [e["kind"] for e in events] == ["created", "photo"] and events[-1]["comment"] == "到场"


def test_query_filters(env):
    a = env.post_incident(env.incident("q1"))["ticket_id"]
    env.clock.advance(3600)
    b = env.post_incident(env.incident("q2", grid_id="330603-YXQ-002", class_name="illegal_dumping"))["ticket_id"]
    env.act(b, "sign")
    H = auth("viewer")

    def ids(**params):
        r = env.client.get("/api/v1/tickets", params=params, headers=H)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    assert ids() == [b, a]
    from dispatch.schemas import TicketPage

    TicketPage.model_validate(env.client.get("/api/v1/tickets", headers=H).json())  # the documented shape
    assert ids(grid_id="330603-YXQ-002") == [b]
    assert ids(status="accepted") == [a]
    assert ids(class_name="straw_burning,illegal_dumping") == [b, a]
    assert ids(tier="town") == []
    since = (env.clock.now() - timedelta(minutes=5)).isoformat()
    assert ids(since=since) == [b]
    assert ids(until=since) == [a]
    lat, lon = env.point_in("330603-YXQ-001")
    assert ids(bbox=f"{lon - 0.0005},{lat - 0.0005},{lon + 0.0005},{lat + 0.0005}") == [a]
    r = env.client.get("/api/v1/tickets", params={"bbox": "1,2,3"}, headers=H)
    assert r.status_code == 422 and r.json()["field"] == "query.bbox"


def test_open311_read_endpoints(env):
    tid = env.post_incident(env.incident("o1", class_name="illegal_structure"))["ticket_id"]
    H = auth("viewer")
    services = env.client.get("/open311/v2/services.json", headers=H).json()
    assert {s["service_code"] for s in services} == {"illegal_structure", "straw_burning", "illegal_dumping",
                                                     "hazmat_fire"}
    reqs = env.client.get("/open311/v2/requests.json", params={"status": "open"}, headers=H).json()
    assert [r["service_request_id"] for r in reqs] == [str(tid)]
    assert reqs[0]["agency_responsible"] == "综合行政执法局" and reqs[0]["long"] == pytest.approx(reqs[0]["long"])
    assert env.client.get("/open311/v2/requests.json", params={"status": "closed"}, headers=H).json() == []
    one = env.client.get(f"/open311/v2/requests/{tid}.json", headers=H).json()
    assert one[0]["service_code"] == "illegal_structure"
    assert env.client.get("/open311/v2/requests/999.json", headers=H).status_code == 404


def test_routing_file_errors_are_located(tmp_path):
    text = DEFAULT_ROUTING.read_text(encoding="utf-8")
    bad = text.replace("lead: enforcement\n    co: [natural_resources]", "lead: enforcment\n    co: [natural_resources]")
    with pytest.raises(RoutingError) as e:
        parse_routing(bad, "county.yaml")
    line = next(i for i, s in enumerate(bad.splitlines(), 1) if "enforcment" in s)
    assert (e.value.file, e.value.line, e.value.field) == ("county.yaml", line, "classes.illegal_structure.lead")
    with pytest.raises(RoutingError) as e:
        parse_routing(text.replace("dispatch_s: 60", "dispatch_s: -1"), "c.yaml")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "dispatch_s: 60" in s)
    assert e.value.field == "sla.dispatch_s" and e.value.line == line
    with pytest.raises(RoutingError) as e:
        parse_routing(text.replace("  illegal_structure:\n", "  illegal_structures:\n"), "c.yaml")
    assert "illegal_structures" in str(e.value)
    with pytest.raises(RoutingError) as e:
        parse_routing("classes: [\n", "c.yaml")
    assert "YAML syntax" in str(e.value)
    p = tmp_path / "r.yaml"
    p.write_text(text.replace("priority: 3", "priority: 1"), encoding="utf-8")
    assert load_routing(p).rule("illegal_structure").priority == 1


def test_county_example_routing_file_loads():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "keqiao" / "routing.yaml"
    r = load_routing(path)
    assert r.rule("straw_burning").lead == "ecology"
