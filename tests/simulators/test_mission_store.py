"""Mission protocol state machine, message by message (no network)."""

from __future__ import annotations

from pymavlink.dialects.v20 import common as mavlink

from simulators.vehicle.mission_store import FENCE, MISSION, MissionStore

GCS = mavlink.MAVLink(None, srcSystem=255, srcComponent=190)
VEH = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)


def from_gcs(msg):
    """Round-trip through the wire so the message carries the GCS's system/component ids."""
    return VEH.decode(bytearray(msg.pack(GCS)))


def item(seq: int, cmd: int = 16, frame: int = 3, mtype: int = MISSION, p1: float = 0.0):
    return from_gcs(GCS.mission_item_int_encode(1, 1, seq, frame, cmd, 0, 1, p1, 0, 0, 0, 300000000 + seq, 1200000000, 20.0,
                                                mtype))


def upload(store: MissionStore, n: int, mtype: int = MISSION, t: float = 0.0) -> list:
    out = store.on_count(from_gcs(GCS.mission_count_encode(1, 1, n, mtype)), t)
    for i in range(n):
        assert out[-1].get_type() == "MISSION_REQUEST_INT" and out[-1].seq == i
        out = store.on_item(item(i, mtype=mtype, cmd=16 if mtype == MISSION else 5001, p1=n), t)
    return out


def test_upload_download_roundtrip() -> None:
    store = MissionStore(VEH)
    out = upload(store, 4)
    assert out[-1].get_type() == "MISSION_ACK" and out[-1].type == mavlink.MAV_MISSION_ACCEPTED
    assert out[-1].target_system == 255 and out[-1].target_component == 190
    (count,) = store.on_request_list(from_gcs(GCS.mission_request_list_encode(1, 1, MISSION)))
    assert count.count == 4
    (it,) = store.on_request(from_gcs(GCS.mission_request_int_encode(1, 1, 2, MISSION)), current_seq=2)
    assert (it.seq, it.x, it.current, it.z) == (2, 300000002, 1, 20.0)
    (bad,) = store.on_request(from_gcs(GCS.mission_request_int_encode(1, 1, 9, MISSION)), current_seq=0)
    assert bad.get_type() == "MISSION_ACK" and bad.type == mavlink.MAV_MISSION_INVALID_SEQUENCE


def test_mission_and_fence_lists_are_separate() -> None:
    store = MissionStore(VEH)
    upload(store, 3)
    upload(store, 4, mtype=FENCE)
    assert len(store.lists[MISSION]) == 3 and len(store.lists[FENCE]) == 4
    (ack,) = store.on_clear_all(from_gcs(GCS.mission_clear_all_encode(1, 1, FENCE)))
    assert ack.type == 0 and store.lists[FENCE] == [] and len(store.lists[MISSION]) == 3


def test_unsupported_command_and_frame_are_refused() -> None:
    store = MissionStore(VEH)
    store.on_count(from_gcs(GCS.mission_count_encode(1, 1, 2, MISSION)), 0)
    (ack,) = store.on_item(item(0, cmd=31337), 0)
    assert ack.get_type() == "MISSION_ACK" and ack.type == mavlink.MAV_MISSION_UNSUPPORTED
    store.on_count(from_gcs(GCS.mission_count_encode(1, 1, 1, MISSION)), 1)
    (ack,) = store.on_item(item(0, frame=1), 1)  # MAV_FRAME_LOCAL_NED
    assert ack.type == mavlink.MAV_MISSION_UNSUPPORTED_FRAME
    assert store.lists[MISSION] == []


def test_camera_and_gimbal_items_are_accepted() -> None:
    store = MissionStore(VEH)
    store.on_count(from_gcs(GCS.mission_count_encode(1, 1, 6, MISSION)), 0)
    out = []
    for seq, cmd in enumerate((16, 178, 206, 2000, 1000, 2001)):
        out = store.on_item(item(seq, cmd=cmd, frame=2 if cmd != 16 else 6), 0)
    assert out[-1].get_type() == "MISSION_ACK" and out[-1].type == 0


def test_out_of_order_item_is_re_requested_and_stall_retries_then_cancels() -> None:
    store = MissionStore(VEH, retry_s=0.5, max_retries=2)
    store.on_count(from_gcs(GCS.mission_count_encode(1, 1, 3, MISSION)), 0)
    (req,) = store.on_item(item(2), 0.1)
    assert req.seq == 0
    (req,) = store.poll(1.0)
    assert req.get_type() == "MISSION_REQUEST_INT" and req.seq == 0
    store.poll(2.0)
    (ack,) = store.poll(3.0)
    assert ack.get_type() == "MISSION_ACK" and ack.type == mavlink.MAV_MISSION_OPERATION_CANCELLED
    assert store.poll(4.0) == []


def test_validator_and_rejection_hook_keep_the_old_list() -> None:
    store = MissionStore(VEH, validator=lambda t, items: (mavlink.MAV_MISSION_DENIED, "nope"))
    store.lists[MISSION] = ["old"]  # type: ignore[list-item]
    out = upload(store, 2)
    assert out[-1].type == mavlink.MAV_MISSION_DENIED and store.lists[MISSION] == ["old"]
    store.reject_next = lambda: mavlink.MAV_MISSION_NO_SPACE
    (ack,) = store.on_count(from_gcs(GCS.mission_count_encode(1, 1, 2, MISSION)), 0)
    assert ack.type == mavlink.MAV_MISSION_NO_SPACE


def test_too_many_items_is_no_space() -> None:
    store = MissionStore(VEH)
    (ack,) = store.on_count(from_gcs(GCS.mission_count_encode(1, 1, 129, FENCE)), 0)
    assert ack.type == mavlink.MAV_MISSION_NO_SPACE
