"""Telemetry streams on the wire (raw pymavlink listener): sim-time stamps and wall-rate caps.

Nothing here depends on how fast the machine is. Stamps are compared with the vehicle's own
simulated clock (``SimVehicle.sim_time_s``), not with a stopwatch. Rate caps are upper bounds
that hold on any machine (a loaded one sends fewer messages, never more); the lower bounds
only check that a stream flows (a hang guard). The achieved message rates per wall second
are a benchmark figure: ``bench/bench_sim.py`` ("msg/s per vehicle").
"""

from __future__ import annotations

import socket
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from pymavlink.dialects.v20 import common as mavlink

from simulators.vehicle import SimVehicle, VehicleConfig
from tests.conftest import free_udp_port

HANG_GUARD_S = 30.0  # wall seconds: only a hung vehicle makes a test wait this long


@dataclass
class Heard:
    """What a listener received. ``got[type]``: (sim clock read right after receipt, message);
    ``wall_s``: wall seconds from just before the vehicle started to just after it stopped
    (every message was sent inside that span); ``sim_span_s``/``wall_span_s``: the vehicle's
    sim clock advance over a wall span measured around it (sim read after the first wall read,
    before the second)."""

    got: dict[str, list[tuple[float, object]]] = field(default_factory=lambda: defaultdict(list))
    wall_s: float = 0.0
    sim_span_s: float = 0.0
    wall_span_s: float = 0.0
    stamped_after_s: float | None = None  # sim clock S read mid-run; a later message was stamped >= S


def listen(speed: float, enough: Callable[[dict], bool], **kw) -> tuple[Heard, SimVehicle]:
    """Run one vehicle at ``speed`` and collect what it sends until ``enough(got)`` (or the hang
    guard); then read the sim clock S and wait for a GLOBAL_POSITION_INT stamped at or after S."""
    port = free_udp_port()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(0.1)
    heard = Heard()
    dec = mavlink.MAVLink(None)
    t_start = time.monotonic()
    v = SimVehicle(VehicleConfig(gcs_port=port, listen_port=free_udp_port(), speed_factor=speed, **kw)).start()
    w0 = time.monotonic()
    s0 = v.sim_time_s
    guard = w0 + HANG_GUARD_S

    def receive() -> list:
        try:
            data = sock.recv(65535)
        except TimeoutError:
            return []
        return dec.parse_buffer(data) or []

    try:
        while not enough(heard.got) and time.monotonic() < guard:
            for m in receive():
                heard.got[m.get_type()].append((v.sim_time_s, m))
        heard.sim_span_s = v.sim_time_s - s0
        heard.wall_span_s = time.monotonic() - w0
        mark = v.sim_time_s
        while heard.stamped_after_s is None and time.monotonic() < guard:
            for m in receive():
                heard.got[m.get_type()].append((v.sim_time_s, m))
                if m.get_type() == "GLOBAL_POSITION_INT" and m.time_boot_ms >= int(mark * 1000):
                    heard.stamped_after_s = mark
    finally:
        v.stop()
        heard.wall_s = time.monotonic() - t_start
        sock.close()
    return heard, v


def positions(n: int) -> Callable[[dict], bool]:
    return lambda got: len(got["GLOBAL_POSITION_INT"]) >= n


def assert_stamps_are_the_sim_clock(heard: Heard, speed: float, physics_dt_s: float = 0.05) -> None:
    """Every stamp is at or before the vehicle's sim clock when it arrived, a message sent after
    the clock read S is stamped >= S, and the sim clock never runs faster than ``speed`` x wall."""
    for name, msgs in heard.got.items():
        for clock, m in msgs:
            stamp = getattr(m, "time_boot_ms", None)
            if stamp is not None:
                assert stamp <= clock * 1000 + 1, f"{name} stamped {stamp} ms, ahead of the sim clock {clock:.3f} s"
    assert heard.stamped_after_s is not None, "no GLOBAL_POSITION_INT stamped at/after the sim clock read"
    assert heard.sim_span_s <= speed * heard.wall_span_s + physics_dt_s  # sim time never outruns speed x wall


