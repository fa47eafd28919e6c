"""Benchmark: false detections on real-world look-alike scenes, old model vs new, same run.

Scenes: frames of the realistic renderer (:data:`vision.dataset.MIXES` "realistic") with
NOTHING to find: cars and vans of every roof colour, legal white/blue buildings, tree
crowns, shrubs, long shadows, dirt tracks, flower beds, water glare, steam, the original
look-alikes, under dusk/overcast/low-sun light, cloud shadows, haze, vignetting, blur and
JPEG artefacts, 40-150 m AGL, pitch -45...-90 (seed 95001, used by no training split).
Every detection at a model's operating point (its sidecar's ``operating_point``) is false.
Also reported, for both models in the same run: held-out synthetic mAP50 (``bench_vision_map``'s
frames), incidents per planted event and frames/s of the whole stage on ``bench_vision_pipeline``'s
passes (80 and 120 m AGL, 16 events, plus its look-alike-only pass; frames rendered once and fed
to both models), and the model file size. ``python -m bench.bench_vision_realneg`` also writes
this section into docs/benchmarks.md.

Models: ``NEW`` = the shipped ``vision/models/skygrid-yolo.onnx`` (or
``SKYGRID_VISION_MODEL_NEW``); ``OLD`` = the model shipped before issue 14, read from git
history (commit ``OLD_MODEL_REV``) or ``SKYGRID_VISION_MODEL_OLD``.

Real photos: the held-out share of ``bench/data/realneg`` (real aerial negatives cut from the
NEON orthophotos and a DJI frame that the ``deepforest`` wheel ships, see its LICENSE.md and
``bench/realneg_data.py``; the training share, one other NEON photo, is never scored here).
Every detection on them is false; per km² where the photo's ground sample distance is known
(``MANIFEST.csv``). ``REALNEG_DIR`` points it at another folder of real negatives (every image a
negative, area unknown).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from geo.camera import get_camera
from geo.georef import pixels_to_ground
from vision.dataset import MIXES, FrameEval, evaluate, random_frame, render_frame, split_seed

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "vision" / "models" / "skygrid-yolo.onnx"
OLD_MODEL_REV = "711271e"  # main before issue 14: the synthetic-only model (MODEL_CARD "v2")
SECTION = "## Vision: false detections on real-world look-alike scenes (issue 14)"
SEED = 95_001
MAP_SEED = 77_777  # bench_vision_map's frames
TARGET_RATIO = 10.0
TARGET_MAP50, TARGET_MB, TARGET_FPS = 0.95, 15.0, 15.0


def _old_model(tmp: Path) -> Path | None:
    env = os.environ.get("SKYGRID_VISION_MODEL_OLD")
    if env:
        return Path(env)
    out = tmp / "old.onnx"
    for suffix in (".onnx", ".json"):
        try:
            data = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_MODEL_REV}:vision/models/skygrid-yolo{suffix}"],
                                  capture_output=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return None
        out.with_suffix(suffix).write_bytes(data)
    return out


def _footprint_km2(camera, pose) -> float:
    """Ground area in view (km²): the image outline cast to the ground plane (shoelace)."""
    w, h = camera.image_width_px, camera.image_height_px
    u = np.array([0, w / 2, w, w, w, w / 2, 0, 0], float)
    v = np.array([0, 0, 0, h / 2, h, h, h, h / 2], float)
    dn, de = pixels_to_ground(u, v, camera, pose)
    ok = np.isfinite(dn) & np.isfinite(de)
    dn, de = dn[ok], de[ok]
    return float(abs(np.dot(de, np.roll(dn, 1)) - np.dot(dn, np.roll(de, 1))) / 2 / 1e6)


def _scenes(n: int, seed: int = SEED):
    """``n`` realistic-renderer frames with nothing to find: (spec, rendered, km² in view)."""
    camera = get_camera("m3e").scaled(640)
    mix = replace(MIXES["realistic"], empty_share=0.0, lookalike_only_share=1.0)
    base = split_seed(seed, "bench")
    for i in range(n):
        spec = random_frame(np.random.default_rng([base, i]), camera, world_seed=base * 100_000 + i, mix=mix)
        yield spec, render_frame(spec, camera), _footprint_km2(camera, spec.pose)


REALNEG = ROOT / "bench" / "data" / "realneg"


def _real_images() -> list[tuple[np.ndarray, float | None]]:
    """Real aerial negatives and the ground area each shows (km², None where unknown)."""
    import csv

    import cv2

    d = os.environ.get("REALNEG_DIR")
    if d:
        paths = [p for p in sorted(Path(d).rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
        gsd: dict[str, float] = {}
    else:
        with open(REALNEG / "MANIFEST.csv", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r["share"] == "bench"]
        paths = [REALNEG / r["file"] for r in rows]
        gsd = {r["file"]: float(r["m_per_px"]) for r in rows if r["m_per_px"]}
    out = []
    for p in paths:
        im = cv2.imread(str(p))
        if im is None:
            raise ValueError(f"{p}: not a readable image")
        m = gsd.get(f"{p.parent.name}/{p.name}") if not d else None
        out.append((im, im.shape[0] * im.shape[1] * m * m / 1e6 if m else None))
    return out


def _map50(model: Path, frames: int) -> float:
    from vision.detector import OnnxDetector

    camera = get_camera("m3e").scaled(640)
    det = OnnxDetector(model, conf=0.001, iou=0.6, threads=2)
    base = split_seed(MAP_SEED, "bench")
    evals = []
    for i in range(frames):
        spec = random_frame(np.random.default_rng([base, i]), camera, world_seed=base * 100_000 + i)
        r = render_frame(spec, camera)
        evals.append(FrameEval(r.truth, [(d.class_name, d.confidence, d.box) for d in det.detect(r.image)]))
    return float(evaluate(evals)["map50"])


class _CachedWorld:
    """A pass's world whose frames are rendered once and replayed to every model."""

    def __init__(self, world) -> None:
        self.world = world
        self.cache: dict = {}

    def render(self, cam, pose):
        if pose not in self.cache:  # CameraPose is a frozen dataclass: hashable
            self.cache[pose] = self.world.render(cam, pose)
        return self.cache[pose]


