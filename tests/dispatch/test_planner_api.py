"""The planner API answers geo's errors and warnings in Chinese too (issue 15 item 6)."""

from __future__ import annotations

import base64

from tests.dispatch.conftest import auth
from tests.geo.test_zh import BOWTIE, _fc


def _upload(env, data: bytes, **kw):
    return env.client.post("/api/v1/planner/upload", headers=auth("operator"),
                           json={"filename": "grids.geojson", "data_b64": base64.b64encode(data).decode(),
                                 "crs": "wgs84", "kind": "grid", **kw})


def test_upload_error_carries_detail_zh(env):
    r = _upload(env, _fc(({"grid_id": "G2"}, BOWTIE)))
    assert r.status_code == 422, r.text
    body = r.json()
    assert "Self-intersection" in body["detail"]
    assert "自相交" in body["detail_zh"] and "G2" in body["detail_zh"] and "grids.geojson" in body["detail_zh"]


def test_upload_warnings_come_in_both_languages(env):
    square = {"type": "Polygon", "coordinates": [[[120.5, 30.0], [120.51, 30.0], [120.51, 30.01], [120.5, 30.0]]]}
    r = _upload(env, _fc(({"grid_id": "B1"}, BOWTIE), ({"grid_id": "B2"}, square)), skip_bad=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["warnings"]) == len(body["warnings_zh"]) == 1
    assert "B1" in body["warnings_zh"][0] and body["warnings_zh"][0].startswith("已跳过")
