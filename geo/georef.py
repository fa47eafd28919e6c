"""Pixel <-> ground geometry for a gimballed pinhole camera over flat ground.

Frames: world NED (north, east, down) in metres, origin under the drone; body x forward,
y right, z down; camera (OpenCV) x right, y down, z along the optical axis. Angles in
degrees. Gimbal pitch 0 looks forward, -90 straight down (nadir). With a stabilised gimbal
(the default, as on survey drones) the camera ignores the vehicle's roll and pitch and only
follows its yaw. The same functions serve the synthetic camera (ground -> pixel) and
geolocation (pixel -> ground), so their conventions cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from geo.camera import CameraModel

# camera axes expressed in body axes at zero gimbal angles: cam x -> body y, cam y -> body z, cam z -> body x
_CAM_TO_BODY0 = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class CameraPose:
    """Where the camera is and where it looks.

    lat/lon in degrees WGS-84; ``alt_amsl_m`` camera altitude above mean sea level (m);
    ``ground_alt_m`` ground elevation (m AMSL) under the scene (flat-ground assumption);
    yaw 0 = north, clockwise positive; gimbal pitch -90 = nadir.
    """

    lat: float
    lon: float
    alt_amsl_m: float
    ground_alt_m: float
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    gimbal_pitch_deg: float = -90.0
    gimbal_yaw_deg: float = 0.0
    stabilized: bool = True

    @property
    def height_m(self) -> float:
        """Camera height above the ground plane in metres."""
        return self.alt_amsl_m - self.ground_alt_m


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def camera_to_ned(pose: CameraPose) -> np.ndarray:
    """3x3 rotation taking camera-frame vectors to NED."""
    r = math.radians
    if pose.stabilized:
        body = _rz(r(pose.yaw_deg))
    else:
        body = _rz(r(pose.yaw_deg)) @ _ry(r(pose.pitch_deg)) @ _rx(r(pose.roll_deg))
    return body @ _rz(r(pose.gimbal_yaw_deg)) @ _ry(r(pose.gimbal_pitch_deg)) @ _CAM_TO_BODY0


def pixels_to_ground(u, v, camera: CameraModel, pose: CameraPose):
    """Pixel coordinates -> ground offsets (north_m, east_m) from the point under the camera.

    ``u``, ``v`` are pixel columns/rows (scalars or arrays, pixel centres at +0.5). Rays that
    do not hit the ground (at or above the horizon) give NaN.
    """
    fx, fy, cx, cy = camera.intrinsics()
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    d = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1)
    d_ned = d @ camera_to_ned(pose).T
    down = d_ned[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(down > 1e-9, pose.height_m / down, np.nan)
    return d_ned[..., 0] * t, d_ned[..., 1] * t


def ground_to_pixels(north_m, east_m, camera: CameraModel, pose: CameraPose, up_m=0.0):
    """Ground offsets (north_m, east_m, optional height ``up_m`` above ground) -> pixel (u, v).

    Points behind the camera give NaN. Inverse of :func:`pixels_to_ground`.
    """
    fx, fy, cx, cy = camera.intrinsics()
    n = np.asarray(north_m, dtype=np.float64)
    e = np.asarray(east_m, dtype=np.float64)
    d = pose.height_m - np.asarray(up_m, dtype=np.float64)
    p_ned = np.stack(np.broadcast_arrays(n, e, d), axis=-1)
    p_cam = p_ned @ camera_to_ned(pose)  # R^T applied row-wise
    z = p_cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(z > 1e-9, fx * p_cam[..., 0] / z + cx, np.nan)
        v = np.where(z > 1e-9, fy * p_cam[..., 1] / z + cy, np.nan)
    return u, v
