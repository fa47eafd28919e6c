"""Local metric frames for planning and rendering.

Coverage, footprints and scenes are computed in metres on a transverse Mercator plane
centred on a reference point (scale 1 at the centre, < 1 mm/km distortion within a
county), then brought back to WGS-84. pyproj does the projection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyproj import Transformer


@dataclass(frozen=True)
class LocalFrame:
    """East/north metres around (lat0, lon0) in degrees WGS-84.

    ``to_local(lon, lat) -> (east_m, north_m)`` and ``to_wgs84(east_m, north_m) -> (lon, lat)``
    accept scalars or numpy arrays. Axis order is always lon/lat (x/y) as in GeoJSON.
    """

    lat0: float
    lon0: float
    _fwd: Transformer = field(init=False, repr=False, compare=False)
    _inv: Transformer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        proj = (
            f"+proj=tmerc +lat_0={self.lat0!r} +lon_0={self.lon0!r} +k=1 +x_0=0 +y_0=0 "
            "+ellps=WGS84 +units=m +no_defs"
        )
        object.__setattr__(self, "_fwd", Transformer.from_crs("EPSG:4326", proj, always_xy=True))
        object.__setattr__(self, "_inv", Transformer.from_crs(proj, "EPSG:4326", always_xy=True))

    def to_local(self, lon, lat):
        """WGS-84 degrees -> (east_m, north_m)."""
        e, n = self._fwd.transform(lon, lat)
        return (np.asarray(e) if np.ndim(e) else float(e)), (np.asarray(n) if np.ndim(n) else float(n))

    def to_wgs84(self, east_m, north_m):
        """(east_m, north_m) -> WGS-84 (lon, lat) degrees."""
        lon, lat = self._inv.transform(east_m, north_m)
        return (np.asarray(lon) if np.ndim(lon) else float(lon)), (np.asarray(lat) if np.ndim(lat) else float(lat))
