"""CRS conversions against published reference values; camera math against hand calculation."""

from __future__ import annotations

import numpy as np
import pytest

from geo.camera import PRESETS, get_camera
from geo.crs import (
    bd09_to_gcj02,
    bd09_to_gcj02_closed_form,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geo.planner import PlanningError, resolve_altitude

M_PER_DEG = 111_320.0

# Published by wandergis/coordtransform (README/test/app.js) for the input (116.404, 39.915).
REF_IN = (116.404, 39.915)
REF_WGS_TO_GCJ = (116.41024449916938, 39.91640428150164)
REF_GCJ_TO_BD = (116.41036949371029, 39.92133699351021)
REF_BD_TO_GCJ = (116.39762729119315, 39.90865673957631)  # its closed-form inverse


def _m(a, b) -> float:
    return float(np.hypot((a[0] - b[0]) * M_PER_DEG * np.cos(np.radians(a[1])), (a[1] - b[1]) * M_PER_DEG))


def test_forward_transforms_match_published_values():
    assert wgs84_to_gcj02(*REF_IN) == pytest.approx(REF_WGS_TO_GCJ, abs=1e-12)
    assert gcj02_to_bd09(*REF_IN) == pytest.approx(REF_GCJ_TO_BD, abs=1e-12)
    assert bd09_to_gcj02_closed_form(*REF_IN) == pytest.approx(REF_BD_TO_GCJ, abs=1e-12)


def test_inverses_invert_published_values_to_sub_centimetre():
    assert _m(gcj02_to_wgs84(*REF_WGS_TO_GCJ), REF_IN) < 0.01
    assert _m(bd09_to_gcj02(*REF_GCJ_TO_BD), REF_IN) < 0.01
    # the closed-form BD-09 inverse is not that good; the iterative one is
    assert _m(bd09_to_gcj02_closed_form(*REF_GCJ_TO_BD), REF_IN) > _m(bd09_to_gcj02(*REF_GCJ_TO_BD), REF_IN)


def test_round_trips_over_zhejiang_below_1cm():
    rng = np.random.default_rng(3)
    lon = rng.uniform(118.0, 123.0, 500)
    lat = rng.uniform(27.0, 31.5, 500)
    for fwd, inv in ((wgs84_to_gcj02, gcj02_to_wgs84), (wgs84_to_bd09, bd09_to_wgs84), (gcj02_to_bd09, bd09_to_gcj02)):
        blon, blat = inv(*fwd(lon, lat))
        err = np.hypot((blon - lon) * M_PER_DEG * np.cos(np.radians(lat)), (blat - lat) * M_PER_DEG)
        assert err.max() < 0.01, fwd.__name__
    # the offset itself near Shaoxing is a few hundred metres
    g = wgs84_to_gcj02(120.33, 30.09)
    assert 300 < _m(g, (120.33, 30.09)) < 700


def test_outside_china_is_identity_and_dispatch():
    assert wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)
    assert to_wgs84(120.3, 30.0, "wgs84") == (120.3, 30.0)
    assert to_wgs84(*from_wgs84(120.3, 30.0, "bd09"), "bd09") == pytest.approx((120.3, 30.0), abs=1e-9)
    with pytest.raises(ValueError, match="unknown CRS 'utm'"):
        to_wgs84(0, 0, "utm")


def test_footprint_and_spacing_by_hand():
    cam = PRESETS["m3e"]  # 17.3 x 13.0 mm sensor, 12.29 mm lens, 5280 px wide
    # hand: 80 m * 17.3 / 12.29 = 112.61 m; 80 * 13.0 / 12.29 = 84.62 m
    w, h = cam.footprint_m(80.0)
    assert w == pytest.approx(112.612, abs=1e-3) and h == pytest.approx(84.622, abs=1e-3)
    # GSD = 80 * 17.3 * 100 / (5280 * 12.29) = 2.1328 cm/px
    assert cam.gsd_cm(80.0) == pytest.approx(2.1328, abs=1e-4)
    assert cam.line_spacing_m(80.0, 0.2) == pytest.approx(0.8 * 112.612, abs=1e-3)
    assert cam.trigger_distance_m(80.0, 0.6) == pytest.approx(0.4 * 84.622, abs=1e-3)
    assert cam.altitude_for_gsd(2.5) == pytest.approx(2.5 * 5280 * 12.29 / 1730, rel=1e-9)


def test_plan_by_gsd_or_altitude():
    cam = get_camera("p4rtk")
    alt, gsd = resolve_altitude(cam, None, 2.5)
    assert cam.gsd_cm(alt) == pytest.approx(2.5) and gsd == 2.5
    assert resolve_altitude(cam, None, None)[0] == 80.0
    with pytest.raises(PlanningError, match="either an altitude or a GSD"):
        resolve_altitude(cam, 80, 2.5)
    with pytest.raises(KeyError, match="unknown camera 'gopro'; known: m30-wide, m3e"):
        get_camera("gopro")
