"""Incident keys are globally unique across flight logs (issue 13 item 7): the default
patrol id of ``skygrid vision detect --flight-log`` includes the log's content hash, so a
reused file name on another day does not reuse the keys."""

from __future__ import annotations

from vision.tracker import incident_id, patrol_id_for_log


def test_reused_log_name_gets_new_keys_same_log_same_keys(tmp_path):
    day1, day2 = tmp_path / "a", tmp_path / "b"
    day1.mkdir()
    day2.mkdir()
    (day1 / "flight.csv").write_text("t,lat,lon\n0,30.1,120.6\n")
    (day2 / "flight.csv").write_text("t,lat,lon\n0,30.2,120.7\n")
    p1, p2 = patrol_id_for_log(day1 / "flight.csv"), patrol_id_for_log(day2 / "flight.csv")
    assert p1.startswith("flight-") and p1 != p2
    assert incident_id(p1, 1) != incident_id(p2, 1)
    assert patrol_id_for_log(day1 / "flight.csv") == p1  # re-analysing the same log: same keys (200 at dispatch)
