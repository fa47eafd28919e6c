"""Faults injected on demand (tests, demos). Thread-safe: called from the test's thread
while the vehicle runs in its own thread.

Durations are in *wall-clock* seconds for link loss (it is the network that drops, and
tests think in wall time) and in *sim* seconds nowhere else; the autopilot's own
reactions (data-link-loss timeout, position-loss delay) use sim time like PX4 does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class FaultSnapshot:
    """What the vehicle loop sees each tick (copied under the lock)."""

    link_down: bool
    gps_lost: bool
    battery_override_pct: float | None
    geofence_breach: bool
    reject_upload_result: int | None


class Faults:
    """The fault API of one simulated vehicle (``SimVehicle.faults``).

    - ``link_loss(seconds)``: drop every datagram in both directions for that long
      (``seconds=None``: until ``link_restore()``). The vehicle keeps flying; if the
      vehicle was configured with ``datalink_loss_rtl_s`` it returns after that much sim time
      without a ground-station heartbeat (PX4 NAV_DLL_ACT=RTL).
    - ``gps_loss(seconds)``: no fix (GPS_RAW_INT fix 0, SYS_STATUS GPS unhealthy, no
      GLOBAL_POSITION_INT); in the air the vehicle lands like PX4's position-loss failsafe.
    - ``low_battery(pct)``: set the remaining charge; at or below the critical threshold
      (param BAT_CRIT_THR) the vehicle returns to launch, below BAT_EMERGEN_THR it lands.
    - ``geofence_breach()``: report a breach now (the same reaction as flying into an
      exclusion zone: GF_ACTION, default hold as PX4).
    - ``reject_next_upload(result=1)``: the next MISSION_COUNT is answered with a
      MISSION_ACK carrying ``result`` (a MAV_MISSION_RESULT; 1 = MAV_MISSION_ERROR).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._link_down_until: float | None = None
        self._link_down_forever = False
        self._gps_lost_until: float | None = None
        self._gps_lost_forever = False
        self._battery_pct: float | None = None
        self._breach = False
        self._reject: int | None = None

    # --- API -------------------------------------------------------------------------
    def link_loss(self, seconds: float | None) -> None:
        with self._lock:
            if seconds is None:
                self._link_down_forever = True
            else:
                self._link_down_until = time.monotonic() + float(seconds)

    def link_restore(self) -> None:
        with self._lock:
            self._link_down_forever = False
            self._link_down_until = None

    def gps_loss(self, seconds: float | None = None) -> None:
        with self._lock:
            if seconds is None:
                self._gps_lost_forever = True
            else:
                self._gps_lost_until = time.monotonic() + float(seconds)

    def gps_restore(self) -> None:
        with self._lock:
            self._gps_lost_forever = False
            self._gps_lost_until = None

    def low_battery(self, pct: float) -> None:
        if not 0.0 <= pct <= 100.0:
            raise ValueError(f"low_battery: pct must be within 0..100, got {pct}")
        with self._lock:
            self._battery_pct = float(pct)

    def geofence_breach(self) -> None:
        with self._lock:
            self._breach = True

    def reject_next_upload(self, result: int = 1) -> None:
        if not 1 <= result <= 15:
            raise ValueError(f"reject_next_upload: result must be a MAV_MISSION_RESULT error 1..15, got {result}")
        with self._lock:
            self._reject = int(result)

    # --- for the vehicle loop --------------------------------------------------------
    @property
    def link_down(self) -> bool:
        with self._lock:
            return self._link_down_locked()

    def _link_down_locked(self) -> bool:
        return self._link_down_forever or (
            self._link_down_until is not None and time.monotonic() < self._link_down_until
        )

    def take(self) -> FaultSnapshot:
        """Snapshot and consume the one-shot faults (battery override, breach)."""
        with self._lock:
            now = time.monotonic()
            snap = FaultSnapshot(
                link_down=self._link_down_locked(),
                gps_lost=self._gps_lost_forever or (self._gps_lost_until is not None and now < self._gps_lost_until),
                battery_override_pct=self._battery_pct,
                geofence_breach=self._breach,
                reject_upload_result=None,
            )
            self._battery_pct = None
            self._breach = False
            return snap

    def take_reject(self) -> int | None:
        """The MAV_MISSION_RESULT to answer the next upload with, once."""
        with self._lock:
            r, self._reject = self._reject, None
            return r
