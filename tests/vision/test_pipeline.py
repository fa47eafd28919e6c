"""The vision stage: bad frames skipped and reported, one incident per event over a
simulated lawnmower pass, thread safety, and real photos georeferenced from a flight log."""

from __future__ import annotations

import queue
import threading

import cv2
import numpy as np
import pytest

from flight.records import Telemetry
from geo.camera import PRESETS
from geo.geodesy import distance_m
from geo.georef import CameraPose
from simulators.camera import World
from vision.contracts import Detection, Frame
from vision.geolocate import offset_to_wgs84
from vision.pipeline import FileFrameSource, VisionStage, image_size, interpolate_pose
from vision.simpass import OracleDetector, lawnmower_poses, plant_objects
from vision.tracker import IncidentTracker

CAM = PRESETS["m3e"].scaled(640)
LAT0, LON0, GROUND = 30.05, 120.55, 12.0
POSE = CameraPose(LAT0, LON0, GROUND + 80.0, GROUND)


class FixedDetector:
    def __init__(self, dets=()):
        self.dets = list(dets)
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        return list(self.dets)


def good_frame(i=0, **kw) -> Frame:
    return Frame(image=np.full((CAM.image_height_px, CAM.image_width_px, 3), 80, np.uint8), camera=CAM, pose=POSE,
                 frame_id=i, **kw)


def test_bad_frames_are_reported_and_skipped_without_stopping_the_stream():
    warnings = []
    det = FixedDetector([Detection("illegal_dumping", 2, 0.9, (300, 220, 340, 260))])
    stage = VisionStage(det, IncidentTracker("p", k=2, n=3), CAM, on_warning=warnings.append)
    ok_jpeg = cv2.imencode(".jpg", good_frame().image)[1].tobytes()
    bad = [
        good_frame(1, drone_id="d1").__class__(image=b"\xff\xd8garbage", camera=CAM, pose=POSE, frame_id=1),
        Frame(image=b"", camera=CAM, pose=POSE, frame_id=2),
        Frame(image=np.zeros((0, 0, 3), np.uint8), camera=CAM, pose=POSE, frame_id=3),
        Frame(image=np.zeros((300, 400, 3), np.uint8), camera=CAM, pose=POSE, frame_id=4),
        Frame(image=np.zeros((480, 640, 3), np.float32), camera=CAM, pose=POSE, frame_id=5),
        Frame(image=np.zeros((480, 640, 2), np.uint8), camera=CAM, pose=POSE, frame_id=6),
        Frame(image=ok_jpeg, camera=CAM, pose=CameraPose(float("nan"), LON0, 92.0, GROUND), frame_id=7),
        Frame(image=ok_jpeg, camera=CAM, pose=CameraPose(LAT0, LON0, GROUND, GROUND), frame_id=8),
        Frame(image=None, camera=CAM, pose=POSE, frame_id=9),
    ]
    out = []
    for i, f in enumerate(bad):
        out += stage.process(f)
        out += stage.process(good_frame(100 + i)) if i in (0, 4) else []  # good frames in between
    out += stage.process(Frame(image=ok_jpeg, camera=CAM, pose=POSE, frame_id=200))  # encoded bytes are fine
    kinds = [w.kind for w in warnings]
    assert kinds == ["corrupt_image", "empty_image", "empty_image", "wrong_size", "wrong_dtype", "wrong_channels",
                     "bad_pose", "bad_pose", "empty_image"]
    assert [w.frame_id for w in warnings] == list(range(1, 10))
    assert "400x300" in warnings[3].message and "m3e@640" in warnings[3].message
    s = stage.stats.summary()
    assert s["frames_ok"] == 3 and s["frames_skipped"] == 9 and det.calls == 3
    assert [x.extra["status"] for x in out][:1] == ["confirmed"]  # the good frames still made an incident
    assert s["detect_ms"]["n"] == 3 and s["total_ms"]["median"] > 0


def test_detector_failure_is_a_warning_not_a_crash():
    class Boom:
        def detect(self, image):
            raise RuntimeError("onnxruntime exploded")

    stage = VisionStage(Boom(), IncidentTracker("p"), CAM)
    assert stage.process(good_frame()) == []
    assert stage.warnings[-1].kind == "detector_error" and "exploded" in stage.warnings[-1].message


