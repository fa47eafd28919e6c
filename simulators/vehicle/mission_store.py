"""MAVLink mission protocol (upload, download, clear) for the mission types MISSION and FENCE.

Transport-free: every handler takes a decoded message plus the wall time and returns the
messages to send (pymavlink message objects built with the given encoder). The vehicle
adapter feeds it and sends what it returns; the autopilot reads the stored lists.

Protocol, as PX4 speaks it (https://mavlink.io/en/services/mission.html):
upload  GCS MISSION_COUNT -> vehicle MISSION_REQUEST_INT(seq) ... -> MISSION_ACK
download GCS MISSION_REQUEST_LIST -> MISSION_COUNT; GCS MISSION_REQUEST_INT(seq) -> MISSION_ITEM_INT
clear   GCS MISSION_CLEAR_ALL -> MISSION_ACK
The vehicle re-requests an item after ``retry_s`` of silence, gives up after ``max_retries``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pymavlink.dialects.v20 import common as mavlink

MISSION = mavlink.MAV_MISSION_TYPE_MISSION
FENCE = mavlink.MAV_MISSION_TYPE_FENCE
RALLY = mavlink.MAV_MISSION_TYPE_RALLY

# Frames we accept in an uploaded item: global AMSL, global relative (float and int
# variants), and MISSION (for DO_ commands without a position).
ACCEPTED_FRAMES = {0, 2, 3, 5, 6}

NAV_COMMANDS = {16, 17, 19, 20, 21, 22, 93}  # waypoint, loiter unlim/time, RTL, land, takeoff, delay
DO_COMMANDS = {
    112, 115,  # CONDITION_DELAY, CONDITION_YAW
    177, 178, 179, 183, 189,  # jump (stored, not executed), change speed, set home, servo, land start
    195, 197, 201, 203, 205, 206, 214,  # ROI, digicam control, mount control, cam trigger dist/interval
    530, 531, 532,  # camera mode / zoom / focus
    1000, 1001,  # gimbal manager pitch/yaw, configure
    2000, 2001, 2003, 2004, 2500, 2501,  # image start/stop, capture interval, video start/stop
}
FENCE_COMMANDS = {5001, 5002, 5003, 5004}  # polygon inclusion/exclusion vertex, circle inclusion/exclusion
RALLY_COMMANDS = {5100}
MAX_ITEMS = {MISSION: 2000, FENCE: 128, RALLY: 16}


@dataclass(frozen=True)
class Item:
    """One stored mission item, exactly as received (lat/lon in 1e-7 degrees)."""

    seq: int
    frame: int
    command: int
    autocontinue: int
    param1: float
    param2: float
    param3: float
    param4: float
    x: int
    y: int
    z: float
    mission_type: int

    @property
    def lat(self) -> float:
        return self.x / 1e7

    @property
    def lon(self) -> float:
        return self.y / 1e7


@dataclass
class _Upload:
    partner: tuple[int, int]
    mission_type: int
    count: int
    items: list[Item]
    last_activity: float
    retries: int = 0


Validator = Callable[[int, list[Item]], tuple[int, str | None]]


class MissionStore:
    """Holds the vehicle's mission, fence and rally lists and runs the transfer protocol.

    ``validator(mission_type, items) -> (MAV_MISSION_RESULT, statustext)`` runs on a
    complete upload before it replaces the stored list (e.g. the geofence check);
    ``on_change(mission_type)`` is called after a list was replaced or cleared.
    """

    def __init__(
        self,
        enc: mavlink.MAVLink,
        validator: Validator | None = None,
        on_change: Callable[[int], None] | None = None,
        retry_s: float = 0.5,
        max_retries: int = 6,
    ) -> None:
        self.enc = enc
        self.lists: dict[int, list[Item]] = {MISSION: [], FENCE: [], RALLY: []}
        self._upload: _Upload | None = None
        self._validator = validator
        self._on_change = on_change
        self.retry_s = retry_s
        self.max_retries = max_retries
        self.reject_next: Callable[[], int | None] = lambda: None
        self.last_statustext: str | None = None
        self.uploads_completed = 0

    # --- helpers --------------------------------------------------------------------
    def _ack(self, partner: tuple[int, int], result: int, mission_type: int):
        return self.enc.mission_ack_encode(partner[0], partner[1], result, mission_type)

    def _request(self, up: _Upload):
        seq = len(up.items)
        return self.enc.mission_request_int_encode(up.partner[0], up.partner[1], seq, up.mission_type)

    @staticmethod
    def _item_problem(it: Item) -> int | None:
        if it.mission_type == MISSION:
            allowed = NAV_COMMANDS | DO_COMMANDS
        elif it.mission_type == FENCE:
            allowed = FENCE_COMMANDS
        else:
            allowed = RALLY_COMMANDS
        if it.command not in allowed:
            return mavlink.MAV_MISSION_UNSUPPORTED
        if it.frame not in ACCEPTED_FRAMES:
            return mavlink.MAV_MISSION_UNSUPPORTED_FRAME
        if it.command in NAV_COMMANDS - {20, 93} or it.mission_type != MISSION:
            if it.command != 21 or (it.x, it.y) != (0, 0):
                if not (-90e7 <= it.x <= 90e7):
                    return mavlink.MAV_MISSION_INVALID_PARAM5_X
                if not (-180e7 <= it.y <= 180e7):
                    return mavlink.MAV_MISSION_INVALID_PARAM6_Y
        return None

    # --- handlers -------------------------------------------------------------------
    def on_count(self, msg, now: float) -> list:
        partner = (msg.get_srcSystem(), msg.get_srcComponent())
        mtype = getattr(msg, "mission_type", MISSION)
        reject = self.reject_next()
        if reject is not None:
            self.last_statustext = "Mission upload rejected (fault injection)"
            return [self._ack(partner, reject, mtype)]
        if self._upload is not None and now - self._upload.last_activity < self.retry_s * self.max_retries:
            if self._upload.partner == partner and self._upload.mission_type == mtype and self._upload.count == msg.count and not self._upload.items:
                return [self._request(self._upload)]  # a repeated COUNT: repeat our request
            # PX4 refuses a second transfer while one is running.
            return [self._ack(partner, mavlink.MAV_MISSION_DENIED, mtype)]
        if mtype not in self.lists:
            return [self._ack(partner, mavlink.MAV_MISSION_UNSUPPORTED, mtype)]
        if msg.count > MAX_ITEMS[mtype]:
            return [self._ack(partner, mavlink.MAV_MISSION_NO_SPACE, mtype)]
        if msg.count == 0:
            self.lists[mtype] = []
            self._changed(mtype)
            return [self._ack(partner, mavlink.MAV_MISSION_ACCEPTED, mtype)]
        self._upload = _Upload(partner, mtype, msg.count, [], now)
        return [self._request(self._upload)]

    def on_item(self, msg, now: float, is_int: bool = True) -> list:
        up = self._upload
        mtype = getattr(msg, "mission_type", MISSION)
        partner = (msg.get_srcSystem(), msg.get_srcComponent())
        if up is None or up.mission_type != mtype or up.partner != partner:
            return []  # stray item (e.g. a late retransmission): ignore like PX4
        if msg.seq != len(up.items):
            return [self._request(up)] if msg.seq > len(up.items) else []
        x, y = (msg.x, msg.y) if is_int else (int(round(msg.x * 1e7)), int(round(msg.y * 1e7)))
        it = Item(msg.seq, msg.frame, msg.command, msg.autocontinue, msg.param1, msg.param2, msg.param3,
                  msg.param4, x, y, float(msg.z), mtype)
        problem = self._item_problem(it)
        if problem is not None:
            self._upload = None
            self.last_statustext = f"Mission item {msg.seq} rejected: command {msg.command} frame {msg.frame}"
            return [self._ack(partner, problem, mtype)]
        up.items.append(it)
        up.last_activity = now
        up.retries = 0
        if len(up.items) < up.count:
            return [self._request(up)]
        self._upload = None
        result, text = (mavlink.MAV_MISSION_ACCEPTED, None)
        if self._validator is not None:
            result, text = self._validator(mtype, up.items)
        self.last_statustext = text
        if result == mavlink.MAV_MISSION_ACCEPTED:
            self.lists[mtype] = up.items
            self.uploads_completed += 1
            self._changed(mtype)
        return [self._ack(partner, result, mtype)]

    def on_request_list(self, msg) -> list:
        mtype = getattr(msg, "mission_type", MISSION)
        if mtype not in self.lists:
            return [self._ack((msg.get_srcSystem(), msg.get_srcComponent()), mavlink.MAV_MISSION_UNSUPPORTED, mtype)]
        return [self.enc.mission_count_encode(msg.get_srcSystem(), msg.get_srcComponent(), len(self.lists[mtype]), mtype)]

    def on_request(self, msg, current_seq: int) -> list:
        """MISSION_REQUEST_INT (or the legacy MISSION_REQUEST, answered with the INT item as PX4 does)."""
        mtype = getattr(msg, "mission_type", MISSION)
        items = self.lists.get(mtype, [])
        partner = (msg.get_srcSystem(), msg.get_srcComponent())
        if not 0 <= msg.seq < len(items):
            return [self._ack(partner, mavlink.MAV_MISSION_INVALID_SEQUENCE, mtype)]
        it = items[msg.seq]
        return [self.enc.mission_item_int_encode(
            partner[0], partner[1], it.seq, it.frame, it.command,
            1 if (mtype == MISSION and it.seq == current_seq) else 0, it.autocontinue,
            it.param1, it.param2, it.param3, it.param4, it.x, it.y, it.z, mtype)]

    def on_clear_all(self, msg) -> list:
        mtype = getattr(msg, "mission_type", MISSION)
        partner = (msg.get_srcSystem(), msg.get_srcComponent())
        if mtype == mavlink.MAV_MISSION_TYPE_ALL:
            for k in self.lists:
                self.lists[k] = []
                self._changed(k)
        elif mtype in self.lists:
            self.lists[mtype] = []
            self._changed(mtype)
        else:
            return [self._ack(partner, mavlink.MAV_MISSION_UNSUPPORTED, mtype)]
        return [self._ack(partner, mavlink.MAV_MISSION_ACCEPTED, mtype)]

    def on_ack(self, msg) -> None:
        """The GCS ends a download (or cancels an upload) with MISSION_ACK."""
        if msg.type == mavlink.MAV_MISSION_OPERATION_CANCELLED and self._upload is not None:
            self._upload = None

    def poll(self, now: float) -> list:
        """Re-request a stalled upload item; abandon the upload after ``max_retries``."""
        up = self._upload
        if up is None or now - up.last_activity < self.retry_s:
            return []
        up.retries += 1
        up.last_activity = now
        if up.retries > self.max_retries:
            self._upload = None
            return [self._ack(up.partner, mavlink.MAV_MISSION_OPERATION_CANCELLED, up.mission_type)]
        return [self._request(up)]

    def _changed(self, mtype: int) -> None:
        if self._on_change is not None:
            self._on_change(mtype)
