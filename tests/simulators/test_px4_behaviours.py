"""PX4 v1.16 SITL behaviours the built-in vehicle reproduces by default (issue 12).

One test per behaviour, named after it. Most run the transport-free ``Autopilot`` built with
the parameters a default ``VehicleConfig`` gives it; the double COMMAND_ACK and the message
rate need the wire (raw pymavlink on UDP, a few wall seconds).
"""

from __future__ import annotations

import socket
import time

from pymavlink.dialects.v20 import common as mavlink

from simulators.vehicle import SimVehicle, VehicleConfig
from simulators.vehicle.autopilot import ACCEPTED, TEMPORARILY_REJECTED, Autopilot
from simulators.vehicle.mission_store import FENCE, MISSION, Item
from tests.conftest import free_udp_port
from tests.simulators.test_physics import _wp, run_until

HOME = (30.0, 120.0, 5.0)
DT = 0.05


def default_autopilot(**cfg) -> Autopilot:
    """An Autopilot configured exactly as a default SimVehicle configures its own."""
    c = VehicleConfig(home_lat=HOME[0], home_lon=HOME[1], home_alt_amsl=HOME[2], **cfg)
    return Autopilot(c.home_lat, c.home_lon, c.home_alt_amsl, c.physics(), c.px4_params(),
                     start_refusal_s=c.mission_start_refusal_s)


def texts(ap: Autopilot) -> list[str]:
    return [e[2] for e in ap.outbox if e[0] == "text"]


def steps(ap: Autopilot, sim_s: float) -> None:
    for _ in range(int(round(sim_s / DT))):
        ap.step(DT)


def square_mission(ap: Autopilot, alt: float = 10.0) -> list[Item]:
    return [_wp(ap, 0, 0, 40, alt), _wp(ap, 1, 40, 40, alt), Item(2, 2, 20, 1, 0, 0, 0, 0, 0, 0, 0, MISSION)]


def airborne_on_mission(ap: Autopilot) -> None:
    ap.set_list(MISSION, square_mission(ap))
    steps(ap, 1.5)  # past the refusal window
    assert ap.arm(True) == ACCEPTED
    assert ap.start_mission() == ACCEPTED and ap.mode == "MISSION"
    run_until(ap, lambda: ap.body.up > 5.0, 30)


# 1 ------------------------------------------------------------------------------------
def test_mission_start_refused_within_1s_of_upload_with_double_ack() -> None:
    """DO_SET_MODE MISSION within 1 s (sim) of an upload: ACCEPTED, then TEMPORARILY_REJECTED
    and PX4's text; the mode stays; after the window the same command starts the mission."""
    port = free_udp_port()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(0.2)
    listen = free_udp_port()
    # 0.25x: the 1 s (sim) window lasts 4 wall seconds, so a loaded machine still lands inside it
    v = SimVehicle(VehicleConfig(gcs_port=port, listen_port=listen, speed_factor=0.25)).start()
    gcs = mavlink.MAVLink(None, srcSystem=255, srcComponent=190)
    dec = mavlink.MAVLink(None)
    dec.robust_parsing = True

    def send(msg) -> None:
        sock.sendto(msg.pack(gcs), ("127.0.0.1", listen))

    def collect(until: float, want=lambda m: False) -> list:
        got = []
        while time.monotonic() < until:
            try:
                data = sock.recv(65535)
            except TimeoutError:
                continue
            for m in dec.parse_buffer(data) or []:
                got.append(m)
                if want(m):
                    return got
        return got

    try:
        lat, lon = int(HOME[0] * 1e7), int(HOME[1] * 1e7)
        send(gcs.mission_count_encode(1, 1, 1, MISSION))
        collect(time.monotonic() + 3, lambda m: m.get_type() == "MISSION_REQUEST_INT")
        send(gcs.mission_item_int_encode(1, 1, 0, 3, 16, 0, 1, 0, 0, 0, 0, lat + 1000, lon, 10.0, MISSION))
        collect(time.monotonic() + 3, lambda m: m.get_type() == "MISSION_ACK")
        uploaded_sim = v.sim_time_s
        set_mission = gcs.command_long_encode(1, 1, 176, 0, 1, 4, 4, 0, 0, 0, 0)
        send(set_mission)  # right after the upload
        got = collect(time.monotonic() + 0.6)
        assert v.sim_time_s - uploaded_sim < 1.0 + 0.6 * 0.25 + 0.1  # the command was sent inside the window
        acks = [m.result for m in got if m.get_type() == "COMMAND_ACK" and m.command == 176]
        said = [m.text for m in got if m.get_type() == "STATUSTEXT"]
        assert acks == [ACCEPTED, TEMPORARILY_REJECTED], acks
        assert "Switching to Mission is currently not available\t" in said, said
        assert v.state.mode == "HOLD"
        while v.sim_time_s - uploaded_sim < 1.1:  # past the window
            time.sleep(0.05)
        send(set_mission)
        got = collect(time.monotonic() + 0.6)
        assert [m.result for m in got if m.get_type() == "COMMAND_ACK" and m.command == 176] == [ACCEPTED]
        assert v.state.mode == "MISSION"
    finally:
        v.stop()
        sock.close()


