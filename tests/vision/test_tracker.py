"""Incidents, not boxes: k-of-n confirmation, dedup across frames and drones, stable ids."""

from __future__ import annotations

import uuid

import cv2
import numpy as np
import pytest

from geo.camera import CameraModel
from geo.geodesy import distance_m
from geo.georef import CameraPose
from vision.contracts import Detection, Frame, GeoDetection
from vision.geolocate import offset_to_wgs84
from vision.tracker import IncidentTracker, centrality, incident_id

CAM = CameraModel("test", 10.0, 7.5, 5.0, 640, 480)
LAT0, LON0 = 30.0, 120.5
IMG = np.full((480, 640, 3), 90, np.uint8)


def frame(i: int, drone: str = "d0") -> Frame:
    return Frame(image=IMG, camera=CAM, pose=CameraPose(LAT0, LON0, 100.0, 0.0), drone_id=drone, frame_id=i,
                 time_s=float(i), wall_time=1000.0 + i, sortie_id="s1")


def gd(north: float, east: float, cls: str = "illegal_dumping", conf: float = 0.8, err: float = 2.5, i: int = 0,
       box=(300, 220, 340, 260), drone: str = "d0") -> GeoDetection:
    lat, lon = offset_to_wgs84(LAT0, LON0, north, east)
    return GeoDetection(Detection(cls, 2, conf, box), lat, lon, err, i, drone, float(i), 1000.0 + i)


def test_confirms_after_k_of_n_once_and_updates_later():
    tr = IncidentTracker("p1", k=3, n=5)
    out = []
    for i, hit in enumerate([1, 0, 1, 0, 1, 1, 1, 0, 0, 1]):
        dets = [gd(50 + 0.5 * (i % 2), 20, i=i)] if hit else []
        out.append(tr.update(frame(i), dets))
    statuses = [[inc.extra["status"] for inc in o] for o in out]
    assert statuses[4] == ["confirmed"]  # hits at frames 0, 2, 4 -> third hit within 5 frames
    assert all(s == [] for s in statuses[:4])
    assert sum(s.count("confirmed") for s in statuses) == 1
    assert len(tr.incidents()) == 1
    inc = tr.incidents()[0]
    assert inc.frames_seen == 6 and inc.drone_id == "d0" and inc.sortie_id == "s1"
    assert inc.id == incident_id("p1", 1) and uuid.UUID(inc.id).version == 5
    lat, lon = offset_to_wgs84(LAT0, LON0, 50.25, 20)
    assert distance_m(inc.lat, inc.lon, lat, lon) < 0.3


def test_spread_out_hits_and_single_frame_false_positives_never_confirm():
    tr = IncidentTracker("p1", k=3, n=5, stale_after_s=0.0)
    for i in range(30):
        dets = [gd(30 * i, 0, cls="straw_burning", i=i)]  # a new place every frame
        if i % 6 == 0:
            dets.append(gd(200, 200, i=i))  # the same place, but only every 6th frame
        assert tr.update(frame(i), dets) == []
    assert tr.incidents() == []
    assert tr.tentative_count <= 5 + 4 + 2  # stale tentative tracks are dropped (n + reorder slack)


def test_one_incident_per_event_across_drones_and_revisits():
    tr = IncidentTracker("p1", k=2, n=3)
    confirmed = []
    for i in range(4):  # drone 0 passes over
        confirmed += [x for x in tr.update(frame(i), [gd(0.8 * i, 0, i=i)]) if x.extra["status"] == "confirmed"]
    for i in range(20):  # drone 1 much later, a couple of metres off (its own GNSS bias)
        confirmed += [x for x in tr.update(frame(i, "d1"), [gd(2.0, 1.5, i=i, drone="d1")] if i > 15 else [])
                      if x.extra["status"] == "confirmed"]
    assert len(confirmed) == 1
    (inc,) = tr.incidents()
    assert inc.extra["drones"] == ["d0", "d1"] and inc.frames_seen == 8


