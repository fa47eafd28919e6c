"""bench_px4's loopback relay and its reading of PX4's MAVLink, without PX4: frames encoded
with pymavlink as PX4 SITL instance 2 (system id 3) sends them."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from pymavlink.dialects.v20 import common as mav

from bench.bench_px4 import Truth, UdpRelay, mavlink_frames, px4_mode
from bench.sections import read_section, write_section

AUTO, MISSION, RTL, HOLD = 4, 4, 5, 3


def px4_custom_mode(main: int, sub: int = 0) -> int:
    return (main << 16) | (sub << 24)


def frames(*msgs, sysid: int = 3, compid: int = 1) -> bytes:
    m = mav.MAVLink(None, srcSystem=sysid, srcComponent=compid)
    return b"".join(bytes(msg.pack(m)) for msg in msgs)


def heartbeat(main: int, sub: int, armed: bool):
    return mav.MAVLink_heartbeat_message(mav.MAV_TYPE_QUADROTOR, mav.MAV_AUTOPILOT_PX4,
                                         0x80 if armed else 0, px4_custom_mode(main, sub), 4, 3)


def test_px4_modes_are_named_from_custom_mode() -> None:
    assert px4_mode(px4_custom_mode(AUTO, MISSION)) == "MISSION"
    assert px4_mode(px4_custom_mode(AUTO, RTL)) == "RETURN_TO_LAUNCH"
    assert px4_mode(px4_custom_mode(AUTO, HOLD)) == "HOLD"
    assert px4_mode(px4_custom_mode(3)) == "POSCTL"


def test_truth_reads_px4s_own_account_from_one_datagram_of_several_frames() -> None:
    t = Truth(sysid=3)
    data = frames(
        heartbeat(AUTO, MISSION, armed=True),
        mav.MAVLink_extended_sys_state_message(0, 2),
        mav.MAVLink_global_position_int_message(1000, 300870000, 1204950000, 42000, 30000, 0, 0, 0, 0),
        mav.MAVLink_mission_current_message(5, 12, 0, 0),
        mav.MAVLink_mission_item_reached_message(4),
        mav.MAVLink_statustext_message(6, b"Landing detected\t"),
    )
    t.feed(data)
    assert (t.mode, t.armed, t.landed_state, t.mission_seq, t.mission_total) == ("MISSION", True, 2, 5, 12)
    _t, lat, lon, rel, in_air, mode = t.track[-1]
    assert (lat, lon, rel, in_air, mode) == (pytest.approx(30.087), pytest.approx(120.495), 30.0, True, "MISSION")
    assert t.reached_seqs == [4] and t.texts == ["Landing detected\t"]
    t.feed(frames(heartbeat(AUTO, RTL, armed=True), sysid=1))  # another vehicle's system id: ignored
    t.feed(frames(heartbeat(AUTO, RTL, armed=True), compid=100))  # another component: ignored
    assert t.modes_seen == ["MISSION"]
    assert [f[:3] for f in mavlink_frames(data[:-3])][-1] == (3, 1, 46)  # a cut-off last frame is skipped


def _free() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_relay_forwards_both_ways_and_drops_both_while_down_but_keeps_reading() -> None:
    px4_side, gcs_port = _free(), _free()
    gcs = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gcs.bind(("127.0.0.1", gcs_port))
    gcs.settimeout(2)
    px4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    px4.bind(("127.0.0.1", 0))
    px4.settimeout(2)
    relay = UdpRelay(px4_side, gcs_port, sysid=3).start()
    try:
        hb = frames(heartbeat(AUTO, MISSION, armed=True))
        px4.sendto(hb, ("127.0.0.1", px4_side))
        data, relay_addr = gcs.recvfrom(65535)
        assert data == hb
        gcs.sendto(b"to px4", relay_addr)
        assert px4.recvfrom(65535)[0] == b"to px4"
        relay.down()
        px4.sendto(frames(heartbeat(AUTO, RTL, armed=True)), ("127.0.0.1", px4_side))
        gcs.sendto(b"lost", relay_addr)
        deadline = time.monotonic() + 2
        while relay.truth.mode != "RETURN_TO_LAUNCH" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert relay.truth.mode == "RETURN_TO_LAUNCH"  # read while down
        gcs.settimeout(0.3)
        px4.settimeout(0.3)
        with pytest.raises(TimeoutError):
            gcs.recvfrom(65535)
        with pytest.raises(TimeoutError):
            px4.recvfrom(65535)
        assert relay.dropped == 2
        relay.up()
        px4.sendto(hb, ("127.0.0.1", px4_side))
        gcs.settimeout(2)
        assert gcs.recvfrom(65535)[0] == hb
    finally:
        relay.stop()
        gcs.close()
        px4.close()


def test_a_bench_section_replaces_only_its_own(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\n## A\n\nold a\n\n## B\n\nb stays\n", encoding="utf-8")
    write_section("## A\n\nnew a\n", page)
    write_section("## C\n\nc appended\n", page)
    text = page.read_text(encoding="utf-8")
    assert text == "# Benchmarks\n\n## A\n\nnew a\n\n## B\n\nb stays\n\n## C\n\nc appended\n"
    assert read_section("## B", page) == "## B\n\nb stays\n"
    assert read_section("## D", page) is None
    with pytest.raises(ValueError, match="must start with a '## ' heading"):
        write_section("no heading", page)
