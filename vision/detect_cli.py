"""skygrid vision detect IMAGES...: run the patrol detector on photos or videos.

Without a flight log it prints the boxes found in each image (videos: one frame every
--video-step seconds). With --flight-log every photo or video frame is georeferenced by its
capture time (EXIF DateTimeOriginal, or a --times CSV, or the file time) and the whole
vision stage runs: geolocation, association over frames, incidents, which
--report-to URL --token T posts to dispatch. --json prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "skygrid-yolo.onnx"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".ts"}  # as vision.pipeline.VIDEO_SUFFIXES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``skygrid vision detect``."""
    parser.add_argument("images", nargs="+", type=Path, help="image files (JPEG/PNG), videos, or folders of them")
    parser.add_argument("--video-step", type=float, default=1.0, help="seconds between analysed video frames (default %(default)s)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ONNX model (default: the shipped %(default)s)")
    parser.add_argument("--conf", type=float, default=0.25, help="confidence threshold for all classes (default %(default)s)")
    parser.add_argument("--class-conf", action="append", default=[], metavar="CLASS=CONF",
                        help="per-class threshold, repeatable, e.g. --class-conf straw_burning=0.4")
    parser.add_argument("--iou", type=float, default=0.5, help="NMS IoU threshold (default %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default %(default)s)")
    parser.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu",
                        help="cpu: ONNX Runtime (default); gpu/auto: CUDA via onnxruntime-gpu or ultralytics")
    parser.add_argument("--tile", type=int, default=None, metavar="PX",
                        help="sliced inference with PX-pixel tiles for large photos (e.g. 640)")
    parser.add_argument("--flight-log", type=Path, default=None,
                        help="flight log (JSON lines from the flight stage) to georeference the photos")
    parser.add_argument("--times", type=Path, default=None, help="CSV 'file,unix_time' of capture times (overrides EXIF)")
    parser.add_argument("--time-offset", type=float, default=0.0, help="seconds added to capture times (camera clock fix)")
    parser.add_argument("--camera", default="m3e", help="camera preset (geo.camera.PRESETS; default %(default)s)")
    parser.add_argument("--gimbal-pitch", type=float, default=-90.0, help="gimbal pitch in degrees (-90 = nadir)")
    parser.add_argument("--dem", type=Path, default=None, help="GeoTIFF DEM for ground height (default: flat at take-off)")
    parser.add_argument("--k", type=int, default=2, help="confirm an incident after K sightings ... (default %(default)s)")
    parser.add_argument("--n", type=int, default=3, help="... within N consecutive photos (default %(default)s)")
    parser.add_argument("--patrol-id", default=None, help="patrol id for stable incident ids (default: the flight log's name and content hash)")
    parser.add_argument("--drone-id", default="d0", help="drone id reported with incidents (default %(default)s)")
    parser.add_argument("--report-to", default=None, metavar="URL", help="dispatch base URL to POST incidents to")
    parser.add_argument("--token", default=None, help="bearer token (operator) for --report-to")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of tables")


def _expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES))
        else:
            out.append(p)
    return out


def _class_conf(items: list[str]) -> dict[str, float]:
    out = {}
    for it in items:
        name, _, val = it.partition("=")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            raise SystemExit(f"--class-conf {it!r}: expected CLASS=NUMBER") from None
    return out


def _read_times(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.reader(f), 1):
            if not row or row[0].startswith("#") or row[0].strip().lower() == "file":
                continue
            try:
                out[Path(row[0].strip()).name] = float(row[1])
            except (IndexError, ValueError):
                raise SystemExit(f"{path}: line {i}: expected 'file,unix_time', got {row!r}") from None
    return out


def run(args: argparse.Namespace) -> int:
    """Run detection (and, with a flight log, the full vision stage). Returns the exit code."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from vision.detector import create_detector

    console = Console(stderr=True)
    out = Console()
    if args.report_to and not args.token:
        console.print("[red]--report-to needs --token[/red]")
        return 2
    images = _expand(args.images)
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        console.print(f"[red]image files not found: {', '.join(missing)}[/red]")
        return 2
    if not images:
        console.print("[red]no images given[/red]")
        return 2
    try:
        detector = create_detector(args.model, device=args.device, threads=args.threads, conf=args.conf,
                                   class_conf=_class_conf(args.class_conf) or None, iou=args.iou)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        console.print(f"[red]{e}[/red]")
        return 2
    if args.flight_log is None:
        return _detect_only(args, detector, images, out, console, Table, Progress)
    return _georeferenced(args, detector, images, out, console, Progress)


def _frames_of(path: Path, step_s: float):
    """(label, BGR image or None) for a photo, or for a video's frames every ``step_s`` seconds."""
    import cv2

    if path.suffix.lower() not in VIDEO_SUFFIXES:
        yield str(path), cv2.imread(str(path), cv2.IMREAD_COLOR)
        return
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        yield str(path), None
        return
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    k, next_t = 0, 0.0
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                return
            t = k / fps
            k += 1
            if t + 1e-6 >= next_t:
                next_t = t + step_s
                yield f"{path}#t={t:.2f}", img
    finally:
        cap.release()


