"""Synthetic YOLO datasets from the aerial camera (:mod:`simulators.camera`).

Every frame is a fresh random world (seeded from the dataset seed, the split and the frame
number, so train/val/test never share a world) with random planted incidents and
look-alikes seen from 60-120 m AGL, random yaw, gimbal mostly nadir (-90) and sometimes
pitched (-60...-85), at the detection stream size (m3e at 640 x 480). Only the four
:data:`vision.classes.PATROL_CLASSES` are labelled; look-alikes are present but unlabelled
(hard negatives) and some frames hold nothing or only look-alikes.

Layout (the usual ultralytics one)::

    DIR/data.yaml                      path, train/val/test, names (index order = PATROL_CLASSES)
    DIR/images/{train,val,test}/*.jpg
    DIR/labels/{train,val,test}/*.txt  "class cx cy w h", normalised to [0, 1]
    DIR/truth/{train,val,test}.jsonl   every planted object per frame, look-alikes included
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

from geo.camera import CameraModel, get_camera
from geo.georef import CameraPose, pixels_to_ground
from simulators.camera import Rendered, TruthBox, World
from simulators.camera.world import local_frame
from simulators.scenario import INCIDENT_KINDS, LOOKALIKE_KINDS, PlantedObject
from vision.classes import PATROL_CLASSES

SPLITS = ("train", "val", "test")
#: World origins (county seats across Zhejiang); pyproj frames for them are cached.
_ORIGINS = ((30.088, 120.329), (30.745, 120.755), (29.117, 119.647), (28.456, 119.923), (29.869, 121.544),
            (30.894, 120.087), (29.303, 120.076), (28.001, 120.672))
_SPLIT_SALT = {"train": 101, "val": 202, "test": 303, "bench": 404}

#: Planted size ranges in metres (characteristic length) per kind.
SIZE_RANGE_M: dict[str, tuple[float, float]] = {
    "illegal_structure": (8.0, 24.0),
    "straw_burning": (6.0, 20.0),
    "illegal_dumping": (4.0, 12.0),
    "hazmat_fire": (9.0, 16.0),
    "roof": (7.0, 15.0),
    "cooking_smoke": (6.0, 12.0),
    "haystack": (2.0, 5.0),
    "parked_truck": (6.0, 12.0),
}

#: A box is labelled when at least this fraction of it is inside the frame.
MIN_VISIBLE_FRACTION = 0.3
MIN_BOX_PX = 3.0


@dataclass(frozen=True)
class FrameSpec:
    """One synthetic frame: the world, the camera pose and what is planted."""

    world_seed: int
    lat: float
    lon: float
    ground_alt_m: float
    pose: CameraPose
    objects: tuple[PlantedObject, ...]
    effects_seed: int | None = None  # realistic mix: seed of :func:`simulators.camera.optics.degrade`


@dataclass
class DatasetSummary:
    """What :func:`generate_dataset` wrote: frames and labelled boxes per split and class."""

    out_dir: Path
    frames: dict[str, int] = field(default_factory=dict)
    boxes: dict[str, Counter] = field(default_factory=dict)
    empty_frames: dict[str, int] = field(default_factory=dict)


def split_seed(seed: int, split: str) -> int:
    """The seed of a split: different splits never share worlds."""
    return int(seed) * 1000 + _SPLIT_SALT[split]


@dataclass(frozen=True)
class FrameMix:
    """How random frames are composed (altitudes, sizes, what is planted).

    ``agl_m``: uniform range of heights above ground; ``high_agl_share`` of the frames are
    drawn from ``high_agl_m`` instead (small objects, the hardest case). ``empty_share`` /
    ``lookalike_only_share``: frames with nothing / only look-alikes. ``lookalikes``: (min,
    max) look-alikes beside the incidents; ``lookalike_weights``: relative odds of each
    :data:`LOOKALIKE_KINDS` entry (None: equal); ``truck_with_hazmat``: chance a parked
    truck is planted in a frame that holds a hazmat fire (the hardest negative: same
    vehicle, no fire). ``sizes`` overrides :data:`SIZE_RANGE_M` per kind (metres).
    ``nadir_share`` of the frames look straight down, the rest at a gimbal pitch drawn from
    ``pitch_deg`` (degrees). ``clutter``: (min, max) everyday objects from
    :data:`simulators.camera.lookalikes.CLUTTER_KINDS` (cars, buildings, trees, shadows, tracks,
    flower beds, glare, steam; never labelled) added to every frame;
    ``incident_style_share``: chance a straw burn is drawn in another style (mostly smoke, or
    flame without smoke); ``effects``: light/lens/codec degradation per frame
    (:func:`simulators.camera.optics.degrade`). The defaults draw no extra random numbers.
    """

    agl_m: tuple[float, float] = (60.0, 120.0)
    high_agl_share: float = 0.0
    high_agl_m: tuple[float, float] = (100.0, 130.0)
    empty_share: float = 0.10
    lookalike_only_share: float = 0.15
    lookalikes: tuple[int, int] = (0, 3)
    lookalike_weights: tuple[float, ...] | None = None
    truck_with_hazmat: float = 0.0
    sizes: tuple[tuple[str, tuple[float, float]], ...] = ()
    nadir_share: float = 0.75
    pitch_deg: tuple[float, float] = (-85.0, -60.0)
    clutter: tuple[int, int] = (0, 0)
    incident_style_share: float = 0.0
    effects: bool = False

    def size_range(self, kind: str) -> tuple[float, float]:
        kind = kind.partition(":")[0]
        sizes = dict(self.sizes)
        if kind in sizes:
            return sizes[kind]
        if kind in SIZE_RANGE_M:
            return SIZE_RANGE_M[kind]
        from simulators.camera.lookalikes import CLUTTER_SIZE_M

        return CLUTTER_SIZE_M[kind]


#: Named mixes for ``skygrid vision dataset --mix``. "default" is the original data (and
#: the held-out mAP benchmark's distribution); "hard" adds small objects at 100-130 m AGL,
#: twice the look-alikes (parked trucks most, often next to a hazmat fire) and look-alikes
#: and dumping piles over the sizes the patrol passes plant (up to 14 m).
MIXES: dict[str, FrameMix] = {
    "default": FrameMix(),
    "hard": FrameMix(agl_m=(60.0, 100.0), high_agl_share=0.5, high_agl_m=(100.0, 130.0), empty_share=0.08,
                     lookalike_only_share=0.25, lookalikes=(1, 4), lookalike_weights=(0.2, 0.2, 0.25, 0.35),
                     truck_with_hazmat=0.7,
                     sizes=(("illegal_dumping", (4.0, 14.0)), ("roof", (7.0, 16.0)), ("cooking_smoke", (6.0, 14.0)),
                            ("haystack", (2.0, 14.0)), ("parked_truck", (6.0, 14.0)))),
    # real aerial scenes: every frame full of everyday clutter (cars of every colour, legal
    # white/blue buildings, trees, shadows, tracks, flower beds, glare, steam), wider altitude
    # and pitch, smoke-dominated and smokeless burns, and dusk/haze/vignetting/blur/JPEG
    "realistic": FrameMix(agl_m=(40.0, 110.0), high_agl_share=0.35, high_agl_m=(110.0, 150.0), empty_share=0.15,
                          lookalike_only_share=0.30, lookalikes=(0, 3), lookalike_weights=(0.2, 0.2, 0.25, 0.35),
                          truck_with_hazmat=0.5,
                          sizes=(("illegal_dumping", (4.0, 14.0)), ("straw_burning", (6.0, 30.0)),
                                 ("roof", (7.0, 16.0)), ("cooking_smoke", (6.0, 14.0)), ("haystack", (2.0, 14.0)),
                                 ("parked_truck", (6.0, 14.0))),
                          nadir_share=0.55, pitch_deg=(-88.0, -45.0), clutter=(3, 12), incident_style_share=0.4,
                          effects=True),
}


def random_frame(rng: np.random.Generator, camera: CameraModel, world_seed: int,
                 mix: FrameMix | None = None) -> FrameSpec:
    """Draw a random world origin, pose and planted objects for one frame.

    Composition (the default :class:`FrameMix`): 10 % empty, 15 % look-alikes only,
    otherwise 1-3 incidents + 0-3 look-alikes, each at a random pixel of the frame (so it
    is in view), not overlapping one another. The default mix draws exactly the random
    numbers it always did, so old seeds give the same frames.
    """
    mix = mix or MIXES["default"]
    lat, lon = _ORIGINS[int(rng.integers(len(_ORIGINS)))]  # the world differs by seed, not by origin
    ground = float(rng.uniform(0.0, 300.0))
    if mix.high_agl_share > 0 and rng.random() < mix.high_agl_share:
        agl = float(rng.uniform(*mix.high_agl_m))
    else:
        agl = float(rng.uniform(*mix.agl_m))
    pitch = -90.0 if rng.random() < mix.nadir_share else float(rng.uniform(*mix.pitch_deg))
    pose = CameraPose(lat, lon, ground + agl, ground, yaw_deg=float(rng.uniform(0, 360)), gimbal_pitch_deg=pitch)
    p = None
    if mix.lookalike_weights is not None:
        p = np.asarray(mix.lookalike_weights, float) / float(np.sum(mix.lookalike_weights))
    lo_n, hi_n = mix.lookalikes
    r = rng.random()
    if r < mix.empty_share:
        kinds: list[str] = []
    elif r < mix.empty_share + mix.lookalike_only_share:
        kinds = list(rng.choice(LOOKALIKE_KINDS, int(rng.integers(1, max(2, hi_n + 1))), p=p))
    else:
        incidents = list(rng.choice(INCIDENT_KINDS, int(rng.integers(1, 4))))
        kinds = incidents + list(rng.choice(LOOKALIKE_KINDS, int(rng.integers(lo_n, hi_n + 1)), p=p))
        if mix.truck_with_hazmat > 0 and "hazmat_fire" in incidents and rng.random() < mix.truck_with_hazmat:
            kinds.append("parked_truck")
    if mix.incident_style_share > 0:
        from simulators.camera.lookalikes import INCIDENT_STYLES

        kinds = [f"{k}:{rng.choice(INCIDENT_STYLES[k], p=[0.65, 0.35])}"
                 if k in INCIDENT_STYLES and rng.random() < mix.incident_style_share else str(k) for k in kinds]
    if mix.clutter[1] > 0:
        from simulators.camera.lookalikes import CLUTTER_KINDS, CLUTTER_WEIGHTS

        cw = np.asarray(CLUTTER_WEIGHTS, float) / float(np.sum(CLUTTER_WEIGHTS))
        kinds += list(rng.choice(CLUTTER_KINDS, int(rng.integers(mix.clutter[0], mix.clutter[1] + 1)), p=cw))
    frame = local_frame(lat, lon)
    placed: list[tuple[float, float, float]] = []
    objects = []
    w, h = camera.image_width_px, camera.image_height_px
    for i, kind in enumerate(kinds):
        lo, hi = mix.size_range(kind)
        size = float(rng.uniform(lo, hi))
        for _ in range(20):
            u, v = rng.uniform(0.08 * w, 0.92 * w), rng.uniform(0.1 * h, 0.9 * h)
            dn, de = pixels_to_ground(u, v, camera, pose)
            if all(math.hypot(float(de) - e, float(dn) - n) > (size + s) * 0.6 for e, n, s in placed):
                break
        else:
            continue
        placed.append((float(de), float(dn), size))
        olon, olat = frame.to_wgs84(float(de), float(dn))
        objects.append(PlantedObject(f"o{i}-{kind}", str(kind), float(olat), float(olon),
                                     heading_deg=float(rng.uniform(0, 360)), size_m=size))
    effects_seed = int(rng.integers(2**31)) if mix.effects else None
    return FrameSpec(world_seed, lat, lon, ground, pose, tuple(objects), effects_seed)


def render_frame(spec: FrameSpec, camera: CameraModel) -> Rendered:
    """Render a :class:`FrameSpec` (a small world: only the footprint matters)."""
    world = World(spec.world_seed, spec.lat, spec.lon, spec.ground_alt_m, list(spec.objects), extent_m=1200.0)
    r = world.render(camera, spec.pose)
    if spec.effects_seed is not None:
        from simulators.camera.optics import degrade

        r.image, _ = degrade(r.image, np.random.default_rng(spec.effects_seed))
    return r


def yolo_labels(truth: list[TruthBox], width: int, height: int) -> list[tuple[int, float, float, float, float]]:
    """Labelled boxes (class index, cx, cy, w, h normalised) for the patrol classes only.

    Look-alikes are never labelled; boxes with less than :data:`MIN_VISIBLE_FRACTION` in view
    or thinner than :data:`MIN_BOX_PX` pixels are left out.
    """
    out = []
    for t in truth:
        if t.kind not in PATROL_CLASSES or t.visible_fraction < MIN_VISIBLE_FRACTION:
            continue
        x1, y1, x2, y2 = t.box
        if x2 - x1 < MIN_BOX_PX or y2 - y1 < MIN_BOX_PX:
            continue
        out.append((PATROL_CLASSES.index(t.kind), (x1 + x2) / 2 / width, (y1 + y2) / 2 / height,
                    (x2 - x1) / width, (y2 - y1) / height))
    return out


def write_data_yaml(out_dir: Path, splits: tuple[str, ...] = SPLITS) -> Path:
    """Write ``data.yaml`` for ultralytics (absolute path, the patrol class names in index order)."""
    out_dir = Path(out_dir)
    data = {"path": str(out_dir.resolve()), **{s: f"images/{s}" for s in splits},
            "names": dict(enumerate(PATROL_CLASSES))}
    p = out_dir / "data.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return p


def generate_split(out_dir: Path, split: str, count: int, seed: int, camera: CameraModel | None = None,
                   progress: Callable[[int], None] | None = None, jpeg_quality: int = 92,
                   mix: FrameMix | None = None) -> tuple[Counter, int]:
    """Render ``count`` frames of one split (composed as ``mix``, default :data:`MIXES` "default");
    returns (labelled boxes per class, empty frames)."""
    camera = camera or get_camera("m3e").scaled(640)
    out_dir = Path(out_dir)
    img_dir, lbl_dir, truth_dir = out_dir / "images" / split, out_dir / "labels" / split, out_dir / "truth"
    for d in (img_dir, lbl_dir, truth_dir):
        d.mkdir(parents=True, exist_ok=True)
    base = split_seed(seed, split)
    boxes: Counter = Counter()
    empty = 0
    with open(truth_dir / f"{split}.jsonl", "w", encoding="utf-8") as tf:
        for i in range(count):
            rng = np.random.default_rng([base, i])
            spec = random_frame(rng, camera, world_seed=base * 100_000 + i, mix=mix)
            r = render_frame(spec, camera)
            name = f"{split}_{seed}_{i:06d}"
            cv2.imwrite(str(img_dir / f"{name}.jpg"), r.image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            labels = yolo_labels(r.truth, camera.image_width_px, camera.image_height_px)
            (lbl_dir / f"{name}.txt").write_text(
                "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels), encoding="utf-8")
            boxes.update(PATROL_CLASSES[c] for c, *_ in labels)
            empty += not labels
            tf.write(json.dumps({"image": f"images/{split}/{name}.jpg", "agl_m": spec.pose.height_m,
                                 "gimbal_pitch_deg": spec.pose.gimbal_pitch_deg,
                                 "truth": [{"id": t.object_id, "kind": t.kind, "box": [round(b, 2) for b in t.box],
                                            "visible_fraction": round(t.visible_fraction, 3)} for t in r.truth]})
                     + "\n")
            if progress:
                progress(1)
    return boxes, empty


def generate_dataset(out_dir: str | Path, n_train: int, n_val: int, n_test: int, seed: int = 0,
                     camera: CameraModel | None = None,
                     progress: Callable[[str, int], None] | None = None,
                     mix: FrameMix | str | None = None) -> DatasetSummary:
    """Render a YOLO dataset with train/val/test splits from different seeds into ``out_dir``.

    ``progress(split, n)`` is called after every frame. Existing files of the same names
    are overwritten; other files in ``out_dir`` (e.g. imported data) are kept. ``mix``: a
    :class:`FrameMix` or the name of one in :data:`MIXES` (default "default").
    """
    if isinstance(mix, str):
        if mix not in MIXES:
            raise ValueError(f"unknown frame mix {mix!r}; known: {', '.join(MIXES)}")
        mix = MIXES[mix]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = DatasetSummary(out)
    for split, n in zip(SPLITS, (n_train, n_val, n_test), strict=True):
        if n <= 0:
            continue
        boxes, empty = generate_split(out, split, n, seed, camera,
                                      (lambda k, s=split: progress(s, k)) if progress else None, mix=mix)
        summary.frames[split], summary.boxes[split], summary.empty_frames[split] = n, boxes, empty
    write_data_yaml(out, tuple(s for s in SPLITS if (out / "images" / s).is_dir()))
    return summary


# --- evaluation against rendered truth ----------------------------------------------------
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes ``a`` (N x 4) and ``b`` (M x 4)."""
    a = np.asarray(a, float).reshape(-1, 4)
    b = np.asarray(b, float).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def average_precision(scores: np.ndarray, tp: np.ndarray, n_truth: int) -> float:
    """All-point interpolated AP (area under the precision envelope) of scored detections
    marked true/false positive against ``n_truth`` ground-truth boxes. NaN if no truth."""
    if n_truth == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, float), kind="stable")
    tp = np.asarray(tp, bool)[order]
    ctp, cfp = np.cumsum(tp), np.cumsum(~tp)
    recall = ctp / n_truth
    precision = ctp / np.maximum(ctp + cfp, 1e-9)
    r = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    return float(np.sum((r[1:] - r[:-1]) * p[1:]))