class TruthFeeder:
    """Wrap an oracle so each frame's detect() sees that frame's ground truth."""

    def __init__(self, oracle):
        self.oracle = oracle
        self.truth_by_image: dict[int, list] = {}
        self.lock = threading.Lock()

    def detect(self, image):
        with self.lock:
            self.oracle.truth = self.truth_by_image[id(image)]
            return self.oracle.detect(image)


def simulated_pass(seed: int, n_incidents: int, n_lookalikes: int, altitude: float):
    rng = np.random.default_rng(seed)
    kinds = [("illegal_structure", "straw_burning", "illegal_dumping", "hazmat_fire")[i % 4] for i in range(n_incidents)]
    kinds += [("roof", "cooking_smoke", "haystack", "parked_truck")[i % 4] for i in range(n_lookalikes)]
    objects = plant_objects(rng, LAT0, LON0, kinds, half_extent_m=110.0, min_separation_m=45.0)
    world = World(seed, LAT0, LON0, GROUND, objects)
    poses = lawnmower_poses(LAT0, LON0, 240.0, 240.0, altitude, CAM, GROUND, side_overlap=0.2, front_overlap=0.6)
    return objects, world, poses


def test_one_incident_per_planted_event_over_a_full_pass():
    objects, world, poses = simulated_pass(seed=11, n_incidents=6, n_lookalikes=4, altitude=80.0)
    feeder = TruthFeeder(OracleDetector(seed=3, jitter=0.05, miss=0.15, false_rate=0.3))
    stage = VisionStage(feeder, IncidentTracker("pass", k=2, n=3), CAM)
    events = []
    for i, pose in enumerate(poses):
        r = world.render(CAM, pose)
        feeder.truth_by_image[id(r.image)] = r.truth
        events += stage.process(Frame(image=r.image, camera=CAM, pose=pose, frame_id=i, drone_id="d0"))
    incidents = stage.tracker.incidents()
    planted = [o for o in objects if o.is_incident]
    assert len(poses) >= 20
    # every planted event: exactly one incident of its class nearby; nothing else
    for o in planted:
        near = [x for x in incidents if distance_m(x.lat, x.lon, o.lat, o.lon) < 10.0]
        assert len(near) == 1, (o, near)
        assert near[0].class_name == o.kind
        assert distance_m(near[0].lat, near[0].lon, o.lat, o.lon) < 3.0
        assert near[0].error_m < 6.0
    assert len(incidents) == len(planted)
    assert sum(1 for e in events if e.extra["status"] == "confirmed") == len(planted)
    assert all(x.evidence_jpeg and x.evidence_jpeg[:2] == b"\xff\xd8" for x in incidents)


def test_stage_is_thread_safe():
    objects, world, poses = simulated_pass(seed=5, n_incidents=4, n_lookalikes=0, altitude=80.0)
    frames = []
    feeder = TruthFeeder(OracleDetector(seed=1, jitter=0.03, miss=0.0, false_rate=0.0))
    for i, pose in enumerate(poses):
        r = world.render(CAM, pose)
        feeder.truth_by_image[id(r.image)] = r.truth
        frames.append(Frame(image=r.image, camera=CAM, pose=pose, frame_id=i, drone_id="d0"))
    stage = VisionStage(feeder, IncidentTracker("mt", k=2, n=3), CAM)
    q: queue.Queue = queue.Queue()
    for f in frames:  # as the patrol does: worker threads take frames from one queue
        q.put(f)

    def work():
        while True:
            try:
                stage.process(q.get_nowait())
            except queue.Empty:
                return

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stage.stats.summary()["frames_ok"] == len(frames)
    assert len(stage.tracker.incidents()) == 4


def _telemetry(t0: float, n: int = 21) -> list[Telemetry]:
    """A straight flight north at 10 m/s, 1 Hz, 80 m above take-off at 12 m AMSL; yaw wraps 350 -> 10."""
    out = []
    for i in range(n):
        lat, lon = offset_to_wgs84(LAT0, LON0, 10.0 * i, 0.0)
        out.append(Telemetry("d0", float(i), t0 + i, lat, lon, GROUND + 80.0 + 0.3, 80.0, 0.0, 0.0,
                             (350.0 + 2.0 * i) % 360, 10.0, 90.0, "MISSION", True, True, sortie_id="s7"))
    return out


