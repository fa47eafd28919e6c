"""Geolocation against hand-computed cases: nadir, pitched gimbal, yawed drone, DEM, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geo.camera import CameraModel
from geo.geodesy import distance_m
from geo.georef import CameraPose
from vision.contracts import Detection
from vision.geolocate import GeoLocator, Uncertainty, anchor_pixel

# 800 x 600 px, fx = fy = 400 px, principal point (400, 300)
CAM = CameraModel("test", 10.0, 7.5, 5.0, 800, 600)
LAT0, LON0 = 30.0, 120.5
A, E2 = 6378137.0, 0.00669437999014


def offset(lat: float, north: float, east: float) -> tuple[float, float]:
    """Hand formula: metres -> degrees with the meridian and prime-vertical radii at ``lat``."""
    s = math.sin(math.radians(lat))
    m = A * (1 - E2) / (1 - E2 * s * s) ** 1.5
    n = A / math.sqrt(1 - E2 * s * s)
    return LAT0 + math.degrees(north / m), LON0 + math.degrees(east / (n * math.cos(math.radians(lat))))


def pose(**kw) -> CameraPose:
    base = dict(lat=LAT0, lon=LON0, alt_amsl_m=110.0, ground_alt_m=10.0)
    base.update(kw)
    return CameraPose(**base)


def check(fix, north: float, east: float, tol: float = 0.02) -> None:
    lat, lon = offset(LAT0, north, east)
    assert fix is not None
    assert distance_m(fix.lat, fix.lon, lat, lon) < tol, (fix, north, east)


@pytest.mark.parametrize(("u", "v", "north", "east"), [
    (400, 300, 0.0, 0.0),  # principal point: straight below
    (440, 300, 0.0, 10.0),  # 40 px right at 400 px focal, 100 m up: 10 m east
    (400, 260, 10.0, 0.0),  # image top is forward = north
    (320, 380, -20.0, -20.0),
])
def test_nadir_north_up(u, v, north, east):
    fix = GeoLocator().locate_pixel(u, v, CAM, pose())
    check(fix, north, east)
    assert fix.ground_alt_m == 10.0


@pytest.mark.parametrize(("pitch", "ahead"), [(-45.0, 100.0), (-60.0, 100.0 / math.tan(math.radians(60))),
                                              (-30.0, 100.0 / math.tan(math.radians(30)))])
def test_pitched_gimbal_centre_pixel_lands_ahead(pitch, ahead):
    check(GeoLocator().locate_pixel(400, 300, CAM, pose(gimbal_pitch_deg=pitch)), ahead, 0.0)


def test_pitched_gimbal_off_centre_pixel():
    # pitch -45: pixel 100 px below centre is 14.036 deg steeper -> 100 / tan(45 + 14.036) ahead;
    # 80 px right at range r = 100 / sin(59.036) * cos(14.036)... computed from the ray directly
    d = np.array([80 / 400, 100 / 400, 1.0])  # camera frame
    c, s = math.cos(math.radians(45)), math.sin(math.radians(45))
    # camera z forward-down at 45 deg, y down-back: north = z*c - y*s, down = z*s + y*c, east = x
    north, down, east = d[2] * c - d[1] * s, d[2] * s + d[1] * c, d[0]
    t = 100.0 / down
    check(GeoLocator().locate_pixel(480, 400, CAM, pose(gimbal_pitch_deg=-45)), north * t, east * t)


def test_yawed_drone_turns_the_image():
    p = pose(yaw_deg=90.0)  # heading east: image top = east, image right = south
    check(GeoLocator().locate_pixel(400, 260, CAM, p), 0.0, 10.0)
    check(GeoLocator().locate_pixel(440, 300, CAM, p), -10.0, 0.0)
    check(GeoLocator().locate_pixel(400, 300, CAM, pose(yaw_deg=90.0, gimbal_pitch_deg=-45)), 0.0, 100.0)
    r2 = math.sqrt(0.5) * 100.0  # heading 225 (south-west), pitched 45: 100 m to the south-west
    check(GeoLocator().locate_pixel(400, 300, CAM, pose(yaw_deg=225.0, gimbal_pitch_deg=-45)), -r2, -r2)


def test_ray_above_horizon_is_not_located():
    assert GeoLocator().locate_pixel(400, 100, CAM, pose(gimbal_pitch_deg=0.0)) is None


def test_error_model_matches_hand_computation():
    zero = Uncertainty(position_m=0, altitude_m=0, ground_flat_m=0, yaw_deg=0, gimbal_pitch_deg=0, tilt_deg=0,
                       pixel_frac=0, pixel_min=0)
    p = pose()
    assert GeoLocator(uncertainty=zero).locate_pixel(440, 300, CAM, p).error_m == pytest.approx(0.0, abs=1e-6)
    gnss = GeoLocator(uncertainty=Uncertainty(**{**zero.__dict__, "position_m": 1.0}))
    assert gnss.locate_pixel(440, 300, CAM, p).error_m == pytest.approx(math.sqrt(2), rel=1e-6)
    # 1 deg of heading at 100 m from nadir: 100 * 0.01745 m
    yaw = GeoLocator(uncertainty=Uncertainty(**{**zero.__dict__, "yaw_deg": 1.0}))
    assert yaw.locate_pixel(800, 300, CAM, p).error_m == pytest.approx(100 * math.radians(1), rel=0.01)
    # 1 m of height at a point 10 m off nadir from 100 m up: 0.1 m
    alt = GeoLocator(uncertainty=Uncertainty(**{**zero.__dict__, "altitude_m": 1.0}))
    assert alt.locate_pixel(440, 300, CAM, p).error_m == pytest.approx(0.1, rel=0.01)
    # 1 px at 400 px focal from 100 m: 0.25 m per axis
    px = GeoLocator(uncertainty=Uncertainty(**{**zero.__dict__, "pixel_min": 1.0}))
    assert px.locate_pixel(400, 300, CAM, p, (1.0, 1.0)).error_m == pytest.approx(0.25 * math.sqrt(2), rel=0.01)


def test_error_grows_with_altitude_and_obliquity():
    g = GeoLocator()
    low = g.locate_pixel(400, 300, CAM, pose(alt_amsl_m=90.0)).error_m
    high = g.locate_pixel(400, 300, CAM, pose(alt_amsl_m=130.0)).error_m
    oblique = g.locate_pixel(400, 300, CAM, pose(alt_amsl_m=130.0, gimbal_pitch_deg=-40)).error_m
    assert low < high < oblique


def test_anchor_base_moves_towards_nadir_for_radial_boxes():
    p = pose()  # nadir image point is the principal point (400, 300)
    # a box far below the centre, tall (radially elongated): base is its top end
    u, v, shift = anchor_pixel((380, 450, 420, 570), "base", CAM, p)
    assert (u, v) == pytest.approx((400, 470))
    assert shift == pytest.approx(40)
    # square box: stays at its centre
    assert anchor_pixel((100, 100, 140, 140), "base", CAM, p)[:2] == pytest.approx((120, 120))
    assert anchor_pixel((380, 450, 420, 570), "centre", CAM, p)[:2] == pytest.approx((400, 510))
    g = GeoLocator(anchors={"straw_burning": "base"})
    fix = g.locate_detection(Detection("straw_burning", 1, 0.9, (380, 450, 420, 570)), CAM, p)
    check(fix, -(470 - 300) / 4.0, 0.0)


tifffile = pytest.importorskip("tifffile")


def _ramp_dem(tmp_path, crs: str, slope: float, base: float):
    from pyproj import Transformer

    from vision.dem import Dem

    # grid covering +-400 m around the origin, height = base + slope * north_m
    if crs == "EPSG:4326":
        lat_a, lon_a = offset(LAT0, 400, -400)
        lat_b, lon_b = offset(LAT0, -400, 400)
        cols, rows = 161, 161
        dx, dy = (lon_b - lon_a) / cols, (lat_b - lat_a) / rows
        x0, y0 = lon_a, lat_a
        cx = x0 + (np.arange(cols) + 0.5) * dx
        cy = y0 + (np.arange(rows) + 0.5) * dy
        lon, lat = np.meshgrid(cx, cy)
        north = (lat - LAT0) / (offset(LAT0, 1.0, 0)[0] - LAT0)
    else:
        t = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        ex, ny = t.transform(LON0, LAT0)
        x0, y0, dx, dy, cols, rows = ex - 400, ny + 400, 5.0, -5.0, 160, 160
        ys = y0 + (np.arange(rows) + 0.5) * dy
        north = np.repeat((ys - ny)[:, None], cols, axis=1)  # UTM grid north ~ true north here
    dem = Dem(heights=base + slope * north, affine=(x0, dx, y0, dy), crs=crs)
    path = tmp_path / "dem.tif"
    dem.write(path)
    return Dem.read(path)


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:32651"])
def test_dem_geotiff_round_trip_and_ray_intersection(tmp_path, crs):
    dem = _ramp_dem(tmp_path, crs, slope=0.2, base=10.0)
    assert dem.crs == crs
    assert dem.height(LAT0, LON0) == pytest.approx(10.0, abs=0.2)
    lat, lon = offset(LAT0, 100.0, 0.0)
    assert dem.height(lat, lon) == pytest.approx(30.0, abs=0.3)
    assert math.isnan(dem.height(LAT0 + 0.05, LON0))
    g = GeoLocator(dem=dem)
    # ray pitched 45 deg from 110 m AMSL: height along the ray 110 - d meets 10 + 0.2 d at d = 83.33 m
    fix = g.locate_pixel(400, 300, CAM, pose(gimbal_pitch_deg=-45))
    check(fix, 100 / 1.2, 0.0, tol=0.5)
    assert fix.ground_alt_m == pytest.approx(10 + 0.2 * 100 / 1.2, abs=0.3)
    # looking back down the slope (heading south): 110 - d = 10 - 0.2 d -> d = 125 m
    check(g.locate_pixel(400, 300, CAM, pose(gimbal_pitch_deg=-45, yaw_deg=180)), -125.0, 0.0, tol=0.6)
    # flat DEM at the take-off height gives the flat-ground answer
    flat = GeoLocator().locate_pixel(440, 350, CAM, pose())
    on_dem = g.locate_pixel(440, 350, CAM, pose())
    assert distance_m(flat.lat, flat.lon, on_dem.lat, on_dem.lon) < 3.0  # ramp of 0.2 over -12.5 m: small shift


def test_dem_steep_slope_converges(tmp_path):
    dem = _ramp_dem(tmp_path, "EPSG:4326", slope=1.5, base=10.0)  # 56 deg hillside facing the drone
    fix = GeoLocator(dem=dem).locate_pixel(400, 300, CAM, pose(gimbal_pitch_deg=-30))
    # ray: height 110 - d tan 30; ground 10 + 1.5 d -> d = 100 / (1.5 + tan 30)
    d = 100 / (1.5 + math.tan(math.radians(30)))
    check(fix, d, 0.0, tol=1.0)


def test_bad_dem_file_names_the_file(tmp_path):
    from vision.dem import Dem, DemError

    p = tmp_path / "broken.tif"
    p.write_bytes(b"not a tiff")
    with pytest.raises(DemError, match="broken.tif"):
        Dem.read(p)
    q = tmp_path / "plain.tif"
    tifffile.imwrite(q, np.zeros((4, 4), np.float32))
    with pytest.raises(DemError, match="georeferencing"):
        Dem.read(q)


def test_boxes_cut_by_the_frame_edge_are_less_certain():
    g = GeoLocator()
    inside = g.locate_detection(Detection("illegal_dumping", 2, 0.9, (700, 260, 760, 320)), CAM, pose())
    cut = g.locate_detection(Detection("illegal_dumping", 2, 0.9, (740, 260, 800, 320)), CAM, pose())
    assert cut.error_m > inside.error_m + 1.0