@dataclass
class FrameEval:
    """One frame for evaluation: truth (planted objects, all kinds) and detections
    (class name, confidence, xyxy box)."""

    truth: list[TruthBox]
    detections: list[tuple[str, float, tuple[float, float, float, float]]]


def evaluate(frames: list[FrameEval], iou: float = 0.5, lookalike_conf: float = 0.25) -> dict:
    """mAP at ``iou`` per patrol class and overall (mean over classes with truth), and
    look-alike false detections at ``lookalike_conf``.

    Truth boxes are those :func:`yolo_labels` would label; incidents mostly out of view
    (visible fraction < :data:`MIN_VISIBLE_FRACTION`) are "don't care": detections on them
    count neither way. A look-alike false detection is a detection at ``lookalike_conf`` or
    more that matches no incident and overlaps a look-alike's box (IoU >= 0.3).
    """
    per_class: dict[str, dict] = {c: {"scores": [], "tp": [], "n": 0} for c in PATROL_CLASSES}
    lookalike_hits: Counter = Counter()
    lookalike_seen: Counter = Counter()
    for f in frames:
        for t in f.truth:
            if t.kind not in PATROL_CLASSES:
                lookalike_seen[t.kind] += 1
        for c in PATROL_CLASSES:
            gts = [t for t in f.truth if t.kind == c]
            good = [t for t in gts if t.visible_fraction >= MIN_VISIBLE_FRACTION
                    and t.box[2] - t.box[0] >= MIN_BOX_PX and t.box[3] - t.box[1] >= MIN_BOX_PX]
            dc = [t for t in gts if t not in good]
            per_class[c]["n"] += len(good)
            dets = sorted((d for d in f.detections if d[0] == c), key=lambda d: -d[1])
            used = np.zeros(len(good), bool)
            g = np.array([t.box for t in good]).reshape(-1, 4)
            dcb = np.array([t.box for t in dc]).reshape(-1, 4)
            for _, conf, box in dets:
                ious = box_iou(np.array([box]), g)[0] if len(good) else np.zeros(0)
                j = int(np.argmax(np.where(used, -1, ious))) if len(good) else -1
                if j >= 0 and ious[j] >= iou and not used[j]:
                    used[j] = True
                    per_class[c]["scores"].append(conf)
                    per_class[c]["tp"].append(True)
                elif len(dc) and box_iou(np.array([box]), dcb).max() >= iou:
                    continue
                else:
                    per_class[c]["scores"].append(conf)
                    per_class[c]["tp"].append(False)
        looks = [t for t in f.truth if t.kind not in PATROL_CLASSES]
        incs = np.array([t.box for t in f.truth if t.kind in PATROL_CLASSES]).reshape(-1, 4)
        for _, conf, box in f.detections:
            if conf < lookalike_conf or not looks:
                continue
            if len(incs) and box_iou(np.array([box]), incs).max() >= 0.3:
                continue
            ious = box_iou(np.array([box]), np.array([t.box for t in looks]))[0]
            if ious.max() >= 0.3:
                lookalike_hits[looks[int(np.argmax(ious))].kind] += 1
    out: dict = {"per_class": {}, "lookalike_false": dict(lookalike_hits), "lookalikes_in_view": dict(lookalike_seen)}
    aps = []
    hits = total = 0
    for c, d in per_class.items():
        ap = average_precision(np.array(d["scores"]), np.array(d["tp"]), d["n"])
        tp_at = int(np.sum(np.array(d["tp"], bool) & (np.array(d["scores"], float) >= lookalike_conf)))
        out["per_class"][c] = {"ap50": ap, "truth": d["n"], "recall_at_conf": tp_at / d["n"] if d["n"] else float("nan")}
        hits, total = hits + tp_at, total + d["n"]
        if not np.isnan(ap):
            aps.append(ap)
    out["map50"] = float(np.mean(aps)) if aps else float("nan")
    out["recall_at_conf"] = hits / total if total else float("nan")
    return out
