"""Flight log files: written per sortie, read back; bad lines named."""

from __future__ import annotations

import time

import pytest

from flight.flightlog import (
    FlightLog,
    FlightLogError,
    log_path,
    read_flight_events,
    read_flight_log,
    unique_path,
)
from flight.records import FlightEvent

from .test_reporting import tel


def test_round_trip_filters_other_drones_and_survives_a_truncated_tail(tmp_path):
    p = log_path(tmp_path, "d0", "d0-s0/x")
    assert p.name == "d0_d0-s0_x.jsonl"
    log = FlightLog(p, "d0", "d0-s0")
    for i in range(5):
        log.on_telemetry(tel(i))
        log.on_telemetry(tel(i, drone="d1"))
    log.on_event(FlightEvent("d0", time.time(), "link_lost", "lost", lat=30.0, lon=120.5, data={"item": 3}))
    log.close()
    log.on_telemetry(tel(9))  # after close: ignored, no crash
    poses = read_flight_log(p)
    assert [r.time_s for r in poses] == [tel(i).time_s for i in range(5)]
    assert poses[2] == tel(2).__class__(**{**tel(2).to_dict(), "wall_time": poses[2].wall_time})
    evs = read_flight_events(p)
    assert [e.kind for e in evs] == ["link_lost"] and evs[0].data == {"item": 3}
    with p.open("a") as fh:
        fh.write('{"type": "telemetry", "drone_id": "d0", "ti')  # a crash mid-line
    assert len(read_flight_log(p)) == 5


def test_bad_line_is_named(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"type": "header", "schema": "skygrid.flightlog/1"}\nnot json\n{"type": "event"}\n')
    with pytest.raises(FlightLogError, match=r"bad.jsonl: line 2: invalid JSON"):
        read_flight_log(p)
    p.write_text('{"type": "header", "schema": "skygrid.flightlog/9"}\n')
    with pytest.raises(FlightLogError, match="unsupported flight log schema"):
        read_flight_log(p)
    with pytest.raises(FlightLogError, match="cannot read"):
        read_flight_log(tmp_path / "missing.jsonl")


def test_a_rerun_gets_a_new_file(tmp_path):
    p = tmp_path / "d0_s.jsonl"
    assert unique_path(p) == p
    p.write_text("")
    assert unique_path(p).name == "d0_s.2.jsonl"