# 2 ------------------------------------------------------------------------------------
def test_auto_disarm_after_10s_armed_on_ground() -> None:
    ap = default_autopilot()
    assert ap.arm(True) == ACCEPTED
    steps(ap, 9.9)
    assert ap.armed
    steps(ap, 0.2)
    assert not ap.armed
    assert "Disarmed by auto preflight disarming\t" in texts(ap)


# 3 ------------------------------------------------------------------------------------
def test_mission_current_mission_state_always_0() -> None:
    ap = default_autopilot()
    seen = {ap.mission_state}
    airborne_on_mission(ap)
    seen.add(ap.mission_state)
    ap.pause()
    seen.add(ap.mission_state)
    ap.start_mission()
    run_until(ap, lambda: not ap.armed, 300)
    assert ap.mission_finished
    seen.add(ap.mission_state)
    assert seen == {0}


# 4 ------------------------------------------------------------------------------------
def test_geofence_breach_action_is_hold_by_default_rtl_when_configured() -> None:
    for action, expected in ((None, "HOLD"), ("rtl", "RTL")):
        ap = default_autopilot(**({} if action is None else {"geofence_action": action}))
        airborne_on_mission(ap)
        ap.step(DT, breach=True)
        assert ap.mode == expected, action
        assert "Geofence breached\t" in texts(ap)


# 5 ------------------------------------------------------------------------------------
def test_datalink_loss_holds_5s_before_rtl() -> None:
    ap = default_autopilot(datalink_loss_rtl_s=2.0)
    ap.set_list(MISSION, square_mission(ap))
    steps(ap, 1.5)
    ap.arm(True)
    ap.start_mission()
    run_until(ap, lambda: ap.gcs_heartbeat() is None and ap.body.up > 5.0, 30)  # GCS heartbeats while climbing
    lost_at = ap.t
    run_until(ap, lambda: ap.mode != "MISSION", 10)
    assert ap.mode == "HOLD" and ap.t - lost_at > 2.0
    hold_at = ap.t
    run_until(ap, lambda: ap.mode != "HOLD", 10)
    assert ap.mode == "RTL"
    assert abs((ap.t - hold_at) - 5.0) < 0.11


# 6 ------------------------------------------------------------------------------------
def test_status_texts_byte_for_byte_as_px4() -> None:
    ap = default_autopilot()
    airborne_on_mission(ap)
    run_until(ap, lambda: not ap.armed, 300)
    steps(ap, 0.5)
    said = texts(ap)
    assert said and all(t.endswith("\t") for t in said), said
    for t in ("Armed by external command\t", "Executing Mission\t", "Takeoff detected\t",
              "Returning to launch\t", "Disarmed by landing\t", "Landing detected\t"):
        assert t in said, (t, said)
    assert said.index("Landing detected\t") > said.index("Disarmed by landing\t")  # PX4: after the disarm


# 7 ------------------------------------------------------------------------------------
def test_mission_outside_fence_accepted_then_arming_refused_with_px4_numbering() -> None:
    ap = default_autopilot()
    e, n = 0.0, 0.0
    fence = [Item(i, 3, 5001, 1, 4, 0, 0, 0, int(la * 1e7), int(lo * 1e7), 0, FENCE)
             for i, (la, lo) in enumerate(ap.to_wgs84(e + de, n + dn)
                                          for de, dn in ((-30, -30), (30, -30), (30, 30), (-30, 30)))]
    assert ap.validate(FENCE, fence) == (0, None)
    ap.set_list(FENCE, fence)
    items = [_wp(ap, 0, 10, 10, 10), _wp(ap, 1, 20, 10, 10), _wp(ap, 2, 80, 10, 10)]  # seq 2 leaves the fence
    assert ap.validate(MISSION, items) == (0, None)  # upload accepted
    ap.set_list(MISSION, items)
    steps(ap, 1.5)
    assert ap.arm(True) == TEMPORARILY_REJECTED and not ap.armed
    assert "Geofence violation for waypoint 3\t" in texts(ap)


# 8 ------------------------------------------------------------------------------------
def test_landed_state_taking_off_and_landing() -> None:
    ap = default_autopilot(rtl_alt_m=15.0)
    states: list[int] = []
    ap.set_list(MISSION, square_mission(ap))
    steps(ap, 1.5)
    ap.arm(True)
    ap.start_mission()
    for _ in range(int(300 / DT)):
        ap.step(DT)
        states.append(ap.landed_state)
        if not ap.armed:
            break
    assert not ap.armed
    assert states[0] in (1, 3) and states[-1] == 1
    changes = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    assert changes.index(3) < changes.index(2) < changes.index(4), changes  # climb-out, cruise, descent
    assert states.count(3) * DT > 0.5 and states.count(4) * DT > 5.0


# 9 ------------------------------------------------------------------------------------
def test_px4_rates_option_streams_thousands_per_second_at_10x() -> None:
    """A lower bound only (a loaded machine sends fewer); the measured figure is in the README."""
    rates = {}
    for px4 in (False, True):
        v = SimVehicle(VehicleConfig(gcs_port=free_udp_port(), listen_port=free_udp_port(), speed_factor=10.0,
                                     px4_rates=px4)).start()
        try:
            time.sleep(0.5)
            n0, t0 = sum(v.stats.sent.values()), time.monotonic()
            time.sleep(2.0)
            rates[px4] = (sum(v.stats.sent.values()) - n0) / (time.monotonic() - t0)
        finally:
            v.stop()
    assert rates[False] < 300, rates
    assert rates[True] > 1500, rates
