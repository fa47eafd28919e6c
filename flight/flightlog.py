"""Flight log: one JSON-lines file per sortie with the pose stream and every event.

Kept as evidence and read back by ``vision`` to georeference frames. Line types:

* ``{"type": "header", "schema": "skygrid.flightlog/1", "drone_id", "sortie_id", "started_wall"}``
* ``{"type": "telemetry", ...Telemetry.to_dict()}``
* ``{"type": "event", ...FlightEvent.to_dict()}``

Lines are written as they come (line-buffered) so a crash loses at most the line in
flight; readers skip a truncated last line but name the file and line of any other
bad line.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from flight.records import FlightEvent, Telemetry

FLIGHTLOG_SCHEMA = "skygrid.flightlog/1"


class FlightLogError(ValueError):
    """A flight log line that cannot be read (message names file and line)."""


def log_path(log_dir: Path, drone_id: str, sortie_id: str) -> Path:
    """Where the log of one sortie goes: ``<log_dir>/<drone_id>_<sortie_id>.jsonl``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in sortie_id)
    return Path(log_dir) / f"{drone_id}_{safe}.jsonl"


def unique_path(path: Path) -> Path:
    """``path`` if free, else ``<stem>.2.jsonl``, ``.3`` ... (a re-run never mixes into an old log)."""
    path = Path(path)
    n = 2
    out = path
    while out.exists():
        out = path.with_name(f"{path.stem}.{n}{path.suffix}")
        n += 1
    return out


class FlightLog:
    """A :class:`flight.records.FlightListener` writing one sortie of one drone.

    Records of other drones are ignored, so one instance can sit among shared
    listeners. Thread-safe (listeners may be called from several threads).
    """

    def __init__(self, path: Path, drone_id: str, sortie_id: str, events_only: bool = False) -> None:
        self.path = Path(path)
        self.drone_id = drone_id
        self.sortie_id = sortie_id
        #: the per-drone journal (every event, all sorties and between them) keeps no poses
        self.events_only = events_only
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()
        self.records = 0
        self.events = 0
        self._write(
            {
                "type": "header",
                "schema": FLIGHTLOG_SCHEMA,
                "drone_id": drone_id,
                "sortie_id": sortie_id,
                "started_wall": time.time(),
            }
        )

    def _write(self, obj: dict[str, Any]) -> None:
        line = json.dumps(obj, ensure_ascii=False, allow_nan=True, separators=(",", ":"))
        with self._lock:
            if self._fh is not None:
                self._fh.write(line + "\n")

    def on_telemetry(self, record: Telemetry) -> None:
        if record.drone_id != self.drone_id or self.events_only:
            return
        self.records += 1
        self._write({"type": "telemetry", **record.to_dict()})

    def on_event(self, event: FlightEvent) -> None:
        if event.drone_id != self.drone_id:
            return
        self.events += 1
        self._write({"type": "event", **event.to_dict()})

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def _iter_lines(path: str | Path):
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise FlightLogError(f"{p}: cannot read flight log: {e.strerror}") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines):  # truncated by a crash while writing
                return
            raise FlightLogError(f"{p}: line {n}: invalid JSON: {e.msg}") from None
        if not isinstance(obj, dict) or "type" not in obj:
            raise FlightLogError(f"{p}: line {n}: not a flight log record (no 'type')")
        yield n, obj


_TELEMETRY_FIELDS = set(Telemetry.__dataclass_fields__)
_EVENT_FIELDS = set(FlightEvent.__dataclass_fields__)


def read_flight_log(path: str | Path) -> list[Telemetry]:
    """The pose stream of one flight log, in file (= time) order."""
    out = []
    for n, obj in _iter_lines(path):
        if obj["type"] == "header":
            schema = obj.get("schema", "")
            if not str(schema).startswith("skygrid.flightlog/1"):
                raise FlightLogError(f"{path}: line {n}: unsupported flight log schema {schema!r}")
        if obj["type"] != "telemetry":
            continue
        try:
            out.append(Telemetry(**{k: v for k, v in obj.items() if k in _TELEMETRY_FIELDS}))
        except TypeError as e:
            raise FlightLogError(f"{path}: line {n}: {e}") from None
    return out


def read_flight_events(path: str | Path) -> list[FlightEvent]:
    """The events (faults, decisions, milestones) of one flight log, in order."""
    out = []
    for n, obj in _iter_lines(path):
        if obj["type"] != "event":
            continue
        try:
            out.append(FlightEvent(**{k: v for k, v in obj.items() if k in _EVENT_FIELDS}))
        except TypeError as e:
            raise FlightLogError(f"{path}: line {n}: {e}") from None
    return out
