"""Synthetic aerial camera: determinism, geometry against geo.georef, truth boxes, consistency.

Render speed is not a test (a loaded CI machine is slow, not wrong): ``bench/bench_sim.py``
reports ms per 640 x 480 frame for this module's world and pose, target <= 250 ms."""

from __future__ import annotations

import numpy as np
import pytest

from geo.camera import get_camera
from geo.georef import CameraPose, ground_to_pixels
from geo.projection import LocalFrame
from simulators.camera import World
from simulators.scenario import PlantedObject

LAT0, LON0, GROUND = 30.0879584, 120.3289584, 8.0
CAM = get_camera("m3e").scaled(640)


def _offset(north_m: float, east_m: float) -> tuple[float, float]:
    lon, lat = LocalFrame(LAT0, LON0).to_wgs84(east_m, north_m)
    return float(lat), float(lon)


@pytest.fixture(scope="module")
def world() -> World:
    lat, lon = _offset(30.0, -20.0)
    lat2, lon2 = _offset(-40.0, 35.0)
    objs = [
        PlantedObject("shed", "illegal_structure", lat, lon, heading_deg=30.0, size_m=14.0),
        PlantedObject("hay", "haystack", lat2, lon2, size_m=4.0),
    ]
    return World(7, LAT0, LON0, GROUND, objs)


def _pose(north: float = 0.0, east: float = 0.0, agl: float = 80.0, **kw) -> CameraPose:
    lat, lon = _offset(north, east)
    return CameraPose(lat, lon, GROUND + agl, GROUND, **kw)


def test_deterministic_by_seed(world: World) -> None:
    pose = _pose(yaw_deg=15.0)
    a = world.render(CAM, pose)
    b = World(7, LAT0, LON0, GROUND, world.objects).render(CAM, pose)
    c = World(8, LAT0, LON0, GROUND, world.objects).render(CAM, pose)
    assert a.image.shape == (480, 640, 3) and a.image.dtype == np.uint8
    assert np.array_equal(a.image, b.image)
    assert a.truth == b.truth
    assert np.abs(a.image.astype(int) - c.image.astype(int)).mean() > 10  # another seed: another world


@pytest.mark.parametrize("yaw,pitch,agl", [(0.0, -90.0, 80.0), (73.0, -90.0, 120.0), (340.0, -70.0, 100.0), (20.0, -80.0, 60.0)])
def test_planted_object_at_predicted_pixel(world: World, yaw: float, pitch: float, agl: float) -> None:
    pose = _pose(10.0, -5.0, agl, yaw_deg=yaw, gimbal_pitch_deg=pitch)
    r = world.render(CAM, pose)
    box = next(t for t in r.truth if t.object_id == "shed")
    fr = LocalFrame(LAT0, LON0)
    ce, cn = fr.to_local(pose.lon, pose.lat)
    u, v = ground_to_pixels(30.0 - cn, -20.0 - ce, CAM, pose)
    cx, cy = (box.box[0] + box.box[2]) / 2, (box.box[1] + box.box[3]) / 2
    assert abs(cx - u) < 2.0 and abs(cy - v) < 2.0
    assert box.visible_fraction == pytest.approx(1.0)
    # the shed is really drawn there: its roof differs from the empty world's ground
    empty = World(7, LAT0, LON0, GROUND, []).render(CAM, pose).image
    x1, y1, x2, y2 = (int(round(b)) for b in box.box)
    diff = np.abs(r.image[y1:y2, x1:x2].astype(int) - empty[y1:y2, x1:x2].astype(int)).sum(-1)
    assert (diff > 40).mean() > 0.4
    far = np.abs(r.image[:40, :40].astype(int) - empty[:40, :40].astype(int)).sum(-1)
    assert far.max() == 0 or not (0 <= cx < 60 and 0 <= cy < 60)


def test_shed_size_matches_gsd(world: World) -> None:
    """A 14 m shed at 80 m AGL with the m3e stream (~17.6 cm/px) is ~80 px long."""
    r = world.render(CAM, _pose(30.0, -20.0, 80.0, yaw_deg=30.0))  # shed along the image's vertical axis
    box = next(t for t in r.truth if t.object_id == "shed").box
    assert 70 < box[3] - box[1] < 90
    assert 40 < box[2] - box[0] < 55  # 0.6 x 14 m wide


def test_truth_boxes_clip_and_leave(world: World) -> None:
    # the shed centre sits on the left image edge
    half_w = CAM.footprint_m(80.0)[0] / 2
    r = world.render(CAM, _pose(30.0, -20.0 + half_w, 80.0))
    box = next(t for t in r.truth if t.object_id == "shed")
    assert box.box[0] == 0.0 and 0.3 < box.visible_fraction < 0.7
    far = world.render(CAM, _pose(500.0, 500.0))
    assert far.truth == []
    kinds = {t.kind for t in world.render(CAM, _pose(-5.0, 5.0, 120.0)).truth}
    assert kinds == {"illegal_structure", "haystack"}  # look-alikes carry their own kind


def test_overlapping_poses_agree(world: World) -> None:
    """The same ground point has the same colour from two poses (different yaw, position)."""
    p1 = _pose(0.0, 0.0, 80.0, yaw_deg=0.0)
    p2 = _pose(12.0, -9.0, 80.0, yaw_deg=90.0)
    a, b = world.render(CAM, p1).image, world.render(CAM, p2).image
    fr = LocalFrame(LAT0, LON0)
    rng = np.random.default_rng(0)
    pts_n, pts_e = rng.uniform(-20, 20, 200), rng.uniform(-20, 20, 200)
    errs = []
    for n, e in zip(pts_n, pts_e, strict=True):
        uv = []
        for p in (p1, p2):
            ce, cn = fr.to_local(p.lon, p.lat)
            uv.append(ground_to_pixels(n - cn, e - ce, CAM, p))
        (u1, v1), (u2, v2) = uv
        errs.append(np.abs(a[int(v1), int(u1)].astype(int) - b[int(v2), int(u2)].astype(int)).max())
    assert np.median(errs) < 12

