"""POST /api/v1/replay: a past patrol flight read from its flight log (``flight/flightlog.py``,
JSON lines) for the replay page: the pose stream thinned to at most ``MAX_POINTS`` and every
flight event, times in seconds from the first pose. Nothing is stored."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, File, UploadFile

from dispatch.api.common import AUTH_ERRORS
from dispatch.core.security import Principal
from dispatch.deps import require_roles
from dispatch.errors import ApiError
from flight.flightlog import FlightLogError, read_flight_events, read_flight_log

router = APIRouter(prefix="/api/v1", tags=["replay"])
MAX_POINTS = 5000  # poses sent to the page (a longer log is evenly thinned, the last pose kept)
MAX_LOG_BYTES = 64 * 1024 * 1024


def replay_of(path: Path, name: str) -> dict:
    """The replay JSON of one flight log file; :class:`ApiError` 422 (code ``flightlog_invalid``)
    naming the uploaded file and line when it cannot be read."""
    try:
        poses = read_flight_log(path)
        events = read_flight_events(path)
    except FlightLogError as e:
        msg = str(e).replace(str(path), name)
        raise ApiError(422, f"file: {msg}", "form.file", code="flightlog_invalid") from None
    if not poses:
        raise ApiError(422, f"file: {name}: no telemetry records in this flight log", "form.file",
                       code="flightlog_empty")
    step = max(1, -(-len(poses) // MAX_POINTS))
    kept = poses[::step]
    if kept[-1] is not poses[-1]:
        kept.append(poses[-1])
    t0 = poses[0].wall_time
    return {
        "drone_id": poses[0].drone_id,
        "sortie_id": next((p.sortie_id for p in poses if p.sortie_id), None),
        "started_wall": t0,
        "duration_s": round(poses[-1].wall_time - t0, 2),
        "poses_in_log": len(poses),
        "columns": ["t_s", "lat", "lon", "rel_alt_m", "ground_speed_m_s", "battery_pct", "flight_mode",
                    "mission_item"],
        "points": [[round(p.wall_time - t0, 2), round(p.lat, 7), round(p.lon, 7), round(p.rel_alt_m, 1),
                    round(p.ground_speed_m_s, 1), round(p.battery_pct, 1), p.flight_mode, p.mission_item]
                   for p in kept],
        "events": [{"t_s": round(e.wall_time - t0, 2), "kind": e.kind, "lat": e.lat, "lon": e.lon}
                   for e in events],
    }


@router.post("/replay", responses={422: {"description": "not a readable flight log"}, **AUTH_ERRORS})
def replay(file: UploadFile = File(..., description="a flight log (.jsonl) written by skygrid fly"),
           principal: Principal = Depends(require_roles("dispatcher", "operator", "viewer", "department"))) -> dict:
    """Read an uploaded flight log and answer the track and events for the replay page."""
    data = file.file.read(MAX_LOG_BYTES + 1)
    if len(data) > MAX_LOG_BYTES:
        raise ApiError(413, f"file: flight log larger than {MAX_LOG_BYTES // 2**20} MiB", "form.file")
    name = Path(file.filename or "flight.jsonl").name
    with tempfile.TemporaryDirectory(prefix="skygrid-replay-") as d:
        path = Path(d) / "log.jsonl"
        path.write_bytes(data)
        return replay_of(path, name)
