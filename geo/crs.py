"""China's map coordinate systems: WGS-84 <-> GCJ-02 <-> BD-09.

GCJ-02 (AMap/Gaode, Tencent) is WGS-84 plus a published obfuscation offset (a few hundred
metres); BD-09 (Baidu) adds a further rotation/offset on top of GCJ-02. The forward
transforms are closed form; both inverses are found by fixed-point iteration to below
1e-10 degrees (about 0.01 mm), so round trips are exact to well under 0.01 m. Outside mainland China GCJ-02 equals WGS-84 by convention.
All functions take and return (lon, lat) in degrees, scalars or numpy arrays.
"""

from __future__ import annotations

import math

import numpy as np

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by GCJ-02, metres
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = math.pi * 3000.0 / 180.0

CRS_NAMES = ("wgs84", "gcj02", "bd09")


def in_china(lon, lat):
    """True where GCJ-02 applies (the usual mainland bounding box)."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    return (lon > 72.004) & (lon < 137.8347) & (lat > 0.8293) & (lat < 55.8271)


def _transform_lat(x, y):
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x, y):
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def _unwrap(lon, lat, scalar):
    if scalar:
        return float(lon), float(lat)
    return lon, lat


def wgs84_to_gcj02(lon, lat):
    """WGS-84 -> GCJ-02 (degrees)."""
    scalar = np.ndim(lon) == 0 and np.ndim(lat) == 0
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    dlat = _transform_lat(lon - 105.0, lat - 35.0)
    dlon = _transform_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    inside = in_china(lon, lat)
    return _unwrap(np.where(inside, lon + dlon, lon), np.where(inside, lat + dlat, lat), scalar)


def gcj02_to_wgs84(lon, lat, tol_deg: float = 1e-10, max_iter: int = 30):
    """GCJ-02 -> WGS-84 by fixed-point iteration (error < ``tol_deg``, ~1e-5 m by default)."""
    return _invert(wgs84_to_gcj02, lon, lat, (lon, lat), tol_deg, max_iter)


def _invert(forward, lon, lat, start, tol_deg: float, max_iter: int):
    """Solve ``forward(x) = (lon, lat)`` by fixed-point iteration from ``start``.

    The offsets are smooth and small (|d offset / d position| << 1), so x <- x - (forward(x) - target)
    converges geometrically; stops once every point moves less than ``tol_deg`` degrees.
    """
    scalar = np.ndim(lon) == 0 and np.ndim(lat) == 0
    tlon = np.asarray(lon, dtype=np.float64)
    tlat = np.asarray(lat, dtype=np.float64)
    xlon, xlat = (np.array(v, dtype=np.float64) for v in start)
    for _ in range(max_iter):
        flon, flat = forward(xlon, xlat)
        dlon, dlat = np.asarray(flon) - tlon, np.asarray(flat) - tlat
        xlon, xlat = xlon - dlon, xlat - dlat
        if np.all(np.abs(dlon) < tol_deg) and np.all(np.abs(dlat) < tol_deg):
            break
    return _unwrap(xlon, xlat, scalar)


def gcj02_to_bd09(lon, lat):
    """GCJ-02 -> BD-09 (degrees)."""
    scalar = np.ndim(lon) == 0 and np.ndim(lat) == 0
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return _unwrap(z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006, scalar)


def bd09_to_gcj02_closed_form(lon, lat):
    """BD-09 -> GCJ-02 by the published closed-form inverse (good to about 1e-6 deg, ~0.1 m)."""
    scalar = np.ndim(lon) == 0 and np.ndim(lat) == 0
    x = np.asarray(lon, dtype=np.float64) - 0.0065
    y = np.asarray(lat, dtype=np.float64) - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return _unwrap(z * np.cos(theta), z * np.sin(theta), scalar)


def bd09_to_gcj02(lon, lat, tol_deg: float = 1e-11, max_iter: int = 20):
    """BD-09 -> GCJ-02: the closed form refined by fixed-point iteration on :func:`gcj02_to_bd09`.

    The closed form alone is off by up to ~0.1 m; iterating brings the round trip below
    ``tol_deg`` (1e-11 deg is ~1 µm).
    """
    return _invert(gcj02_to_bd09, lon, lat, bd09_to_gcj02_closed_form(lon, lat), tol_deg, max_iter)


def wgs84_to_bd09(lon, lat):
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon, lat):
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def to_wgs84(lon, lat, crs: str):
    """Convert from ``crs`` (one of :data:`CRS_NAMES`) to WGS-84."""
    if crs == "wgs84":
        return lon, lat
    if crs == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if crs == "bd09":
        return bd09_to_wgs84(lon, lat)
    raise ValueError(f"unknown CRS {crs!r}; expected one of {', '.join(CRS_NAMES)}")


def from_wgs84(lon, lat, crs: str):
    """Convert WGS-84 to ``crs`` for display on a Chinese basemap."""
    if crs == "wgs84":
        return lon, lat
    if crs == "gcj02":
        return wgs84_to_gcj02(lon, lat)
    if crs == "bd09":
        return wgs84_to_bd09(lon, lat)
    raise ValueError(f"unknown CRS {crs!r}; expected one of {', '.join(CRS_NAMES)}")
