"""Simulated survey passes for testing and benchmarking the vision stage.

A lawnmower pattern of camera poses over a rectangle (lines north-south, alternating
heading, line spacing and trigger distance from the camera footprint and overlaps, as
the planner does), objects planted at random non-overlapping spots, and an *oracle*
detector that turns the renderer's ground truth into noisy detections (box jitter, misses,
one-frame false positives) so tracking can be tested without a trained model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from geo.camera import CameraModel
from geo.georef import CameraPose
from simulators.scenario import INCIDENT_KINDS, PlantedObject
from vision.classes import PATROL_CLASSES
from vision.contracts import Detection
from vision.geolocate import offset_to_wgs84


def lawnmower_poses(lat0: float, lon0: float, width_m: float, height_m: float, altitude_m: float,
                    camera: CameraModel, ground_alt_m: float = 0.0, side_overlap: float = 0.3,
                    front_overlap: float = 0.7, gimbal_pitch_deg: float = -90.0,
                    trigger_m: float | None = None) -> list[CameraPose]:
    """Nadir poses flying north/south lines over the ``width_m`` x ``height_m`` rectangle
    centred on (lat0, lon0). The image's long side is across track (east-west).
    ``trigger_m`` (metres between frames, as the patrol's video sampling) overrides
    ``front_overlap``."""
    spacing = camera.line_spacing_m(altitude_m, side_overlap)
    trigger = trigger_m if trigger_m else camera.trigger_distance_m(altitude_m, front_overlap)
    n_lines = max(1, math.ceil(width_m / spacing) + 1)
    xs = (np.arange(n_lines) - (n_lines - 1) / 2) * spacing
    n_shots = max(1, math.ceil(height_m / trigger) + 1)
    ys = (np.arange(n_shots) - (n_shots - 1) / 2) * trigger
    poses = []
    for i, x in enumerate(xs):
        north = ys if i % 2 == 0 else ys[::-1]
        yaw = 0.0 if i % 2 == 0 else 180.0
        for y in north:
            lat, lon = offset_to_wgs84(lat0, lon0, float(y), float(x))
            poses.append(CameraPose(lat=lat, lon=lon, alt_amsl_m=ground_alt_m + altitude_m, ground_alt_m=ground_alt_m,
                                    yaw_deg=yaw, gimbal_pitch_deg=gimbal_pitch_deg))
    return poses


def plant_objects(rng: np.random.Generator, lat0: float, lon0: float, kinds: list[str], half_extent_m: float,
                  min_separation_m: float = 40.0, size_range: tuple[float, float] = (8.0, 14.0)) -> list[PlantedObject]:
    """One object per entry of ``kinds`` at random spots within +-``half_extent_m`` of the
    centre, at least ``min_separation_m`` apart."""
    placed: list[tuple[float, float]] = []
    out = []
    for i, kind in enumerate(kinds):
        for _ in range(1000):
            n, e = rng.uniform(-half_extent_m, half_extent_m, 2)
            if all(math.hypot(n - a, e - b) >= min_separation_m for a, b in placed):
                break
        else:
            raise ValueError(f"cannot place {len(kinds)} objects {min_separation_m} m apart in +-{half_extent_m} m")
        placed.append((float(n), float(e)))
        lat, lon = offset_to_wgs84(lat0, lon0, float(n), float(e))
        out.append(PlantedObject(id=f"{kind}-{i}", kind=kind, lat=float(lat), lon=float(lon),
                                 heading_deg=float(rng.uniform(0, 360)), size_m=float(rng.uniform(*size_range))))
    return out


@dataclass
class OracleDetector:
    """Detections from ground truth, with realistic noise. Set ``truth`` before each ``detect``.

    ``jitter``: box-edge noise as a fraction of the box size (1-sigma); ``miss``: chance a
    visible incident is not detected; ``false_rate``: mean one-frame false positives per
    frame (random class, random place); ``min_visible``: truth boxes less visible than
    this are not detected (cut by the frame edge).
    """

    seed: int = 0
    jitter: float = 0.05
    miss: float = 0.1
    false_rate: float = 0.2
    min_visible: float = 0.6
    truth: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        out = []
        for tb in self.truth:
            if tb.kind not in INCIDENT_KINDS or tb.visible_fraction < self.min_visible or self.rng.random() < self.miss:
                continue
            x1, y1, x2, y2 = tb.box
            bw, bh = x2 - x1, y2 - y1
            j = self.rng.normal(0, self.jitter, 4) * np.array([bw, bh, bw, bh])
            box = (max(0.0, x1 + j[0]), max(0.0, y1 + j[1]), min(float(w), x2 + j[2]), min(float(h), y2 + j[3]))
            out.append(Detection(tb.kind, PATROL_CLASSES.index(tb.kind), float(self.rng.uniform(0.5, 0.95)), box))
        for _ in range(self.rng.poisson(self.false_rate)):
            c = int(self.rng.integers(len(PATROL_CLASSES)))
            x, y = self.rng.uniform(0, w - 40), self.rng.uniform(0, h - 40)
            s = self.rng.uniform(15, 40)
            out.append(Detection(PATROL_CLASSES[c], c, float(self.rng.uniform(0.3, 0.6)), (x, y, x + s, y + s)))
        return out
