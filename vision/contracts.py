"""Records that flow through the vision stage: frames -> detections -> incidents.

Pixels: (x1, y1, x2, y2) in the frame's pixel grid. Positions WGS-84 degrees, errors in
metres (1-sigma horizontal radius), times as in :mod:`flight.records`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geo.camera import CameraModel
from geo.georef import CameraPose


@dataclass
class Frame:
    image: np.ndarray  # H x W x 3, BGR uint8
    camera: CameraModel  # at the frame's resolution
    pose: CameraPose
    drone_id: str = "d0"
    frame_id: int = 0
    time_s: float = 0.0
    wall_time: float = 0.0
    sortie_id: str | None = None


@dataclass(frozen=True)
class Detection:
    class_name: str
    class_id: int
    confidence: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class GeoDetection:
    detection: Detection
    lat: float
    lon: float
    error_m: float
    frame_id: int
    drone_id: str
    time_s: float
    wall_time: float


@dataclass
class Incident:
    """One real event seen from the air, confirmed over several frames."""

    id: str  # stable client-side id: also the idempotency key at dispatch
    class_name: str
    lat: float
    lon: float
    error_m: float
    confidence: float
    first_seen_s: float
    last_seen_s: float
    frames_seen: int
    drone_id: str
    sortie_id: str | None = None
    evidence_jpeg: bytes | None = None
    evidence_box: tuple[float, float, float, float] | None = None
    first_frame_wall_time: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