@pytest.mark.timeout(90)
def test_timestamps_follow_sim_time_and_rates_are_capped_at_high_speed() -> None:
    heard, v = listen(speed=20.0, enough=positions(30), stream_cap_hz=25.0)
    assert_stamps_are_the_sim_clock(heard, 20.0)
    # sim time, not wall time: 30 position reports span far more sim than wall seconds
    assert heard.sim_span_s > 2 * heard.wall_span_s, (heard.sim_span_s, heard.wall_span_s)
    pos = heard.got["GLOBAL_POSITION_INT"]
    # 10 Hz sim would be 200 Hz wall at 20x; the cap allows at most 25 per wall second (+ the first)
    assert 2 <= len(pos) <= 25.0 * heard.wall_s + 1, (len(pos), heard.wall_s)
    hb = heard.got["HEARTBEAT"]
    assert 1 <= len(hb) <= 5.0 * heard.wall_s + 2, (len(hb), heard.wall_s)  # heartbeats at most 5 Hz wall
    for name in ("SYS_STATUS", "BATTERY_STATUS", "EXTENDED_SYS_STATE"):  # status streams: 5 Hz wall cap
        assert len(heard.got[name]) <= 5.0 * heard.wall_s + 1, (name, len(heard.got[name]), heard.wall_s)
    h = hb[0][1]
    assert (h.type, h.autopilot) == (mavlink.MAV_TYPE_QUADROTOR, mavlink.MAV_AUTOPILOT_PX4)
    assert h.custom_mode == 0x03040000 and h.base_mode & mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED


@pytest.mark.timeout(90)
def test_every_stream_reports_at_high_speed() -> None:
    names = ("SYS_STATUS", "ATTITUDE", "GPS_RAW_INT", "BATTERY_STATUS", "EXTENDED_SYS_STATE", "HOME_POSITION",
             "MISSION_CURRENT")
    heard, _ = listen(speed=20.0, enough=lambda got: all(got[n] for n in names), stream_cap_hz=25.0)
    for name in names:
        assert heard.got[name], f"no {name} streamed within {HANG_GUARD_S} s"
    assert heard.got["GPS_RAW_INT"][0][1].fix_type == 3
    assert heard.got["EXTENDED_SYS_STATE"][0][1].landed_state == mavlink.MAV_LANDED_STATE_ON_GROUND


@pytest.mark.timeout(90)
def test_real_time_rates_are_px4_like() -> None:
    heard, _ = listen(speed=1.0, enough=positions(15))
    assert_stamps_are_the_sim_clock(heard, 1.0)
    pos = heard.got["GLOBAL_POSITION_INT"]
    hb = heard.got["HEARTBEAT"]
    # PX4 defaults at 1x: position 10 Hz, heartbeat 1 Hz; uncapped, so never more than that
    assert 15 <= len(pos) <= 10.0 * heard.wall_s + 1, (len(pos), heard.wall_s)
    assert 1 <= len(hb) <= 1.0 * heard.wall_s + 2, (len(hb), heard.wall_s)
    stamps = [m.time_boot_ms for _, m in pos]
    assert stamps == sorted(stamps)


@pytest.mark.timeout(90)
def test_gps_noise_scatters_reported_position_around_the_truth() -> None:
    import statistics

    heard, v = listen(speed=10.0, enough=positions(40), gps_noise_m=3.0, seed=7)
    pos = [m for _, m in heard.got["GLOBAL_POSITION_INT"]]
    assert len(pos) >= 40
    north = [(m.lat / 1e7 - v.config.home_lat) * 111_195.0 for m in pos]
    sd = statistics.pstdev(north)
    assert 1.5 < sd < 4.5  # about the configured 3 m, and not zero
    assert abs(statistics.fmean(north)) < 2.0
    assert v.state.lat == pytest.approx(v.config.home_lat, abs=1e-9)  # the true pose is not noisy
