"""The vision stage: frames -> detections -> ground positions -> incidents (-> dispatch).

:class:`VisionStage` validates and decodes each :class:`vision.contracts.Frame` (its
``image`` may be a BGR array or encoded JPEG/PNG bytes), runs the detector, geolocates the
boxes and feeds the tracker; confirmed or updated incidents are returned and, when a
reporter is attached, queued for dispatch (never blocking). A bad frame (corrupt or empty
bytes, wrong size for its camera, wrong dtype or channels, impossible pose) is reported as
a :class:`VisionWarning` and skipped; the stream goes on.

Threading: ``process`` may be called from several threads at once. Decode, detection and
geolocation run in parallel (ONNX Runtime sessions are thread-safe); the tracker and the
statistics take their own locks. Incident ids come from track numbers, which depend on the
order frames reach the tracker; with one thread a replay gives the same ids.

Also here: :func:`interpolate_pose` and :class:`FileFrameSource`, which georeference real
photos (files) by timestamp from a flight log.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from flight.records import Telemetry
from geo.camera import CameraModel
from geo.georef import CameraPose
from vision.contracts import Detection, Frame, Incident
from vision.geolocate import GeoLocator

log = logging.getLogger(__name__)


class BadFrame(ValueError):
    """A frame that cannot be analysed; ``kind`` is a short machine-readable reason."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class VisionWarning:
    """A skipped frame or a recoverable problem, for the operator's event log."""

    wall_time: float
    drone_id: str
    frame_id: int
    kind: str  # corrupt_image, empty_image, wrong_size, wrong_dtype, wrong_channels, bad_pose, detector_error
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"wall_time": self.wall_time, "drone_id": self.drone_id, "frame_id": self.frame_id,
                "kind": self.kind, "message": self.message}


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]: ...


class Reporter(Protocol):
    def submit(self, incident: Incident) -> None: ...


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
MIN_SIDE_PX = 32


def decode_image(data: Any) -> np.ndarray:
    """Encoded bytes (JPEG, PNG, ...) or an array -> BGR uint8 H x W x 3; :class:`BadFrame` otherwise."""
    if data is None:
        raise BadFrame("empty_image", "frame has no image")
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) == 0:
            raise BadFrame("empty_image", "image bytes are empty")
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise BadFrame("corrupt_image", f"cannot decode {len(data)} image bytes (corrupt or unknown format)")
        return img
    if not isinstance(data, np.ndarray):
        raise BadFrame("wrong_dtype", f"image must be a numpy array or encoded bytes, got {type(data).__name__}")
    if data.size == 0:
        raise BadFrame("empty_image", f"image array is empty (shape {data.shape})")
    if data.dtype != np.uint8:
        raise BadFrame("wrong_dtype", f"image dtype must be uint8, got {data.dtype}")
    if data.ndim == 2 or (data.ndim == 3 and data.shape[2] == 1):
        return cv2.cvtColor(data, cv2.COLOR_GRAY2BGR)
    if data.ndim == 3 and data.shape[2] == 3:
        return data
    if data.ndim == 3 and data.shape[2] == 4:
        return cv2.cvtColor(data, cv2.COLOR_BGRA2BGR)
    raise BadFrame("wrong_channels", f"image must be H x W, H x W x 3 or H x W x 4, got shape {data.shape}")


def check_geometry(image: np.ndarray, camera: CameraModel, pose: CameraPose) -> None:
    """The image must match its camera model and the pose must be physically possible."""
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE_PX:
        raise BadFrame("wrong_size", f"image {w}x{h} is too small (min side {MIN_SIDE_PX} px)")
    if (w, h) != (camera.image_width_px, camera.image_height_px):
        raise BadFrame("wrong_size", f"image is {w}x{h} but camera {camera.name!r} is "
                                     f"{camera.image_width_px}x{camera.image_height_px}")
    vals = (pose.lat, pose.lon, pose.alt_amsl_m, pose.ground_alt_m, pose.yaw_deg, pose.gimbal_pitch_deg)
    if not all(math.isfinite(v) for v in vals) or not (-90 <= pose.lat <= 90 and -180 <= pose.lon <= 180):
        raise BadFrame("bad_pose", f"pose has non-finite or out-of-range values: {pose}")
    if pose.height_m <= 0.5:
        raise BadFrame("bad_pose", f"camera is {pose.height_m:.1f} m above the ground; cannot geolocate")


