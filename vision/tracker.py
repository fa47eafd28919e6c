"""Incidents, not boxes: associate geolocated detections over frames and drones.

A *track* gathers detections of one class whose ground positions fall within a gate of
each other. The gate is ``gate_sigma`` times the combined 1-sigma errors of the track and
the detection, clipped to [``min_gate_m``, ``max_gate_m``] (objects are metres wide and
their anchor pixel moves a little between views). A track is *confirmed* as an incident
once one drone has seen it in ``k`` of ``n`` consecutive frames of its stream; tentative
tracks that cannot reach that any more are dropped (a one-frame false positive never
becomes an incident). Confirmed incidents live for the whole patrol: later sightings,
from any drone, update them instead of creating new ones, and a tentative track that
confirms within the gate of an existing incident of its class is merged into it.

Position: weighted mean of the sightings with weight confidence / error^2 (so sharp,
confident, near-nadir views count most). Error: the sightings of one pass share their
systematic errors (GNSS bias, heading, ground height), so averaging is not allowed to shrink
the estimate below 60 % of the best single sighting; the spread of the sightings about the
mean is a floor too. Best evidence: highest confidence x centrality (boxes near the image
centre are least distorted; boxes touching the frame edge are probably cut off).

Incident ids are ``uuid5(NAMESPACE, "<patrol_id>/track/<n>")``: stable for a patrol and
used as the idempotency key (``external_id``) at dispatch. All methods are thread-safe.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from geo.projection import LocalFrame
from vision.contracts import Frame, GeoDetection, Incident

#: uuid5 namespace of SkyGrid incident ids.
INCIDENT_NAMESPACE = uuid.UUID("6f1c2a5e-8d4b-5c1e-9a7f-2b3c4d5e6f70")


def incident_id(patrol_id: str, track_no: int) -> str:
    """The stable id of a patrol's ``track_no``-th track (dispatch's idempotency key)."""
    return str(uuid.uuid5(INCIDENT_NAMESPACE, f"{patrol_id}/track/{track_no}"))


def patrol_id_for_log(path: Path) -> str:
    """A patrol id for a flight log: its file name plus the first 16 hex digits of the
    SHA-256 of its content. Re-analysing the same log gives the same incident ids (dispatch
    answers the re-send 200), while another day's log under a reused name (``flight.csv``)
    gets new ones, so its incidents are not mistaken for re-sends of the old."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{Path(path).stem}-{digest.hexdigest()[:16]}"


def centrality(box: tuple[float, float, float, float], width: int, height: int) -> float:
    """1 at the image centre falling to 0.5 in the corners; x0.7 when the box touches an edge."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    r = math.hypot(cx - width / 2, cy - height / 2) / math.hypot(width / 2, height / 2)
    score = 1.0 - 0.5 * min(1.0, r)
    if box[0] <= 1 or box[1] <= 1 or box[2] >= width - 1 or box[3] >= height - 1:
        score *= 0.7
    return score


def evidence_jpeg(image: np.ndarray, box: tuple[float, float, float, float], label: str, quality: int = 85) -> bytes:
    """The frame as JPEG with the box drawn (red, 2 px) and its label: what a dispatcher sees."""
    img = image.copy()
    x1, y1, x2, y2 = (round(v) for v in box)
    thick = max(2, round(max(img.shape[:2]) / 320))
    cv2.rectangle(img, (x1, y1), (x2, y2), (0, 0, 255), thick)
    scale = max(0.4, max(img.shape[:2]) / 1400)
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    ty = y1 - 4 if y1 - th - base - 4 > 0 else y2 + th + 4
    cv2.rectangle(img, (x1, ty - th - base), (x1 + tw + 4, ty + base // 2), (0, 0, 255), -1)
    cv2.putText(img, label, (x1 + 2, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - cv2 encodes any uint8 BGR image
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


@dataclass
class _Track:
    no: int
    class_name: str
    hits: list[tuple[str, tuple[float, int]]] = field(default_factory=list)  # (drone id, frame key)
    sw: float = 0.0  # sum of weights
    swn: float = 0.0
    swe: float = 0.0
    obs: list[tuple[float, float, float, float]] = field(default_factory=list)  # north, east, error, weight
    conf_max: float = 0.0
    best_score: float = -1.0
    best_image: np.ndarray | None = None
    best_box: tuple[float, float, float, float] | None = None
    best_frame_id: int = 0
    best_drone: str = ""
    first: GeoDetection | None = None
    first_sortie: str | None = None
    last: GeoDetection | None = None
    confirmed: bool = False
    evidence_dirty: bool = True
    jpeg: bytes | None = None
    emitted_ne: tuple[float, float] | None = None
    emitted_wall: float = 0.0
    emitted_frames: int = 0
    confirm_wall: float = 0.0
    last_hit_mono: float = 0.0  # time.monotonic() of the last sighting (for pruning)

    @property
    def ne(self) -> tuple[float, float]:
        return self.swn / self.sw, self.swe / self.sw

    @property
    def model_error_m(self) -> float:
        """Error from the sightings' own estimates (used for gating: a gate must not grow
        because a track has drifted, or it would chain along a row of false positives)."""
        errs = [o[2] for o in self.obs]
        combined = 1.0 / math.sqrt(sum(1.0 / max(s, 1e-3) ** 2 for s in errs))
        return max(combined, 0.6 * min(errs))

    @property
    def error_m(self) -> float:
        """Reported error: the model error, or the sightings' weighted spread if larger."""
        n, e = self.ne
        spread = math.sqrt(sum(o[3] * ((o[0] - n) ** 2 + (o[1] - e) ** 2) for o in self.obs) / self.sw)
        return max(self.model_error_m, spread)