def test_interpolate_pose():
    t0 = 1.7e9
    tel = _telemetry(t0)
    p = interpolate_pose(tel, t0 + 2.5)
    lat, lon = offset_to_wgs84(LAT0, LON0, 25.0, 0.0)
    assert distance_m(p.lat, p.lon, lat, lon) < 0.01
    assert p.ground_alt_m == pytest.approx(GROUND + 0.3) and p.height_m == pytest.approx(80.0)
    assert p.yaw_deg == pytest.approx(355.0)
    assert interpolate_pose(tel, t0 + 5.5).yaw_deg == pytest.approx(1.0)  # 360 wrap: 0 -> 2, not 180
    assert interpolate_pose(tel, t0 - 10) is None and interpolate_pose(tel, t0 + 30) is None


def test_file_frame_source_georeferences_photos_by_time(tmp_path):
    t0 = 1.7e9
    tel = _telemetry(t0)
    img = np.full((480, 640, 3), 100, np.uint8)
    paths = []
    for name in ("a.jpg", "b.jpg", "late.jpg", "broken.jpg"):
        p = tmp_path / name
        p.write_bytes(cv2.imencode(".jpg", img)[1].tobytes() if name != "broken.jpg" else b"\xff\xd8\xff\xe0 junk")
        paths.append(p)
    wide = tmp_path / "wide.png"
    wide.write_bytes(cv2.imencode(".png", np.zeros((100, 400, 3), np.uint8))[1].tobytes())
    paths.append(wide)
    assert image_size(paths[0].read_bytes()) == (640, 480) and image_size(wide.read_bytes()) == (400, 100)
    skipped = []
    src = FileFrameSource(paths, PRESETS["m3e"], tel, times={"a.jpg": t0 + 3, "b.jpg": t0 + 7.5, "late.jpg": t0 + 99,
                                                            "broken.jpg": t0 + 4, "wide.png": t0 + 4},
                          on_skip=lambda p, r: skipped.append((p.name, r)))
    frames = list(src)
    assert [f.frame_id for f in frames] == [0, 1, 3]
    assert frames[0].camera.image_width_px == 640 and frames[0].camera.focal_length_mm == PRESETS["m3e"].focal_length_mm
    lat, lon = offset_to_wgs84(LAT0, LON0, 75.0, 0.0)
    assert distance_m(frames[1].pose.lat, frames[1].pose.lon, lat, lon) < 0.01
    assert frames[1].sortie_id == "s7"
    assert {n for n, _ in skipped} == {"late.jpg", "wide.png"}
    # the broken one reaches the stage, which reports it
    stage = VisionStage(FixedDetector(), IncidentTracker("p"), CAM)
    for f in frames:
        stage.process(f)
    assert stage.stats.summary()["frames_ok"] == 2 and stage.warnings[-1].kind == "corrupt_image"


def test_exif_capture_time(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    from vision.pipeline import exif_time

    img = pil.new("RGB", (64, 48))
    exif = pil.Exif()
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2025:05:01 10:00:00"
    p = tmp_path / "cst.jpg"
    img.save(p, exif=exif)
    assert exif_time(p) == pytest.approx(1746064800.0)  # 10:00 China Standard Time = 02:00 UTC
    sub[0x9011] = "+00:00"
    sub[0x9291] = "5"
    q = tmp_path / "utc.jpg"
    img.save(q, exif=exif)
    assert exif_time(q) == pytest.approx(1746093600.5)
    r = tmp_path / "none.jpg"
    img.save(r)
    assert exif_time(r) is None


def test_video_frames_are_sampled_and_georeferenced(tmp_path):
    t0 = 1.7e9
    tel = _telemetry(t0)
    p = tmp_path / "DJI_0001.avi"
    vw = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (640, 480))
    if not vw.isOpened():
        pytest.skip("no MJPG writer in this OpenCV build")
    for i in range(20):  # 4 s at 5 fps
        vw.write(np.full((480, 640, 3), 10 * i, np.uint8))
    vw.release()
    src = FileFrameSource([p], PRESETS["m3e"], tel, times={p.name: t0 + 2.0}, video_step_s=1.0)
    frames = list(src)
    assert [round(f.time_s - t0, 3) for f in frames] == [2.0, 3.0, 4.0, 5.0]
    assert [f.frame_id for f in frames] == [0, 1, 2, 3]
    lat, lon = offset_to_wgs84(LAT0, LON0, 30.0, 0.0)  # 10 m/s north, 3 s after t0
    assert distance_m(frames[1].pose.lat, frames[1].pose.lon, lat, lon) < 0.01
    assert abs(int(frames[2].image.mean()) - 100) <= 3  # the 11th video frame (t = 2 s into the video)
