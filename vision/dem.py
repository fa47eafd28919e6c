"""Digital elevation model (GeoTIFF) lookup for geolocation over hilly ground.

Reading: ``tifffile`` (pure Python, numpy only) for the raster and its GeoTIFF tags
(ModelPixelScale + ModelTiepoint, or ModelTransformation; GeoKeys for the CRS, EPSG code
of a geographic or projected CRS). pyproj maps WGS-84 to the raster's CRS. Heights are
metres above mean sea level as stored; the nodata value (GDAL_NODATA tag) becomes NaN.
Sampling is bilinear in pixel-is-area convention (tie point at the corner of the
top-left pixel; pixel-is-point rasters are shifted by half a pixel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# GeoTIFF tag numbers
_PIXEL_SCALE, _TIEPOINT, _TRANSFORM, _GEOKEYS, _GDAL_NODATA = 33550, 33922, 34264, 34735, 42113
_GT_RASTER_TYPE, _GEOGRAPHIC_TYPE, _PROJECTED_TYPE = 1025, 2048, 3072
_PIXEL_IS_POINT = 2


class DemError(ValueError):
    """A DEM file that cannot be used; the message names the file and what is wrong."""


@dataclass
class Dem:
    """A north-up elevation raster.

    ``heights`` is rows x cols (m AMSL, NaN = no data); ``affine`` = (x0, dx, y0, dy) maps
    pixel (col, row) corner to CRS coordinates x = x0 + col*dx, y = y0 + row*dy; ``crs`` is
    anything pyproj accepts ("EPSG:4326" for lon/lat degrees).
    """

    heights: np.ndarray
    affine: tuple[float, float, float, float]
    crs: str = "EPSG:4326"
    source: str = "<memory>"
    _to_crs: object | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.heights = np.asarray(self.heights, dtype=np.float64)
        if self.heights.ndim != 2 or min(self.heights.shape) < 2:
            raise DemError(f"{self.source}: DEM must be a 2-D raster of at least 2x2, got shape {self.heights.shape}")
        if str(self.crs).upper() not in ("EPSG:4326", "OGC:CRS84"):
            from pyproj import Transformer

            self._to_crs = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)

    @classmethod
    def read(cls, path: str | Path) -> Dem:
        """Load a single-band GeoTIFF DEM."""
        p = Path(path)
        try:
            import tifffile
        except ImportError:  # pragma: no cover - depends on the install
            raise DemError(f"{p}: reading GeoTIFF DEMs needs the 'tifffile' package (pip install tifffile)") from None
        if not p.is_file():
            raise DemError(f"{p}: DEM file not found")
        try:
            with tifffile.TiffFile(p) as tif:
                page = tif.pages[0]
                data = page.asarray()
                tags = {t.code: t.value for t in page.tags.values()}
        except Exception as e:  # tifffile raises several types for broken files
            raise DemError(f"{p}: not a readable TIFF: {e}") from None
        if data.ndim == 3:
            if 1 in data.shape:
                data = data.squeeze()
            else:
                raise DemError(f"{p}: DEM must have one band, got shape {data.shape}")
        heights = data.astype(np.float64)
        nodata = tags.get(_GDAL_NODATA)
        if nodata is not None:
            try:
                heights[heights == float(str(nodata).strip("\x00 "))] = np.nan
            except ValueError:
                pass
        geokeys = _geokeys(tags.get(_GEOKEYS))
        if _TRANSFORM in tags:
            m = np.asarray(tags[_TRANSFORM], dtype=np.float64).reshape(4, 4)
            if abs(m[0, 1]) > 1e-12 or abs(m[1, 0]) > 1e-12:
                raise DemError(f"{p}: rotated DEM rasters are not supported")
            affine = (m[0, 3], m[0, 0], m[1, 3], m[1, 1])
        elif _PIXEL_SCALE in tags and _TIEPOINT in tags:
            sx, sy = float(tags[_PIXEL_SCALE][0]), float(tags[_PIXEL_SCALE][1])
            tp = [float(v) for v in tags[_TIEPOINT][:6]]
            i, j, x, y = tp[0], tp[1], tp[3], tp[4]
            affine = (x - i * sx, sx, y + j * sy, -sy)
        else:
            raise DemError(f"{p}: no GeoTIFF georeferencing tags (ModelPixelScale/ModelTiepoint or ModelTransformation)")
        if geokeys.get(_GT_RASTER_TYPE) == _PIXEL_IS_POINT:
            affine = (affine[0] - affine[1] / 2, affine[1], affine[2] - affine[3] / 2, affine[3])
        epsg = geokeys.get(_PROJECTED_TYPE) or geokeys.get(_GEOGRAPHIC_TYPE) or 4326
        if epsg == 32767:
            raise DemError(f"{p}: user-defined CRS is not supported; reproject the DEM to an EPSG CRS")
        return cls(heights=heights, affine=affine, crs=f"EPSG:{int(epsg)}", source=str(p))

    def height(self, lat, lon):
        """Ground height (m AMSL) at WGS-84 points; NaN outside the raster or on no-data."""
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        if self._to_crs is not None:
            x, y = self._to_crs.transform(lon, lat)
            x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        else:
            x, y = lon, lat
        x0, dx, y0, dy = self.affine
        col = (x - x0) / dx - 0.5  # pixel centres
        row = (y - y0) / dy - 0.5
        rows, cols = self.heights.shape
        inside = (col >= -0.5) & (col <= cols - 0.5) & (row >= -0.5) & (row <= rows - 0.5)
        c = np.clip(col, 0, cols - 1)
        r = np.clip(row, 0, rows - 1)
        c0 = np.clip(np.floor(c).astype(np.int64), 0, cols - 2)
        r0 = np.clip(np.floor(r).astype(np.int64), 0, rows - 2)
        fc, fr = c - c0, r - r0
        h = self.heights
        v = (h[r0, c0] * (1 - fc) * (1 - fr) + h[r0, c0 + 1] * fc * (1 - fr)
             + h[r0 + 1, c0] * (1 - fc) * fr + h[r0 + 1, c0 + 1] * fc * fr)
        out = np.where(inside, v, np.nan)
        return float(out) if out.ndim == 0 else out

    def write(self, path: str | Path) -> None:
        """Save as a GeoTIFF (float32, pixel-is-area) that :meth:`read` and GDAL understand."""
        import tifffile

        x0, dx, y0, dy = self.affine
        epsg = int(str(self.crs).split(":")[1])
        geographic = self._to_crs is None
        keys = [1, 1, 0, 3, 1024, 0, 1, 2 if geographic else 1, _GT_RASTER_TYPE, 0, 1, 1,
                _GEOGRAPHIC_TYPE if geographic else _PROJECTED_TYPE, 0, 1, epsg]
        extratags = [
            (_PIXEL_SCALE, "d", 3, (dx, -dy, 0.0), False),
            (_TIEPOINT, "d", 6, (0.0, 0.0, 0.0, x0, y0, 0.0), False),
            (_GEOKEYS, "H", len(keys), tuple(keys), False),
        ]
        data = np.where(np.isnan(self.heights), -9999.0, self.heights).astype(np.float32)
        extratags.append((_GDAL_NODATA, "s", 0, "-9999", False))
        tifffile.imwrite(Path(path), data, extratags=extratags)


def _geokeys(raw) -> dict[int, int]:
    """GeoKeyDirectory -> {key id: value} for the short-valued keys we need."""
    if raw is None:
        return {}
    v = [int(x) for x in raw]
    out: dict[int, int] = {}
    n = v[3] if len(v) >= 4 else 0
    for k in range(n):
        key, loc, _count, val = v[4 + 4 * k: 8 + 4 * k]
        if loc == 0:
            out[key] = val
    return out