def test_distinct_events_and_classes_stay_apart():
    tr = IncidentTracker("p1", k=2, n=3)
    for i in range(3):
        tr.update(frame(i), [gd(0, 0, i=i), gd(60, 0, i=i), gd(1, 1, cls="hazmat_fire", i=i)])
    got = sorted((x.class_name, round(x.lat, 5)) for x in tr.incidents())
    assert len(got) == 3
    assert [c for c, _ in got] == ["hazmat_fire", "illegal_dumping", "illegal_dumping"]


def test_duplicate_boxes_in_one_frame_make_one_incident():
    tr = IncidentTracker("p1", k=2, n=3)
    for i in range(3):
        tr.update(frame(i), [gd(0, 0, i=i, conf=0.9), gd(3, 2, i=i, conf=0.5)])
    assert len(tr.incidents()) == 1


def test_gate_follows_the_error_estimates():
    loose = IncidentTracker("p", k=2, n=2, min_gate_m=1.0)
    tight = IncidentTracker("p", k=2, n=2, min_gate_m=1.0)
    for i in range(2):
        loose.update(frame(i), [gd(12.0 * i, 0, err=5.0, i=i)])  # 12 m apart, 3 sigma gate = 21 m
        tight.update(frame(i), [gd(12.0 * i, 0, err=1.0, i=i)])  # 3 sigma gate = 4.2 m
    assert len(loose.incidents()) == 1 and len(tight.incidents()) == 0


def test_best_evidence_is_confident_and_central_and_has_the_box_drawn():
    tr = IncidentTracker("p1", k=2, n=3)
    edge = (0, 0, 40, 40)
    centre = (300, 220, 340, 260)
    tr.update(frame(0), [gd(0, 0, conf=0.9, box=edge)])
    out = tr.update(frame(1), [gd(0, 0, conf=0.8, box=centre, i=1)])
    assert out[0].extra["best_frame_id"] == 1 and out[0].evidence_box == centre
    img = cv2.imdecode(np.frombuffer(out[0].evidence_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == IMG.shape
    red = (img[..., 2] > 200) & (img[..., 1] < 80) & (img[..., 0] < 80)
    assert red[260, 300:340].mean() > 0.8  # the bottom edge of the box is drawn in red
    assert not red[100:200, 100:200].any()
    assert centrality(centre, 640, 480) > centrality(edge, 640, 480)


def test_updates_only_on_material_change():
    tr = IncidentTracker("p1", k=2, n=3, update_interval_s=100.0)
    for i in range(2):
        tr.update(frame(i), [gd(0, 0, i=i)])
    assert tr.update(frame(2), [gd(0, 0, i=2, conf=0.5, box=(0, 0, 40, 40))]) == []  # same place, worse view
    moved = tr.update(frame(3), [gd(6, 0, i=3, conf=0.5, box=(0, 0, 40, 40))])
    assert [x.extra["status"] for x in moved] == ["updated"]


def test_bad_parameters():
    with pytest.raises(ValueError):
        IncidentTracker("p", k=4, n=3)


def test_flush_updates_reports_unsent_sightings_once():
    tr = IncidentTracker("p1", k=2, n=3, update_interval_s=100.0)
    for i in range(2):
        tr.update(frame(i), [gd(0, 0, i=i)])
    assert tr.flush_updates() == []  # everything already reported at confirmation
    tr.update(frame(2), [gd(0, 0, i=2, conf=0.5, box=(0, 0, 40, 40))])
    (inc,) = tr.flush_updates()
    assert inc.frames_seen == 3 and inc.extra["status"] == "updated"
    assert tr.flush_updates() == []


def test_weak_repeated_detections_do_not_confirm_until_one_is_confident():
    tr = IncidentTracker("p1", k=2, n=3, confirm_conf=0.45)
    for i in range(4):
        assert tr.update(frame(i), [gd(0, 0, i=i, conf=0.3)]) == []
    (inc,) = tr.update(frame(4), [gd(0, 0, i=4, conf=0.6)])
    assert inc.extra["status"] == "confirmed" and inc.frames_seen == 5 and inc.confidence == 0.6