# --------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------
@dataclass
class StageStats:
    """Per-frame timings (seconds) and counters; thread-safe. Keeps the last ``window`` frames."""

    window: int = 20000
    frames_ok: int = 0
    frames_skipped: int = 0
    detections: int = 0
    incidents_confirmed: int = 0
    incidents_updated: int = 0
    skipped_by_kind: dict[str, int] = field(default_factory=dict)
    _t: dict[str, deque] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **times: float) -> None:
        with self._lock:
            for k, v in times.items():
                self._t.setdefault(k, deque(maxlen=self.window)).append(v)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def skip(self, kind: str) -> None:
        with self._lock:
            self.frames_skipped += 1
            self.skipped_by_kind[kind] = self.skipped_by_kind.get(kind, 0) + 1

    def summary(self) -> dict[str, Any]:
        """Counters plus median/p10/p95/mean (milliseconds) of every timing."""
        with self._lock:
            out: dict[str, Any] = {
                "frames_ok": self.frames_ok, "frames_skipped": self.frames_skipped, "detections": self.detections,
                "incidents_confirmed": self.incidents_confirmed, "incidents_updated": self.incidents_updated,
                "skipped_by_kind": dict(self.skipped_by_kind),
            }
            for k, d in self._t.items():
                a = np.asarray(d, dtype=np.float64) * 1000.0
                out[f"{k}_ms"] = {"median": float(np.median(a)), "p10": float(np.percentile(a, 10)),
                                  "p95": float(np.percentile(a, 95)), "mean": float(a.mean()),
                                  "n": int(a.size)} if a.size else {}
            return out