def _detect_only(args, detector, images, out, console, Table, Progress) -> int:
    bad = 0
    rows: list[tuple[str, Any]] = []
    with Progress(console=console, transient=True) as prog:
        task = prog.add_task("detecting", total=len(images))
        for p in images:
            for label, img in _frames_of(p, args.video_step):
                if img is None:
                    console.print(f"[yellow]{p}: cannot decode, skipped[/yellow]")
                    bad += 1
                    continue
                tiled = args.tile and max(img.shape[:2]) > args.tile and hasattr(detector, "detect_tiled")
                dets = detector.detect_tiled(img, tile=args.tile) if tiled else detector.detect(img)
                rows.append((label, dets))
            prog.advance(task)
    if args.json:
        for path, dets in rows:
            print(json.dumps({"image": path, "detections": [
                {"class_name": d.class_name, "confidence": round(d.confidence, 4), "box": [round(v, 1) for v in d.box]}
                for d in dets]}, ensure_ascii=False))
    else:
        t = Table(title=f"detections ({detector!r})")
        for c in ("image", "class", "conf", "box x1,y1,x2,y2"):
            t.add_column(c)
        for path, dets in rows:
            if not dets:
                t.add_row(path, "-", "", "")
            for d in dets:
                t.add_row(path, d.class_name, f"{d.confidence:.2f}", ", ".join(f"{v:.0f}" for v in d.box))
        out.print(t)
    return 1 if bad == len(images) else 0


def _georeferenced(args, detector, images, out, console, Progress) -> int:
    from flight.flightlog import read_flight_log
    from geo.camera import get_camera
    from vision.dem import Dem, DemError
    from vision.geolocate import GeoLocator
    from vision.pipeline import FileFrameSource, VisionStage
    from vision.reporter import DispatchClient
    from vision.tracker import IncidentTracker, patrol_id_for_log

    try:
        camera = get_camera(args.camera)
        telemetry = read_flight_log(args.flight_log)
        dem = Dem.read(args.dem) if args.dem else None
    except (KeyError, OSError, ValueError, DemError) as e:
        console.print(f"[red]{e}[/red]")
        return 2
    if not telemetry:
        console.print(f"[red]{args.flight_log}: no telemetry records[/red]")
        return 2
    skipped: list[tuple[str, str]] = []
    source = FileFrameSource(images, camera, telemetry, times=_read_times(args.times) if args.times else None,
                             time_offset_s=args.time_offset, gimbal_pitch_deg=args.gimbal_pitch, drone_id=args.drone_id,
                             on_skip=lambda p, r: skipped.append((str(p), r)), video_step_s=args.video_step)
    reporter = DispatchClient(args.report_to, args.token) if args.report_to else None
    tracker = IncidentTracker(patrol_id=args.patrol_id or patrol_id_for_log(args.flight_log), k=args.k, n=args.n)
    stage = VisionStage(detector, tracker, camera, reporter=reporter, geolocator=GeoLocator(dem=dem), tile=args.tile,
                        on_warning=lambda w: skipped.append((f"frame {w.frame_id}", f"{w.kind}: {w.message}")))
    with Progress(console=console, transient=True) as prog:
        task = prog.add_task("analysing", total=len(images))
        for frame in source:
            stage.process(frame)
            prog.update(task, completed=frame.frame_id + 1)
    stage.finish()
    if reporter is not None:
        reporter.close(timeout_s=60)
    for path, why in skipped:
        console.print(f"[yellow]{path}: skipped: {why}[/yellow]")
    incidents = tracker.incidents()
    if args.json:
        for inc in incidents:
            d = {k: getattr(inc, k) for k in ("id", "class_name", "lat", "lon", "error_m", "confidence", "frames_seen", "drone_id")}
            if reporter is not None:
                d["dispatch"] = reporter.results.get(inc.id) or {"error": reporter.failures.get(inc.id)}
            print(json.dumps(d, ensure_ascii=False))
    else:
        from rich.table import Table

        t = Table(title=f"incidents from {len(images)} photos")
        for c in ("id", "class", "lat", "lon", "±m", "conf", "frames"):
            t.add_column(c)
        for inc in incidents:
            t.add_row(inc.id[:8], inc.class_name, f"{inc.lat:.6f}", f"{inc.lon:.6f}", f"{inc.error_m:.1f}",
                      f"{inc.confidence:.2f}", str(inc.frames_seen))
        out.print(t)
        s = stage.stats.summary()
        console.print(f"photos analysed {s['frames_ok']}, skipped {len(skipped)}")
    if reporter is not None and reporter.failures:
        console.print(f"[red]{len(reporter.failures)} incidents could not be reported[/red]")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m vision.detect_cli``)."""
    p = argparse.ArgumentParser(prog="skygrid vision detect", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
