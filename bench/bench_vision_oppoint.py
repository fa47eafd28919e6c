"""Benchmark: how the shipped model's operating point was chosen (and whether it still holds).

Eight lawnmower passes over unseen synthetic worlds (seeds 91001-91005: 8 incidents + 4
look-alikes each at 80/100/120/120/110 m AGL; seeds 91101-91103: 16 look-alikes each at
80/120/100 m), none of them a training or other benchmark seed. The detector runs once per
frame at a low threshold (0.15); the stage's geolocation and tracker (k=3 of n=5, default
confirmation) are then replayed for each candidate point (conf, per-class conf) and for the
model's shipped operating point with the detections above them, so every point sees exactly the same frames. Counted per point: planted
events with no incident of their class within 15 m (missed), with more than one
(duplicated), and incidents near no planted event of their class (false).

The price of a point in false alarms on real-looking scenes is counted too (issue 14): false
detections per image on 100 frames of the realistic renderer with nothing to find (seed 96001:
not a training seed, and not ``bench_vision_realneg``'s 95001, so choosing a point here does not
tune it to that benchmark) and on the training share of the real aerial negatives
(``bench/data/realneg/train``; ``bench_vision_realneg`` scores the held-out share).
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL = Path(os.environ.get("SKYGRID_VISION_MODEL", ROOT / "vision" / "models" / "skygrid-yolo.onnx")).resolve()
INCIDENT_SCENES = ((91001, 80.0), (91002, 100.0), (91003, 120.0), (91004, 120.0), (91005, 110.0))
LOOKALIKE_SCENES = ((91101, 80.0), (91102, 120.0), (91103, 100.0))
CONFS = (0.25, 0.3, 0.4, 0.5)
HAZMAT_CONFS = (0.4, 0.5, 0.6)
#: points holding the classes that look most like clutter (structures, dumping) higher
STRICT_CLASSES = ("illegal_structure", "illegal_dumping", "hazmat_fire")
LOW_CONF = 0.15
NEGATIVE_SEED, NEGATIVE_SCENES = 96_001, 100
REAL_TRAIN = ROOT / "bench" / "data" / "realneg" / "train"


class _Replay:
    """A detector returning a frame's cached detections above the point's thresholds."""

    def __init__(self, conf: float, class_conf: dict[str, float]) -> None:
        self.conf, self.class_conf = conf, class_conf
        self.cached: list = []

    def detect(self, image):
        return [d for d in self.cached if d.confidence >= self.class_conf.get(d.class_name, self.conf)]


def _passes(detector) -> list[tuple[int, float, list, list]]:
    """(seed, AGL, planted objects, [(pose, detections at LOW_CONF)]) per pass."""
    from bench.bench_vision_pipeline import INCIDENT_KINDS, LOOKALIKES, _scene

    out = []
    inc = [INCIDENT_KINDS[i % 4] for i in range(8)] + [LOOKALIKES[i % 4] for i in range(4)]
    look = [LOOKALIKES[i % 4] for i in range(16)]
    for (seed, alt), kinds in [(s, inc) for s in INCIDENT_SCENES] + [(s, look) for s in LOOKALIKE_SCENES]:
        cam, objects, world, poses = _scene(seed, kinds, alt)
        frames = []
        for pose in poses:
            jpeg = cv2.imencode(".jpg", world.render(cam, pose).image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
            frames.append((pose, detector.detect(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))))
        out.append((seed, alt, objects, frames))
        print(f"  pass {seed} at {alt:.0f} m: {len(frames)} frames", flush=True)
    return out


def _negatives(detector) -> tuple[list[list], list[list]]:
    """Detections at LOW_CONF on the realistic look-alike-only frames and on the real training negatives."""
    from bench.bench_vision_realneg import _scenes

    synthetic = [detector.detect(r.image) for _, r, _ in _scenes(NEGATIVE_SCENES, NEGATIVE_SEED)]
    real = [detector.detect(cv2.imread(str(p))) for p in sorted(REAL_TRAIN.glob("*.jpg"))]
    return synthetic, real


def _false_per_image(dets: list[list], conf: float, class_conf: dict[str, float]) -> float:
    kept = sum(1 for frame in dets for d in frame if d.confidence >= class_conf.get(d.class_name, conf))
    return kept / max(1, len(dets))


def _score(passes, conf: float, class_conf: dict[str, float]) -> tuple[int, int, int]:
    """(missed, duplicated, false) over all passes at one operating point."""
    from geo.camera import PRESETS
    from geo.geodesy import distance_m
    from vision.contracts import Frame
    from vision.pipeline import VisionStage
    from vision.tracker import IncidentTracker

    cam = PRESETS["m3e"].scaled(640)
    blank = np.zeros((cam.image_height_px, cam.image_width_px, 3), np.uint8)
    replay = _Replay(conf, class_conf)
    missed = dup = false = 0
    for seed, _alt, objects, frames in passes:
        stage = VisionStage(replay, IncidentTracker(f"op-{seed}", k=3, n=5, stale_after_s=0.0), cam)
        for i, (pose, dets) in enumerate(frames):
            replay.cached = dets
            stage.process(Frame(image=blank, camera=cam, pose=pose, drone_id="d0", frame_id=i, time_s=2.0 * i,
                                wall_time=time.time()))
        incidents = stage.tracker.incidents()
        matched: set[str] = set()
        for o in (o for o in objects if o.is_incident):
            near = [x for x in incidents if x.class_name == o.kind and distance_m(x.lat, x.lon, o.lat, o.lon) < 15.0]
            matched.update(x.id for x in near)
            missed += not near
            dup += len(near) > 1
        false += sum(1 for x in incidents if x.id not in matched)
    return missed, dup, false


def run() -> str:
    from vision.detector import OnnxDetector, operating_point

    if not MODEL.exists():
        msg = f"## Vision operating point\n\nModel {MODEL} not found: nothing measured.\n"
        print(msg)
        return msg
    shipped = operating_point(MODEL)
    low = OnnxDetector(MODEL, threads=2, conf=LOW_CONF)
    passes = _passes(low)
    synthetic_neg, real_neg = _negatives(low)
    n_events = sum(o.is_incident for _, _, objects, _ in passes for o in objects)
    n_look = sum(not o.is_incident for _, _, objects, _ in passes for o in objects)
    points = [(c, {"hazmat_fire": h}) for c, h in itertools.product(CONFS, HAZMAT_CONFS)]
    points += [(c, dict.fromkeys(STRICT_CLASSES, s)) for c, s in ((0.3, 0.5), (0.4, 0.5), (0.4, 0.6), (0.5, 0.6))]
    if "conf" in shipped:
        points.append((shipped["conf"], dict(shipped.get("class_conf", {}))))
    rows = []
    for i, (conf, class_conf) in enumerate(points):
        m, d, f = _score(passes, conf, class_conf)
        fs, fr = _false_per_image(synthetic_neg, conf, class_conf), _false_per_image(real_neg, conf, class_conf)
        others = ", ".join(f"{k} {v:.2f}" for k, v in sorted(class_conf.items()))
        mark = " **(shipped)**" if "conf" in shipped and i == len(points) - 1 else ""
        rows.append(f"| {conf:.2f} | {others}{mark} | {m} | {d} | {f} | {fs:.3f} | {fr:.3f} |")
        print(f"  conf {conf:.2f} {others}: missed {m}, duplicated {d}, false {f}, "
              f"false/image realistic {fs:.3f}, real {fr:.3f}", flush=True)
    frames = sum(len(fr) for *_, fr in passes)
    out = "\n".join([
        "## Vision operating point (unseen passes, replayed per threshold)",
        "",
        f"Model `{MODEL.name}`; {len(passes)} lawnmower passes ({frames} frames, 640×480, frames every 20 m) over "
        f"worlds no training or other benchmark uses: seeds {', '.join(str(s) for s, _ in INCIDENT_SCENES)} with "
        f"8 incidents + 4 look-alikes each at 80-120 m AGL, seeds {', '.join(str(s) for s, _ in LOOKALIKE_SCENES)} "
        f"with 16 look-alikes each; {n_events} planted events, {n_look} look-alikes. Detections at conf "
        f"{LOW_CONF} once, then the stage (geolocation + tracker, k=3 of n=5) replayed per point. Target: 0 / 0 / 0. "
        f"False detections per image: {len(synthetic_neg)} realistic-renderer frames with nothing to find (seed "
        f"{NEGATIVE_SEED}) and the {len(real_neg)} real aerial negatives of bench/data/realneg/train.",
        "",
        "| conf | per-class conf | missed events | duplicated events | false incidents | false / image, realistic | "
        "false / image, real photos |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ])
    print(out)
    return out


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(ROOT))  # run as a script: make the ``bench`` package importable
    print(run())