# --------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------
class VisionStage:
    """Frames in, incidents out. See the module docstring.

    ``camera``: the default camera for frames whose ``camera`` is None (a Frame normally
    carries its own). ``tile``: when set, frames larger than ``tile`` px on a side use the
    detector's sliced inference. ``on_warning``: called with each :class:`VisionWarning`
    (also logged and kept in ``warnings``, the last ``max_warnings``).
    ``clock``: wall clock for latency (UNIX seconds).
    """

    def __init__(self, detector: Detector, tracker: Any, camera: CameraModel | None = None,
                 reporter: Reporter | None = None, geolocator: GeoLocator | None = None, tile: int | None = None,
                 tile_overlap: float = 0.2, on_warning: Callable[[VisionWarning], None] | None = None,
                 max_warnings: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self.detector, self.tracker, self.camera, self.reporter = detector, tracker, camera, reporter
        self.geolocator = geolocator or GeoLocator()
        self.tile, self.tile_overlap = tile, tile_overlap
        self.on_warning = on_warning
        self.warnings: deque[VisionWarning] = deque(maxlen=max_warnings)
        self.stats = StageStats()
        self.clock = clock

    def warn(self, frame: Frame | None, kind: str, message: str) -> None:
        w = VisionWarning(self.clock(), getattr(frame, "drone_id", "?"), int(getattr(frame, "frame_id", -1) or 0), kind, message)
        self.warnings.append(w)
        log.warning("vision: frame %s from %s skipped (%s): %s", w.frame_id, w.drone_id, kind, message)
        if self.on_warning is not None:
            try:
                self.on_warning(w)
            except Exception:  # a broken listener must not stop the stream
                log.exception("on_warning listener failed")

    def _detect(self, image: np.ndarray) -> list[Detection]:
        if self.tile and max(image.shape[:2]) > self.tile and hasattr(self.detector, "detect_tiled"):
            return self.detector.detect_tiled(image, tile=self.tile, overlap=self.tile_overlap)
        return self.detector.detect(image)

    def process(self, frame: Frame) -> list[Incident]:
        """Analyse one frame; returns incidents newly confirmed or updated by it (maybe empty).

        Never raises for a bad frame: it is reported through :meth:`warn` and skipped.
        """
        t0 = time.perf_counter()
        camera = frame.camera or self.camera
        try:
            if camera is None:
                raise BadFrame("bad_pose", "frame has no camera model and the stage has no default camera")
            image = decode_image(frame.image)
            check_geometry(image, camera, frame.pose)
        except BadFrame as e:
            self.stats.skip(e.kind)
            self.warn(frame, e.kind, str(e))
            return []
        t1 = time.perf_counter()
        try:
            dets = self._detect(image)
        except Exception as e:  # model/runtime failure on this frame only
            self.stats.skip("detector_error")
            self.warn(frame, "detector_error", f"{type(e).__name__}: {e}")
            return []
        t2 = time.perf_counter()
        decoded = frame if (frame.image is image and frame.camera is camera) else replace(frame, image=image, camera=camera)
        geo = self.geolocator.geolocate(dets, decoded)
        t3 = time.perf_counter()
        incidents = self.tracker.update(decoded, geo)
        t4 = time.perf_counter()
        self.stats.add(decode=t1 - t0, detect=t2 - t1, geolocate=t3 - t2, associate=t4 - t3, total=t4 - t0)
        self.stats.count("frames_ok")
        self.stats.count("detections", len(dets))
        now = self.clock()
        for inc in incidents:
            status = inc.extra.get("status")
            if status == "confirmed":
                self.stats.count("incidents_confirmed")
                if frame.wall_time > 0:  # this frame's capture -> incident out of the stage
                    self.stats.add(frame_to_incident=max(0.0, now - frame.wall_time),
                                   first_sighting_to_incident=max(0.0, now - inc.first_frame_wall_time))
            else:
                self.stats.count("incidents_updated")
            if self.reporter is not None:
                self.reporter.submit(inc)
        return incidents


    def finish(self) -> list[Incident]:
        """End of the stream: re-emit incidents whose latest sightings were not reported yet
        (and submit them to the reporter). Call once when a patrol or photo batch ends."""
        incidents = self.tracker.flush_updates() if hasattr(self.tracker, "flush_updates") else []
        for inc in incidents:
            self.stats.count("incidents_updated")
            if self.reporter is not None:
                self.reporter.submit(inc)
        return incidents


# --------------------------------------------------------------------------------------
# real frames: image files + flight log
# --------------------------------------------------------------------------------------
def _unwrap_yaw(a: float, b: float, f: float) -> float:
    d = (b - a + 180.0) % 360.0 - 180.0
    return (a + f * d) % 360.0


def take_off_elevation(records: Sequence[Telemetry]) -> float:
    """Ground elevation (m AMSL) at take-off: median of abs_alt - rel_alt over the log."""
    if not records:
        raise ValueError("flight log has no telemetry records")
    return float(np.median([r.abs_alt_m - r.rel_alt_m for r in records]))


def interpolate_pose(records: Sequence[Telemetry], wall_time: float, ground_alt_m: float | None = None,
                     gimbal_pitch_deg: float = -90.0, gimbal_yaw_deg: float = 0.0, max_gap_s: float = 2.0) -> CameraPose | None:
    """Camera pose at ``wall_time`` (UNIX s) by linear interpolation of telemetry sorted by time.

    Altitude comes from ``rel_alt_m`` over ``ground_alt_m`` (default: the take-off
    elevation), which keeps barometric offsets out of the height above ground. None when
    the time is outside the log or in a gap longer than ``max_gap_s``.
    """
    if not records:
        return None
    times = [r.wall_time for r in records]
    g = take_off_elevation(records) if ground_alt_m is None else ground_alt_m
    i = int(np.searchsorted(times, wall_time))
    if i == 0:
        if times[0] - wall_time > max_gap_s:
            return None
        a = b = records[0]
        f = 0.0
    elif i >= len(records):
        if wall_time - times[-1] > max_gap_s:
            return None
        a = b = records[-1]
        f = 0.0
    else:
        a, b = records[i - 1], records[i]
        span = b.wall_time - a.wall_time
        if span > max_gap_s and min(wall_time - a.wall_time, b.wall_time - wall_time) > max_gap_s / 2:
            return None
        f = 0.0 if span <= 0 else (wall_time - a.wall_time) / span

    def lerp(x: float, y: float) -> float:
        return x + f * (y - x)

    return CameraPose(lat=lerp(a.lat, b.lat), lon=lerp(a.lon, b.lon), alt_amsl_m=g + lerp(a.rel_alt_m, b.rel_alt_m),
                      ground_alt_m=g, yaw_deg=_unwrap_yaw(a.yaw_deg, b.yaw_deg, f), pitch_deg=lerp(a.pitch_deg, b.pitch_deg),
                      roll_deg=lerp(a.roll_deg, b.roll_deg), gimbal_pitch_deg=gimbal_pitch_deg, gimbal_yaw_deg=gimbal_yaw_deg)


def camera_for_image(width: int, height: int, camera: CameraModel) -> CameraModel:
    """``camera`` at this image size (same optics, rescaled); ValueError when the aspect differs."""
    if (width, height) == (camera.image_width_px, camera.image_height_px):
        return camera
    if abs(width / height - camera.image_width_px / camera.image_height_px) > 0.01 * width / height:
        raise ValueError(f"image {width}x{height} does not have camera {camera.name!r}'s aspect "
                         f"({camera.image_width_px}x{camera.image_height_px})")
    return replace(camera.scaled(width), image_height_px=height)


def exif_time(path: Path, utc_offset_h: float = 8.0) -> float | None:
    """EXIF DateTimeOriginal (+ OffsetTimeOriginal) as UNIX seconds, or None.

    Cameras write local time; without an offset tag ``utc_offset_h`` is assumed (China
    Standard Time, UTC+8). Uses Pillow when it is installed; otherwise None.
    """
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(path) as im:
            exif = im.getexif()
            sub = exif.get_ifd(0x8769)
            raw = sub.get(0x9003) or exif.get(0x0132)
            off = sub.get(0x9011)
            sub_s = sub.get(0x9291)
    except Exception:  # unreadable or no EXIF
        return None
    if not raw:
        return None
    try:
        dt = datetime.strptime(str(raw).strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if off:
        sign = -1 if str(off).startswith("-") else 1
        hh, mm = str(off).strip("+- \x00").split(":")
        tz = timezone(sign * timedelta(hours=int(hh), minutes=int(mm)))
    else:
        tz = timezone(timedelta(hours=utc_offset_h))
    t = dt.replace(tzinfo=tz).timestamp()
    if sub_s:
        try:
            t += float("0." + str(sub_s).strip("\x00 "))
        except ValueError:
            pass
    return t


VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".ts"}


class FileFrameSource:
    """Image files georeferenced from a flight log, as :class:`Frame` s for :class:`VisionStage`.

    Each file's capture time (UNIX s) comes from ``times`` (file name -> time, e.g. from a
    CSV), else EXIF DateTimeOriginal, else the file's modification time; ``time_offset_s``
    is added (camera clock minus flight-controller clock correction). Files without a pose
    (outside the log) or unreadable are reported to ``on_skip(path, reason)`` and skipped.
    Frames carry the encoded bytes, so the stage's decode timing and bad-image handling apply.
    Without a flight log, ``default_pose`` is used for every file (or the file is skipped).
    Videos (.mp4, .mov, .avi, .mkv, .ts) give a frame every ``video_step_s`` seconds.
    """

    def __init__(self, paths: Sequence[str | Path], camera: CameraModel, telemetry: Sequence[Telemetry] | None = None,
                 times: dict[str, float] | None = None, time_offset_s: float = 0.0, gimbal_pitch_deg: float = -90.0,
                 ground_alt_m: float | None = None, default_pose: CameraPose | None = None, drone_id: str = "d0",
                 on_skip: Callable[[Path, str], None] | None = None, video_step_s: float = 1.0) -> None:
        self.paths = [Path(p) for p in paths]
        self.video_step_s = float(video_step_s)
        self.camera = camera
        self.telemetry = sorted(telemetry or [], key=lambda r: r.wall_time)
        self.times = dict(times or {})
        self.time_offset_s = time_offset_s
        self.gimbal_pitch_deg = gimbal_pitch_deg
        self.ground_alt_m = ground_alt_m
        self.default_pose = default_pose
        self.drone_id = drone_id
        self.on_skip = on_skip or (lambda p, r: log.warning("%s skipped: %s", p, r))

    def capture_time(self, path: Path) -> float:
        if path.name in self.times:
            return float(self.times[path.name])
        if str(path) in self.times:
            return float(self.times[str(path)])
        t = exif_time(path)
        return t if t is not None else path.stat().st_mtime

    def _pose(self, p: Path, t: float) -> tuple[CameraPose, str | None] | None:
        """Pose and sortie id at capture time ``t``; None (reported) when there is none."""
        if self.telemetry:
            pose = interpolate_pose(self.telemetry, t, self.ground_alt_m, self.gimbal_pitch_deg)
            if pose is None:
                when = datetime.fromtimestamp(t, UTC).isoformat()
                self.on_skip(p, f"capture time {when} is outside the flight log")
                return None
            j = int(np.argmin([abs(r.wall_time - t) for r in self.telemetry]))
            return pose, self.telemetry[j].sortie_id
        if self.default_pose is not None:
            return self.default_pose, None
        self.on_skip(p, "no flight log and no default pose")
        return None

    def __iter__(self) -> Iterator[Frame]:
        fid = 0
        for p in self.paths:
            if p.suffix.lower() in VIDEO_SUFFIXES:
                for f in self._video(p, fid):
                    fid = f.frame_id + 1
                    yield f
                continue
            try:
                data = p.read_bytes()
            except OSError as e:
                self.on_skip(p, f"cannot read: {e.strerror}")
                continue
            size = image_size(data)
            if size is None:  # not JPEG/PNG header: let the stage report it as corrupt
                camera = self.camera
            else:
                try:
                    camera = camera_for_image(size[0], size[1], self.camera)
                except ValueError as e:
                    self.on_skip(p, str(e))
                    continue
            t = self.capture_time(p) + self.time_offset_s
            got = self._pose(p, t)
            if got is not None:
                yield Frame(image=data, camera=camera, pose=got[0], drone_id=self.drone_id, frame_id=fid, time_s=t,
                            wall_time=t, sortie_id=got[1])
            fid += 1

    def _video(self, p: Path, first_id: int) -> Iterator[Frame]:
        """Frames of a video every ``video_step_s`` seconds. The video's start time is its
        ``times`` entry, else its modification time minus its duration (cameras write the
        file when recording stops)."""
        cap = cv2.VideoCapture(str(p))
        if not cap.isOpened():
            self.on_skip(p, "cannot open video")
            return
        try:
            fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
            n = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
            if p.name in self.times or str(p) in self.times:
                start = self.capture_time(p)
            else:
                start = p.stat().st_mtime - n / fps
            start += self.time_offset_s
            fid, k, next_t = first_id, 0, 0.0
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                rel = k / fps
                k += 1
                if rel + 1e-6 < next_t:
                    continue
                next_t = rel + self.video_step_s
                try:
                    camera = camera_for_image(img.shape[1], img.shape[0], self.camera)
                except ValueError as e:
                    self.on_skip(p, str(e))
                    return
                got = self._pose(p, start + rel)
                if got is not None:
                    yield Frame(image=img, camera=camera, pose=got[0], drone_id=self.drone_id, frame_id=fid,
                                time_s=start + rel, wall_time=start + rel, sortie_id=got[1])
                fid += 1
        finally:
            cap.release()


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG or PNG header without decoding; None for other data."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        seg = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h = int.from_bytes(data[i + 5:i + 7], "big")
            w = int.from_bytes(data[i + 7:i + 9], "big")
            return w, h
        i += 2 + seg
    return None
