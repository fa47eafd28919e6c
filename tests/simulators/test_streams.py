"""Telemetry streams on the wire (raw pymavlink listener): sim-time stamps and wall-rate caps."""

from __future__ import annotations

import socket
import time
from collections import defaultdict

import pytest
from pymavlink.dialects.v20 import common as mavlink

from simulators.vehicle import SimVehicle, VehicleConfig
from tests.conftest import free_udp_port


def listen(speed: float, seconds: float, **kw) -> tuple[dict[str, list], SimVehicle]:
    port = free_udp_port()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(0.1)
    v = SimVehicle(VehicleConfig(gcs_port=port, listen_port=free_udp_port(), speed_factor=speed, **kw)).start()
    dec = mavlink.MAVLink(None)
    got: dict[str, list] = defaultdict(list)
    t_end = time.monotonic() + seconds
    try:
        while time.monotonic() < t_end:
            try:
                data = sock.recv(65535)
            except TimeoutError:
                continue
            for m in dec.parse_buffer(data) or []:
                got[m.get_type()].append((time.monotonic(), m))
    finally:
        v.stop()
        sock.close()
    return got, v


@pytest.mark.timeout(30)
def test_timestamps_follow_sim_time_and_rates_are_capped_at_high_speed() -> None:
    got, v = listen(speed=20.0, seconds=1.5, stream_cap_hz=25.0)
    pos = got["GLOBAL_POSITION_INT"]
    (w0, m0), (w1, m1) = pos[0], pos[-1]
    sim_rate = (m1.time_boot_ms - m0.time_boot_ms) / 1000.0 / (w1 - w0)
    assert sim_rate == pytest.approx(20.0, rel=0.2)  # time_boot_ms runs at 20x wall time
    wall_hz = len(pos) / 1.5
    assert 15 <= wall_hz <= 28  # 10 Hz sim would be 200 Hz wall at 20x; capped at 25
    hb = got["HEARTBEAT"]
    assert 3 <= len(hb) / 1.5 <= 6  # heartbeats between 1 and 5 Hz wall
    h = hb[0][1]
    assert (h.type, h.autopilot) == (mavlink.MAV_TYPE_QUADROTOR, mavlink.MAV_AUTOPILOT_PX4)
    assert h.custom_mode == 0x03040000 and h.base_mode & mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
    for name in ("SYS_STATUS", "ATTITUDE", "GPS_RAW_INT", "BATTERY_STATUS", "EXTENDED_SYS_STATE", "HOME_POSITION",
                 "MISSION_CURRENT"):
        assert got[name], f"no {name} streamed"
    assert got["GPS_RAW_INT"][0][1].fix_type == 3
    assert got["EXTENDED_SYS_STATE"][0][1].landed_state == mavlink.MAV_LANDED_STATE_ON_GROUND


@pytest.mark.timeout(30)
def test_real_time_rates_are_px4_like() -> None:
    got, _ = listen(speed=1.0, seconds=2.0)
    assert len(got["GLOBAL_POSITION_INT"]) / 2.0 == pytest.approx(10.0, abs=2.5)
    assert len(got["HEARTBEAT"]) in (2, 3)
    pos = got["GLOBAL_POSITION_INT"]
    dt_sim = (pos[-1][1].time_boot_ms - pos[0][1].time_boot_ms) / 1000.0
    assert dt_sim == pytest.approx(pos[-1][0] - pos[0][0], abs=0.15)


@pytest.mark.timeout(30)
def test_gps_noise_scatters_reported_position_around_the_truth() -> None:
    import statistics

    got, v = listen(speed=10.0, seconds=1.5, gps_noise_m=3.0, seed=7)
    pos = [m for _, m in got["GLOBAL_POSITION_INT"]]
    assert len(pos) > 20
    north = [(m.lat / 1e7 - v.config.home_lat) * 111_195.0 for m in pos]
    sd = statistics.pstdev(north)
    assert 1.5 < sd < 4.5  # about the configured 3 m, and not zero
    assert abs(statistics.fmean(north)) < 2.0
    assert v.state.lat == pytest.approx(v.config.home_lat, abs=1e-9)  # the true pose is not noisy