class IncidentTracker:
    """Turns per-frame :class:`GeoDetection` lists into confirmed :class:`Incident` records.

    ``k`` of ``n``: confirmation rule (frames of one drone's stream). ``gate_sigma``,
    ``min_gate_m``, ``max_gate_m``: association gate (see module doc). ``min_move_m``
    and ``update_interval_s``: when an already reported incident is re-emitted (moved,
    better evidence, or more sightings after that many seconds). ``class_groups``: optional
    sets of class names that may associate with each other (e.g. both fire classes), the
    incident taking the class with the highest summed confidence; default strict per class.
    ``reorder_slack``: tentative tracks are kept this many frames longer than k-of-n needs,
    so frames that worker threads finish slightly out of order still count; and at least
    ``stale_after_s`` seconds (wall clock), so a worker thread that stalls behind the others
    cannot make a real event lose its first sightings. ``confirm_conf``: hysteresis on
    confidence: sightings down to the detector's threshold extend a track, but it is only
    confirmed once one sighting reached this confidence (weak, repeated look-alike
    detections, e.g. a grey roof at 0.3, stay tentative; measured on unseen passes, every
    real event peaked above 0.5).
    """

    MAX_FRAMES = 2000  # frame keys kept per drone (k-of-n only looks a few frames back)

    def __init__(self, patrol_id: str, k: int = 3, n: int = 5, gate_sigma: float = 3.0, min_gate_m: float = 8.0,
                 max_gate_m: float = 40.0, min_move_m: float = 1.0, update_interval_s: float = 5.0,
                 jpeg_quality: int = 85, class_groups: list[set[str]] | None = None, reorder_slack: int = 4,
                 stale_after_s: float = 2.0, confirm_conf: float = 0.45) -> None:
        if not 1 <= k <= n:
            raise ValueError(f"need 1 <= k <= n, got k={k} n={n}")
        self.patrol_id = patrol_id
        self.k, self.n = int(k), int(n)
        self.gate_sigma, self.min_gate_m, self.max_gate_m = gate_sigma, min_gate_m, max_gate_m
        self.min_move_m, self.update_interval_s = min_move_m, update_interval_s
        self.jpeg_quality = jpeg_quality
        self.reorder_slack = int(reorder_slack)
        self.stale_after_s = float(stale_after_s)
        self.confirm_conf = float(confirm_conf)
        self._group: dict[str, str] = {}
        for i, g in enumerate(class_groups or []):
            for c in g:
                self._group[c] = f"group{i}"
        self._lock = threading.Lock()
        self._frames: dict[str, list[tuple[float, int]]] = {}  # per drone: sorted (time_s, frame_id)
        self._tracks: list[_Track] = []
        self._next_no = 1
        self._local: LocalFrame | None = None
        self._class_conf: dict[int, dict[str, float]] = {}

    # ---- helpers --------------------------------------------------------------------
    def _key(self, class_name: str) -> str:
        return self._group.get(class_name, class_name)

    def _to_ne(self, lat: float, lon: float) -> tuple[float, float]:
        if self._local is None:
            self._local = LocalFrame(lat, lon)
        e, n = self._local.to_local(lon, lat)
        return float(n), float(e)

    def _gate(self, t: _Track, err: float) -> float:
        return min(self.max_gate_m, max(self.min_gate_m, self.gate_sigma * math.hypot(t.model_error_m, err)))

    def _can_confirm(self, t: _Track) -> bool:
        """k hits of one drone within a window of at most n of that drone's frames.

        Frames are ordered by (time_s, frame_id), not by arrival, so frames analysed by
        several threads (slightly out of order) count the same as in a single thread.
        """
        if t.conf_max < self.confirm_conf:
            return False
        by_drone: dict[str, list[tuple[float, int]]] = {}
        for d, key in t.hits:
            by_drone.setdefault(d, []).append(key)
        for d, keys in by_drone.items():
            keys = sorted(set(keys))
            frames = self._frames.get(d, [])
            for i in range(len(keys) - self.k + 1):
                span = bisect.bisect_right(frames, keys[i + self.k - 1]) - bisect.bisect_left(frames, keys[i])
                if span <= self.n:
                    return True
        return False

    def _stale(self, t: _Track) -> bool:
        """A tentative track none of whose drones can reach k hits within n frames any more."""
        last: dict[str, tuple[float, int]] = {}
        for d, key in t.hits:
            last[d] = max(last.get(d, key), key)
        if time.monotonic() - t.last_hit_mono < self.stale_after_s:
            return False
        for d, key in last.items():
            frames = self._frames.get(d, [])
            if len(frames) - bisect.bisect_right(frames, key) < self.n - 1 + self.reorder_slack:
                return False
        return True

    # ---- main entry -----------------------------------------------------------------
    def update(self, frame: Frame, detections: list[GeoDetection]) -> list[Incident]:
        """Feed one frame's geolocated detections (also when empty: frames count for k-of-n).

        Returns incidents confirmed by this frame and reported incidents that changed
        materially (``extra["status"]`` is "confirmed" or "updated").
        """
        with self._lock:
            seq = (float(frame.time_s), int(frame.frame_id))
            frames = self._frames.setdefault(frame.drone_id, [])
            bisect.insort(frames, seq)
            if len(frames) > 4 * self.MAX_FRAMES:
                del frames[: -self.MAX_FRAMES]
            h, w = frame.image.shape[:2]
            touched: list[_Track] = []
            pts = [(self._to_ne(g.lat, g.lon), g) for g in detections]
            # candidate pairs (distance, det index, track) for greedy nearest association
            pairs = []
            for i, ((n, e), g) in enumerate(pts):
                key = self._key(g.detection.class_name)
                for t in self._tracks:
                    if self._key(t.class_name) != key:
                        continue
                    tn, te = t.ne
                    d = math.hypot(n - tn, e - te)
                    if d <= self._gate(t, g.error_m):
                        pairs.append((d, i, t))
            pairs.sort(key=lambda p: (p[0], not p[2].confirmed, p[2].no))
            used_det: set[int] = set()
            used_track: set[int] = set()
            for _d, i, t in pairs:
                if i in used_det or t.no in used_track:
                    continue
                used_det.add(i)
                used_track.add(t.no)
                self._add(t, pts[i][0], pts[i][1], frame, seq)
                touched.append(t)
            for i, (ne, g) in enumerate(pts):
                if i in used_det:
                    continue
                # a second box of the same class right next to one already used this frame is
                # a duplicate detection of the same thing, not a new event
                if any(t.no in used_track and self._key(t.class_name) == self._key(g.detection.class_name)
                       and math.hypot(ne[0] - t.ne[0], ne[1] - t.ne[1]) <= self._gate(t, g.error_m) for t in self._tracks):
                    continue
                t = _Track(no=self._next_no, class_name=g.detection.class_name)
                self._next_no += 1
                self._tracks.append(t)
                self._add(t, ne, g, frame, seq)
                used_track.add(t.no)
                touched.append(t)
            out: list[Incident] = []
            for t in touched:
                if t not in self._tracks:
                    continue
                if not t.confirmed:
                    if not self._can_confirm(t):
                        continue
                    target = self._merge_target(t)
                    if target is not None:
                        self._merge(target, t)
                        t = target
                    else:
                        t.confirmed = True
                        t.confirm_wall = frame.wall_time
                        out.append(self._emit(t, "confirmed"))
                        continue
                inc = self._maybe_update(t)
                if inc is not None:
                    out.append(inc)
            self._tracks = [t for t in self._tracks if t.confirmed or not self._stale(t)]
            return out

    def _add(self, t: _Track, ne: tuple[float, float], g: GeoDetection, frame: Frame, seq: tuple[float, int]) -> None:
        det = g.detection
        wgt = max(det.confidence, 1e-3) / max(g.error_m, 0.1) ** 2
        t.sw += wgt
        t.swn += wgt * ne[0]
        t.swe += wgt * ne[1]
        t.obs.append((ne[0], ne[1], g.error_m, wgt))
        t.hits.append((frame.drone_id, seq))
        t.last_hit_mono = time.monotonic()
        t.conf_max = max(t.conf_max, det.confidence)
        cc = self._class_conf.setdefault(t.no, {})
        cc[det.class_name] = cc.get(det.class_name, 0.0) + det.confidence
        t.class_name = max(cc, key=cc.get)
        if t.first is None:
            t.first, t.first_sortie = g, frame.sortie_id
        t.last = g
        h, w = frame.image.shape[:2]
        score = det.confidence * centrality(det.box, w, h)
        if score > t.best_score:
            t.best_score = score
            t.best_image = frame.image.copy()
            t.best_box = det.box
            t.best_frame_id = frame.frame_id
            t.best_drone = frame.drone_id
            t.evidence_dirty = True

    def _merge_target(self, t: _Track) -> _Track | None:
        best, best_d = None, float("inf")
        tn, te = t.ne
        for o in self._tracks:
            if o is t or not o.confirmed or self._key(o.class_name) != self._key(t.class_name):
                continue
            d = math.hypot(o.ne[0] - tn, o.ne[1] - te)
            if d <= self._gate(o, t.model_error_m) and d < best_d:
                best, best_d = o, d
        return best

    def _merge(self, into: _Track, t: _Track) -> None:
        into.sw += t.sw
        into.swn += t.swn
        into.swe += t.swe
        into.obs.extend(t.obs)
        into.hits.extend(t.hits)
        into.conf_max = max(into.conf_max, t.conf_max)
        cc = self._class_conf.setdefault(into.no, {})
        for c, v in self._class_conf.pop(t.no, {}).items():
            cc[c] = cc.get(c, 0.0) + v
        into.class_name = max(cc, key=cc.get)
        into.last = t.last
        if t.best_score > into.best_score:
            into.best_score, into.best_image, into.best_box = t.best_score, t.best_image, t.best_box
            into.best_frame_id, into.best_drone = t.best_frame_id, t.best_drone
            into.evidence_dirty = True
        self._tracks.remove(t)

    def _maybe_update(self, t: _Track) -> Incident | None:
        n, e = t.ne
        moved = math.hypot(n - t.emitted_ne[0], e - t.emitted_ne[1]) if t.emitted_ne else float("inf")
        wall = t.last.wall_time if t.last else 0.0
        frames = len(t.obs)
        if (t.evidence_dirty or moved >= max(self.min_move_m, 0.25 * t.error_m)
                or (frames > t.emitted_frames and wall - t.emitted_wall >= self.update_interval_s)):
            return self._emit(t, "updated")
        return None

    def _emit(self, t: _Track, status: str) -> Incident:
        if t.evidence_dirty and t.best_image is not None and t.best_box is not None:
            label = f"{t.class_name} {t.best_score:.2f}"
            t.jpeg = evidence_jpeg(t.best_image, t.best_box, label, self.jpeg_quality)
            t.evidence_dirty = False
        inc = self._build(t, status)
        t.emitted_ne = t.ne
        t.emitted_wall = t.last.wall_time if t.last else 0.0
        t.emitted_frames = len(t.obs)
        return inc

    def _build(self, t: _Track, status: str) -> Incident:
        n, e = t.ne
        assert self._local is not None and t.first is not None and t.last is not None
        lon, lat = self._local.to_wgs84(e, n)
        drones = sorted({d for d, _ in t.hits})
        return Incident(
            id=incident_id(self.patrol_id, t.no), class_name=t.class_name, lat=float(lat), lon=float(lon),
            error_m=round(t.error_m, 2), confidence=round(t.conf_max, 4), first_seen_s=t.first.time_s,
            last_seen_s=t.last.time_s, frames_seen=len(t.obs), drone_id=t.first.drone_id, sortie_id=t.first_sortie,
            evidence_jpeg=t.jpeg, evidence_box=t.best_box, first_frame_wall_time=t.first.wall_time,
            extra={"status": status, "track": t.no, "drones": drones, "best_frame_id": t.best_frame_id,
                   "best_drone": t.best_drone, "confirmed_wall_time": t.confirm_wall},
        )

    def flush_updates(self) -> list[Incident]:
        """Confirmed incidents with sightings not yet reported (end of a patrol or photo batch):
        emitted as "updated" so dispatch gets the final frames_seen, position and evidence."""
        with self._lock:
            out = []
            for t in self._tracks:
                if t.confirmed and (len(t.obs) != t.emitted_frames or t.evidence_dirty or t.emitted_ne != t.ne):
                    out.append(self._emit(t, "updated"))
            return out

    # ---- inspection -----------------------------------------------------------------
    def incidents(self) -> list[Incident]:
        """Current state of every confirmed incident (a snapshot; no evidence re-encoding)."""
        with self._lock:
            out = []
            for t in self._tracks:
                if t.confirmed:
                    out.append(self._build(t, "snapshot"))
            return out

    @property
    def tentative_count(self) -> int:
        with self._lock:
            return sum(1 for t in self._tracks if not t.confirmed)
