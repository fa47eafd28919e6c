"""Pixel -> WGS-84 ground position with a 1-sigma error estimate in metres.

Geometry is :func:`geo.georef.pixels_to_ground` (the synthetic camera uses the same
function the other way round, so conventions cannot drift): a ray from the camera through
the pixel is intersected with the ground. The ground is flat at ``pose.ground_alt_m`` (the
take-off elevation) unless a :class:`vision.dem.Dem` is given; then the ray-DEM
intersection is found by fixed-point iteration on the ground height (damped when it
oscillates, bisection along the ray as a last resort). North/east offsets become WGS-84 by
a forward geodesic on the ellipsoid (pyproj.Geod).

**Which pixel.** Two anchors per class: "centre" (the box centre) and "base". "base" is
for boxes that include something standing up from the ground (a smoke column, a flame
plume, a wall): relief displacement leans a tall object away from the image of the nadir
point, so where it touches the ground lies on the box side nearest that point. The anchor
moves from the centre towards the nadir image point by half the box's excess length along
that direction (extent along minus extent across), i.e. to the middle of the object's
footprint at its near end; a square box (or one right below the drone) stays at its centre.
The shipped model's labels are *footprints* (the burning patch of a straw fire, the burning
tanker and the road around it, the shed roof, the waste pile; smoke drifting downwind is not
in the box: see the synthetic camera's truth outlines), so every class defaults to "centre".
A model trained on plume-inclusive labels (e.g. D-Fire smoke boxes merged in) should set
``anchors={"straw_burning": "base", "hazmat_fire": "base"}``.

**Error model** (1-sigma, independent Gaussian sources, first order): the horizontal
covariance is the sum over sources of J J^T sigma^2 where J is the numerical derivative of
(north, east) with respect to that source, plus the GNSS position variance on each axis.
Sources: GNSS horizontal position, camera height (barometric altitude + ground height:
flat-ground or DEM error), heading (yaw), gimbal pitch and cross-track tilt residuals, and
the anchor pixel (a fraction of the box size, more for base-anchored classes, plus half the
box size along an axis where the box touches the frame edge and may be cut off). The
reported ``error_m`` is the DRMS radius sqrt(var_north + var_east) in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from pyproj import Geod

from geo.camera import CameraModel
from geo.georef import CameraPose, ground_to_pixels, pixels_to_ground
from vision.contracts import Detection, Frame, GeoDetection
from vision.dem import Dem

_GEOD = Geod(ellps="WGS84")

#: Where in the box each class touches the ground ("centre" or "base"), see module doc.
DEFAULT_ANCHORS: dict[str, str] = {
    "illegal_structure": "centre",
    "illegal_dumping": "centre",
    "straw_burning": "centre",
    "hazmat_fire": "centre",
}


@dataclass(frozen=True)
class Uncertainty:
    """1-sigma error sources. Metres and degrees.

    Defaults: a non-RTK survey drone (GNSS ~1 m per axis, barometric height above take-off
    ~0.5 m, compass heading ~2 deg, stabilised gimbal ~0.5 deg), ground assumed flat at
    the take-off elevation (+-1.5 m over Zhejiang paddy and village land; 3 m with a
    30 m DEM), and the anchor pixel known to 10 % of the box size (25 % of the base shift
    for base-anchored classes) plus 1 px.
    """

    position_m: float = 1.0
    altitude_m: float = 0.5
    ground_flat_m: float = 1.5
    ground_dem_m: float = 3.0
    yaw_deg: float = 2.0
    gimbal_pitch_deg: float = 0.5
    tilt_deg: float = 0.5
    pixel_frac: float = 0.10
    pixel_min: float = 1.0
    base_shift_frac: float = 0.25


@dataclass(frozen=True)
class GroundFix:
    """A located pixel: WGS-84 degrees, ground height (m AMSL), offsets from the point
    under the camera (m), 1-sigma DRMS error (m) and the pixel that was located."""

    lat: float
    lon: float
    ground_alt_m: float
    north_m: float
    east_m: float
    error_m: float
    pixel: tuple[float, float]


def offset_to_wgs84(lat: float, lon: float, north_m, east_m) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Move from (lat, lon) by north/east metres along the ellipsoid -> (lat, lon) degrees."""
    n = np.asarray(north_m, dtype=np.float64)
    e = np.asarray(east_m, dtype=np.float64)
    az = np.degrees(np.arctan2(e, n))
    dist = np.hypot(n, e)
    lon2, lat2, _ = _GEOD.fwd(np.broadcast_to(lon, dist.shape), np.broadcast_to(lat, dist.shape), az, dist)
    if np.ndim(lat2) == 0:
        return float(lat2), float(lon2)
    return np.asarray(lat2), np.asarray(lon2)


def nadir_pixel(camera: CameraModel, pose: CameraPose) -> tuple[float, float] | None:
    """Image of the point straight below the camera (may lie outside the frame); None at the horizon."""
    u, v = ground_to_pixels(0.0, 0.0, camera, pose)
    if not (np.isfinite(u) and np.isfinite(v)):
        return None
    return float(u), float(v)