def _passes() -> dict[str, tuple]:
    """``bench_vision_pipeline``'s three passes (same seeds and plantings), frames cached."""
    import bench.bench_vision_pipeline as bp

    incident_kinds = [bp.INCIDENT_KINDS[i % 4] for i in range(8)] + [bp.LOOKALIKES[i % 4] for i in range(4)]
    out = {}
    for alt in ("80", "120"):
        cam, objects, world, poses = bp._scene(bp.SEEDS[alt], incident_kinds, float(alt))
        out[alt] = (cam, objects, _CachedWorld(world), poses)
    cam, objects, world, poses = bp._scene(bp.SEEDS["lookalike"], [bp.LOOKALIKES[i % 4] for i in range(16)], 80.0)
    out["lookalike"] = (cam, objects, _CachedWorld(world), poses)
    return out


def _stage(det, passes: dict[str, tuple]) -> dict:
    """Incidents per planted event, missed events, false incidents and whole-stage frames/s."""
    import bench.bench_vision_pipeline as bp

    res = {k: bp._run_pass(det, *v, f"realneg-{k}") for k, v in passes.items()}
    per_event = res["80"]["per_event"] + res["120"]["per_event"]
    n = sum(r["stats"]["total_ms"]["n"] for r in res.values())
    mean_ms = sum(r["stats"]["total_ms"]["mean"] * r["stats"]["total_ms"]["n"] for r in res.values()) / n
    return {"ipe": float(np.mean(per_event)), "missed": per_event.count(0),
            "dup": sum(1 for x in per_event if x > 1), "events": len(per_event),
            "false": res["80"]["false_incidents"] + res["120"]["false_incidents"] + res["lookalike"]["incidents"],
            "fps": 1000.0 / mean_ms}


