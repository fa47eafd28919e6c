"""Distances on the WGS-84 ellipsoid (pyproj's geodesic solver, Karney's algorithm).

One place for "how far apart are these two fixes", used by flight (distance to the first
waypoint), dispatch (grouping incidents into a ticket), vision (association gating) and
the patrol's scoring. Degrees in, metres out.
"""

from __future__ import annotations

from pyproj import Geod

_GEOD = Geod(ellps="WGS84")


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Geodesic distance in metres between two WGS-84 points given in degrees."""
    return float(_GEOD.inv(lon1, lat1, lon2, lat2)[2])