def anchor_pixel(box: tuple[float, float, float, float], mode: str, camera: CameraModel, pose: CameraPose) -> tuple[float, float, float]:
    """Pixel (u, v) where the object meets the ground, and how far (px) it was moved from the centre.

    ``mode`` "centre" or "base" (see the module docstring).
    """
    x1, y1, x2, y2 = box
    cu, cv = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    if mode == "centre":
        return cu, cv, 0.0
    if mode != "base":
        raise ValueError(f"anchor mode must be 'centre' or 'base', got {mode!r}")
    w, h = x2 - x1, y2 - y1
    nad = nadir_pixel(camera, pose)
    if nad is None:  # looking at the horizon: down in the image is towards the camera
        rx, ry = 0.0, -1.0
    else:
        dx, dy = cu - nad[0], cv - nad[1]
        norm = math.hypot(dx, dy)
        if norm < 1e-6:
            return cu, cv, 0.0
        rx, ry = dx / norm, dy / norm
    along = abs(rx) * w + abs(ry) * h
    across = abs(ry) * w + abs(rx) * h
    shift = max(0.0, along - across) / 2.0
    return cu - rx * shift, cv - ry * shift, shift


@dataclass
class GeoLocator:
    """Locates pixels and detections on the ground. Stateless apart from its settings; thread-safe.

    ``dem``: optional elevation model (else flat ground at ``pose.ground_alt_m``).
    ``anchors``: class name -> "centre" | "base" (unknown classes: centre).
    """

    dem: Dem | None = None
    uncertainty: Uncertainty = field(default_factory=Uncertainty)
    anchors: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ANCHORS))
    max_iter: int = 40
    tol_m: float = 0.05

    # ---- ground height --------------------------------------------------------------
    def _offsets(self, u: float, v: float, camera: CameraModel, pose: CameraPose) -> tuple[float, float, float]:
        """(north, east, ground height) of the ray's ground hit; NaN when the ray misses."""
        n, e = pixels_to_ground(u, v, camera, pose)
        n, e = float(n), float(e)
        if self.dem is None or not math.isfinite(n):
            return n, e, pose.ground_alt_m
        return self._dem_hit(u, v, camera, pose)

    def _dem_at(self, pose: CameraPose, n: float, e: float) -> float:
        lat, lon = offset_to_wgs84(pose.lat, pose.lon, n, e)
        return float(self.dem.height(lat, lon))  # type: ignore[union-attr]

    def _dem_hit(self, u: float, v: float, camera: CameraModel, pose: CameraPose) -> tuple[float, float, float]:
        def hit(g: float) -> tuple[float, float]:
            nn, ee = pixels_to_ground(u, v, camera, replace(pose, ground_alt_m=g))
            return float(nn), float(ee)

        g = self._dem_at(pose, 0.0, 0.0)
        if not math.isfinite(g):
            g = pose.ground_alt_m
        if g >= pose.alt_amsl_m - 0.5:
            return float("nan"), float("nan"), g
        alpha, last_step = 1.0, float("inf")
        for _ in range(self.max_iter):
            n, e = hit(g)
            if not math.isfinite(n):
                return n, e, g
            g_dem = self._dem_at(pose, n, e)
            if not math.isfinite(g_dem):  # ray leaves the DEM: keep the flat-ground answer
                n, e = hit(pose.ground_alt_m)
                return n, e, pose.ground_alt_m
            step = g_dem - g
            if abs(step) < self.tol_m:
                return n, e, g_dem
            if abs(step) >= last_step:  # oscillating on a steep slope: damp
                alpha *= 0.5
            last_step = abs(step)
            g = min(g + alpha * step, pose.alt_amsl_m - 1.0)
        return self._bisect(u, v, camera, pose, hit)

    def _bisect(self, u, v, camera, pose, hit) -> tuple[float, float, float]:
        """Find g with DEM(hit(g)) == g on [min, max] of the raster by bisection."""
        heights = self.dem.heights  # type: ignore[union-attr]
        lo, hi = float(np.nanmin(heights)) - 1.0, min(float(np.nanmax(heights)) + 1.0, pose.alt_amsl_m - 1.0)

        def f(g: float) -> float:
            n, e = hit(g)
            h = self._dem_at(pose, n, e)
            return (h if math.isfinite(h) else pose.ground_alt_m) - g

        flo, fhi = f(lo), f(hi)
        if flo * fhi > 0:
            n, e = hit(pose.ground_alt_m)
            return n, e, pose.ground_alt_m
        for _ in range(50):
            mid = (lo + hi) / 2
            fm = f(mid)
            if abs(hi - lo) < self.tol_m:
                break
            if (fm > 0) == (flo > 0):
                lo, flo = mid, fm
            else:
                hi = mid
        g = (lo + hi) / 2
        n, e = hit(g)
        return n, e, g

    # ---- public ---------------------------------------------------------------------
    def locate_pixel(self, u: float, v: float, camera: CameraModel, pose: CameraPose,
                     pixel_sigma: tuple[float, float] | None = None) -> GroundFix | None:
        """Ground position of pixel (u, v) with its error; None when the ray misses the ground.

        ``pixel_sigma``: 1-sigma (u, v) uncertainty of the pixel; default ``pixel_min`` each.
        """
        if pixel_sigma is None:
            pixel_sigma = (self.uncertainty.pixel_min, self.uncertainty.pixel_min)
        n, e, g = self._offsets(u, v, camera, pose)
        if not (math.isfinite(n) and math.isfinite(e)):
            return None
        err = self._error(u, v, camera, pose, (n, e), g, pixel_sigma)
        lat, lon = offset_to_wgs84(pose.lat, pose.lon, n, e)
        return GroundFix(float(lat), float(lon), g, n, e, err, (u, v))

    def locate_detection(self, det: Detection, camera: CameraModel, pose: CameraPose) -> GroundFix | None:
        """Ground position of a detection at its class's anchor pixel."""
        mode = self.anchors.get(det.class_name, "centre")
        u, v, shift = anchor_pixel(det.box, mode, camera, pose)
        unc = self.uncertainty
        w, h = det.box[2] - det.box[0], det.box[3] - det.box[1]
        extra = unc.base_shift_frac * shift
        # a box cut by the frame edge has its centre pulled inwards by an unknown amount:
        # up to half its size along that axis (weighs such sightings down in the tracker)
        cut_u = 0.5 * w if det.box[0] <= 1.0 or det.box[2] >= camera.image_width_px - 1.0 else 0.0
        cut_v = 0.5 * h if det.box[1] <= 1.0 or det.box[3] >= camera.image_height_px - 1.0 else 0.0
        su = math.hypot(unc.pixel_min, unc.pixel_frac * w, extra, cut_u)
        sv = math.hypot(unc.pixel_min, unc.pixel_frac * h, extra, cut_v)
        return self.locate_pixel(u, v, camera, pose, (su, sv))

    def geolocate(self, detections: list[Detection], frame: Frame) -> list[GeoDetection]:
        """All detections of a frame that hit the ground, as :class:`GeoDetection`."""
        out = []
        for det in detections:
            fix = self.locate_detection(det, frame.camera, frame.pose)
            if fix is None:
                continue
            out.append(GeoDetection(detection=det, lat=fix.lat, lon=fix.lon, error_m=fix.error_m,
                                    frame_id=frame.frame_id, drone_id=frame.drone_id,
                                    time_s=frame.time_s, wall_time=frame.wall_time))
        return out

    # ---- error propagation ----------------------------------------------------------
    def _error(self, u: float, v: float, camera: CameraModel, pose: CameraPose, ne: tuple[float, float],
               ground: float, pixel_sigma: tuple[float, float]) -> float:
        unc = self.uncertainty
        base = replace(pose, ground_alt_m=ground)
        n0, e0 = ne
        var = np.array([unc.position_m ** 2, unc.position_m ** 2], dtype=np.float64)
        ground_sigma = unc.ground_dem_m if self.dem is not None else unc.ground_flat_m
        height_sigma = math.hypot(unc.altitude_m, ground_sigma)

        def add(pose_p: CameraPose, uu: float, vv: float, delta: float, sigma: float) -> None:
            n1, e1 = pixels_to_ground(uu, vv, camera, pose_p)
            n1, e1 = float(n1), float(e1)
            if not (math.isfinite(n1) and math.isfinite(e1)):
                # the perturbed ray misses the ground (near the horizon): the position is
                # meaningless along that direction; say so with a 1 km error
                if sigma > 0:
                    var[:] += 1.0e6
                return
            var[0] += ((n1 - n0) / delta * sigma) ** 2
            var[1] += ((e1 - e0) / delta * sigma) ** 2

        dh = 0.5
        add(replace(base, alt_amsl_m=base.alt_amsl_m + dh), u, v, dh, height_sigma)
        da = 0.1
        add(replace(base, yaw_deg=base.yaw_deg + da), u, v, da, unc.yaw_deg)
        add(replace(base, gimbal_pitch_deg=base.gimbal_pitch_deg + da), u, v, da, unc.gimbal_pitch_deg)
        if base.stabilized:  # cross-track tilt residual as a body roll with the gimbal unlocked
            tilt = replace(base, stabilized=False, roll_deg=da, pitch_deg=0.0)
        else:
            tilt = replace(base, roll_deg=base.roll_deg + da)
        add(tilt, u, v, da, unc.tilt_deg)
        dp = 1.0
        add(base, u + dp, v, dp, pixel_sigma[0])
        add(base, u, v + dp, dp, pixel_sigma[1])
        return float(math.sqrt(var.sum()))