def run(scenes: int = 150, map_frames: int = 120) -> str:
    from vision.detector import OnnxDetector, operating_point

    with tempfile.TemporaryDirectory() as tmp:
        old = _old_model(Path(tmp))
        new = Path(os.environ.get("SKYGRID_VISION_MODEL_NEW", MODEL))
        models = {"old (synthetic-only)": old, "new": new} if old else {"new": new}
        data = list(_scenes(scenes))
        real = _real_images()
        passes = _passes()
        area = sum(a for *_, a in data)
        real_area = sum(a for _, a in real if a)
        rows, per_image, checks = [], {}, {}
        real_per_image: dict[str, float | None] = {}
        for label, path in models.items():
            op = operating_point(path)
            det = OnnxDetector(path, threads=2, **op)
            t0 = time.perf_counter()
            false = [det.detect(r.image) for _, r, _ in data]
            ms = (time.perf_counter() - t0) / len(data) * 1000
            n = sum(len(f) for f in false)
            by_class: dict[str, int] = {}
            for f in false:
                for d in f:
                    by_class[d.class_name] = by_class.get(d.class_name, 0) + 1
            any_share = sum(1 for f in false if f) / len(false)
            real_dets = [len(det.detect(im)) for im, _ in real]
            real_n = sum(real_dets)
            real_km2 = sum(a for _, a in real if a)
            real_n_km2 = sum(n for n, (_, a) in zip(real_dets, real, strict=True) if a)
            real_any = sum(1 for n in real_dets if n) / len(real) if real else 0.0
            m = _map50(path, map_frames)
            st = _stage(OnnxDetector(path, threads=2, **op), passes)
            mb = path.stat().st_size / 1e6
            per_image[label] = n / len(data)
            real_per_image[label] = real_n / len(real) if real else None
            checks[label] = (m, st, mb)
            rows.append(f"| {label} | {n / len(data):.3f} | {n / area:.1f} | {any_share:.1%} | "
                        f"{', '.join(f'{k} {v}' for k, v in sorted(by_class.items())) or 'none'} | "
                        f"{(f'{real_n / len(real):.3f} ({real_any:.0%} of images)' if real else 'n/a')} | "
                        f"{(f'{real_n_km2 / real_km2:.0f}' if real_km2 else 'n/a')} | {m:.3f} | "
                        f"{st['ipe']:.2f} ({st['missed']} missed, {st['dup']} dup., {st['false']} false) | "
                        f"{mb:.1f} | {st['fps']:.1f} | {ms:.0f} |")
            print(rows[-1], flush=True)
    ratio = ""
    if len(per_image) == 2:
        o, nw = per_image["old (synthetic-only)"], per_image["new"]
        ratio = (f"\nFalse detections per image, old / new: **{o / nw:.1f}x** fewer (target >= {TARGET_RATIO:.0f}x)."
                 if nw > 0 else f"\nNew model: no false detection at all (old: {o:.3f} per image).")
        ro, rn = real_per_image["old (synthetic-only)"], real_per_image["new"]
        if ro is not None and rn is not None:
            ratio += (f"\nReal photos, false detections per image, old / new: **{ro / rn:.1f}x** fewer."
                      if rn > 0 else f"\nReal photos: the new model raised no detection (old: {ro:.3f} per image).")
        m, st, mb = checks["new"]
        met = {"mAP50 >= 0.95": m >= TARGET_MAP50, "incidents per event 1.00": st["ipe"] == 1.0 and not st["missed"],
               f"false per image >= {TARGET_RATIO:.0f}x fewer": nw == 0 or o / nw >= TARGET_RATIO,
               f"real photos >= {TARGET_RATIO:.0f}x fewer": ro is None or rn == 0 or ro / rn >= TARGET_RATIO,
               f"<= {TARGET_MB:.0f} MB": mb <= TARGET_MB, f"stage >= {TARGET_FPS:.0f} frames/s": st["fps"] >= TARGET_FPS}
        ratio += "\nNew model against the issue's targets: " + "; ".join(
            f"{k} {'met' if v else 'NOT met'}" for k, v in met.items()) + "."
    table = "\n".join(rows)
    real_what = os.environ.get("REALNEG_DIR") or (
        "the held-out share of bench/data/realneg: NEON orthophotos of forest, a road and dead trees resampled "
        "to 0.16 and 0.24 m/px, and a DJI frame of white birds on dirt; none is used in training")
    return f"""{SECTION}

{scenes} frames of the realistic renderer with nothing to find (seed {SEED}, no training split): cars/vans of
every roof colour, legal white/blue buildings, tree crowns, shrubs, long shadows, dirt tracks, flower beds,
water glare, steam and the old look-alikes; dusk/overcast/low sun, cloud shadows, haze, vignetting, motion blur,
JPEG; 40-150 m AGL, pitch -45...-90; {area:.2f} km² in view in all. Each model at its own operating point
(sidecar `operating_point`); every detection is false. Synthetic mAP50: `bench_vision_map`'s {map_frames}
held-out default-mix frames (seed {MAP_SEED}). Real photos: {len(real)} frames of real aerial negatives
({real_what}), {real_area:.3f} km²
where the ground sample distance is known. Incidents per planted event, false
incidents and frames/s: `bench_vision_pipeline`'s passes (80 and 120 m AGL, 16 events; its look-alike-only pass),
the whole stage (JPEG decode, detect, geolocate, track k=3 of n=5), the same frames fed to both models.

| model | false / image | false / km² | images with any | by class | real photos: false / image | real photos: false / km² | synthetic mAP50 | incidents per event (passes) | MB | stage frames/s | detect ms/frame |
|---|---|---|---|---|---|---|---|---|---|---|---|
{table}
{ratio}
"""


if __name__ == "__main__":
    out = run()
    print(out)
    from bench.sections import write_section

    write_section(out, heading=SECTION)
