"""A procedural countryside seen through a survey camera.

Every frame casts each pixel to the ground plane with :func:`geo.georef.pixels_to_ground`
(on a coarse 8-pixel lattice, linearly upsampled: exact for the plane's homography to well
under a centimetre) and evaluates a procedural world there in local tmerc metres
(:class:`geo.projection.LocalFrame` around the world origin). The ground is a pure function
of position, so the same point looks the same from every pose, drone and frame. Planted
objects are ground sprites (see :mod:`simulators.camera.sprites`) warped in with
:func:`geo.georef.ground_to_pixels` — the same conventions geolocation inverts.

The scene: rice/vegetable/fallow parcels with bunds in a rotated cadastral grid (seasonal
colours), farm roads and canals along parcel edges, an expressway band, forest on the
hills, ponds, villages of tiled houses, multi-scale texture noise, sun shadows and a
per-world light colour. Everything is deterministic in the world seed. The land-cover
fields repeat with period ``extent_m`` (so the world has no edge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from geo.camera import CameraModel
from geo.georef import CameraPose, ground_to_pixels, pixels_to_ground
from geo.projection import LocalFrame
from simulators.camera.sprites import Sprite, make_sprite
from simulators.scenario import PlantedObject

_LATTICE_PX = 8  # pixel spacing of the exact ray-cast lattice
_LC_RES_M = 4.0  # land-cover raster resolution, metres per pixel
_TEX_RES_M = 0.25  # fine texture resolution
_TEX_PX = 512  # fine texture period in pixels (128 m)

# material ids for the colour look-up table
_FIELD, _BUND, _ROAD, _WATER, _FOREST, _VILLAGE, _ROOF, _EXPRESS, _LANE, _SKY = range(10)
_N_MAT = 10

_SEASONS = ("spring", "summer", "autumn", "winter")


@dataclass(frozen=True)
class TruthBox:
    """A planted object in a frame: pixel box (x1, y1, x2, y2) clipped to the image and the
    fraction of its unclipped box area that is inside the image."""

    object_id: str
    kind: str
    box: tuple[float, float, float, float]
    visible_fraction: float


@dataclass
class Rendered:
    """A rendered frame: ``image`` H x W x 3 BGR uint8 and ground truth for planted objects
    (incidents and look-alikes alike; look-alikes carry their own kind)."""

    image: np.ndarray
    truth: list[TruthBox] = field(default_factory=list)


def _hash_u32(a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    """Integer hash of two int32 lattices (wrapping uint32 arithmetic)."""
    h = (a.astype(np.uint32) * np.uint32(0x27D4EB2D)) ^ (b.astype(np.uint32) * np.uint32(0x165667B1))
    h ^= np.uint32(seed & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    return h


def _periodic_noise(rng: np.random.Generator, size: int, sigma_px: float) -> np.ndarray:
    """Seamless (periodic) smooth noise in [0, 1], ``size`` x ``size`` float32, via FFT filtering."""
    white = rng.standard_normal((size, size))
    f = np.fft.fftfreq(size)
    g = np.exp(-2 * (np.pi * sigma_px) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))
    n = np.real(np.fft.ifft2(np.fft.fft2(white) * g))
    n = (n - n.mean()) / (n.std() + 1e-9)
    return (0.5 + 0.18 * n).clip(0, 1).astype(np.float32)


class World:
    """A procedural scene around (``origin_lat``, ``origin_lon``) with planted objects.

    ``seed`` fixes everything (layout, season, light, textures, object look);
    ``ground_alt_m`` is the flat ground elevation in m AMSL; ``extent_m`` is the land-cover
    period in metres. Render frames with :meth:`render`.
    """

    def __init__(self, seed: int, origin_lat: float, origin_lon: float, ground_alt_m: float,
                 objects: list[PlantedObject] | tuple = (), extent_m: float = 3000.0) -> None:
        self.seed = int(seed)
        self.origin_lat = float(origin_lat)
        self.origin_lon = float(origin_lon)
        self.ground_alt_m = float(ground_alt_m)
        self.extent_m = float(extent_m)
        self.frame = LocalFrame(self.origin_lat, self.origin_lon)
        rng = np.random.default_rng([self.seed, 0xCA3])
        self.season = _SEASONS[int(rng.integers(4))]
        self._build_layout(rng)
        self._build_rasters(rng)
        self._build_palette(rng)
        wind = rng.uniform(0, 2 * np.pi)
        sun = rng.uniform(0, 2 * np.pi)
        self.wind_en = (math.sin(wind), math.cos(wind))
        self.sun_en = (math.sin(sun), math.cos(sun))
        self.objects = list(objects)
        self.sprites: list[Sprite] = []
        for o in self.objects:
            e, n = self.frame.to_local(o.lon, o.lat)
            self.sprites.append(make_sprite(o.id, o.kind, float(e), float(n), o.heading_deg, o.size_m,
                                            self.seed, self.wind_en, self.sun_en))
        self._lattice_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def from_scenario(cls, scenario, extent_m: float = 4000.0) -> World:
        """The world of a :class:`simulators.scenario.Scenario`: its seed, home as origin,
        ground elevation and planted objects."""
        return cls(scenario.seed, scenario.home_lat, scenario.home_lon, scenario.ground_alt_m,
                   scenario.objects, extent_m=extent_m)

    # --- construction -----------------------------------------------------------------
    def _build_layout(self, rng: np.random.Generator) -> None:
        self.theta = float(rng.uniform(0, np.pi / 2))  # cadastral grid rotation
        self.cell_a = float(rng.uniform(35, 70))  # parcel length (m)
        self.cell_b = float(rng.uniform(14, 30))  # parcel width (m)
        self.row_offset = rng.uniform(0, 1, 1024).astype(np.float32)
        self.road_rows = rng.random(1024) < 0.12
        self.canal_rows = (rng.random(1024) < 0.08) & ~self.road_rows
        self.road_w = float(rng.uniform(3.5, 6.0))
        self.canal_w = float(rng.uniform(3.0, 6.0))
        ang = rng.uniform(0, np.pi)
        self.exp_dir = (math.cos(ang), math.sin(ang))  # normal of the expressway line (e, n)
        self.exp_c = float(rng.uniform(-400, 400))
        self.exp_half_w = float(rng.uniform(11, 16))
        self.house_a = float(rng.uniform(10, 14))
        self.house_b = float(rng.uniform(8, 11))

    def _build_rasters(self, rng: np.random.Generator) -> None:
        n = int(round(self.extent_m / _LC_RES_M))
        self.lc_size = n
        forest = _periodic_noise(rng, n, 40)  # ~160 m blobs
        water = _periodic_noise(rng, n, 12)  # ponds ~50 m
        village = _periodic_noise(rng, n, 30)
        frac = rng.uniform(0.08, 0.25, 3)  # per-world share of forest / water / village
        self.lc_thresh = np.array([np.quantile(x, 1 - f) for x, f in zip((forest, water, village), frac * [1, 0.3, 1], strict=True)],
                                  np.float32)
        self.lc = np.stack([forest, water, village], -1)
        fine = _periodic_noise(rng, _TEX_PX, 1.5)  # 0.4 m grain
        mid = _periodic_noise(rng, _TEX_PX, 10)  # 2.5 m crowns / moisture
        y = np.arange(_TEX_PX, dtype=np.float32)
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * y / (_TEX_PX / 100))[:, None] * np.ones((1, _TEX_PX), np.float32)
        self.tex = np.stack([fine, mid, stripes], -1).astype(np.float32)

    def _build_palette(self, rng: np.random.Generator) -> None:
        """A 10 x 256 BGR colour table (material x variant) with this world's light baked in."""
        s = self.season
        field_sets = {
            "spring": [(60, 150, 110), (80, 130, 120), (70, 170, 130), (60, 100, 120), (40, 160, 150)],
            "summer": [(40, 140, 60), (50, 160, 70), (30, 120, 50), (60, 150, 90), (45, 130, 80)],
            "autumn": [(60, 170, 200), (70, 180, 210), (50, 150, 185), (60, 120, 150), (50, 140, 100)],
            "winter": [(70, 100, 130), (80, 110, 140), (60, 120, 110), (90, 120, 135), (50, 110, 90)],
        }[s]
        lut = np.zeros((_N_MAT, 256, 3), np.float32)
        base = np.array(field_sets, np.float32)
        idx = rng.integers(0, len(base), 256)
        lut[_FIELD] = base[idx] * rng.uniform(0.85, 1.15, (256, 1))
        self.field_kind = (idx % 3 == 1).astype(np.uint8)  # vegetable rows get stripes
        lut[_BUND] = np.array((90, 140, 130) if s in ("spring", "summer") else (90, 130, 150)) * rng.uniform(
            0.9, 1.1, (256, 1))
        lut[_ROAD] = np.array((150, 155, 158)) * rng.uniform(0.85, 1.1, (256, 1))
        lut[_WATER] = np.array([(90, 90, 50), (80, 100, 70), (100, 95, 60)], np.float32)[rng.integers(0, 3, 256)]
        forest = (30, 80, 35) if s != "autumn" else (35, 85, 70)
        lut[_FOREST] = np.array(forest) * rng.uniform(0.75, 1.2, (256, 1))
        lut[_VILLAGE] = np.array((140, 145, 150)) * rng.uniform(0.85, 1.1, (256, 1))
        roofs = np.array([(50, 60, 150), (40, 50, 120), (110, 110, 105), (85, 85, 80), (60, 75, 160),
                          (150, 150, 148), (70, 70, 72)], np.float32)
        lut[_ROOF] = roofs[rng.integers(0, len(roofs), 256)] * rng.uniform(0.9, 1.1, (256, 1))
        lut[_EXPRESS] = np.array((80, 82, 84)) * rng.uniform(0.95, 1.05, (256, 1))
        lut[_LANE] = (225, 225, 225)
        lut[_SKY] = (230, 200, 170)
        light = rng.uniform(0.8, 1.2) * np.array([rng.uniform(0.9, 1.1), 1.0, rng.uniform(0.9, 1.1)])
        self.light = light
        self.lut = np.clip(lut * light, 0, 255).astype(np.uint8).reshape(-1, 3)
        self.tex_amp = np.array([0.35, 0.3, 0.25, 0.12, 0.7, 0.3, 0.15, 0.12, 0.05, 0.0], np.float32)

    # --- rendering ----------------------------------------------------------------------
    def camera_local(self, pose: CameraPose) -> tuple[float, float]:
        """Local (east_m, north_m) of the point under the camera."""
        e, n = self.frame.to_local(pose.lon, pose.lat)
        return float(e), float(n)

    def _ground_maps(self, camera: CameraModel, pose: CameraPose) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel local (east, north) of the ground seen at each pixel centre (NaN = sky)."""
        w, h = camera.image_width_px, camera.image_height_px
        key = (camera.image_width_px, camera.image_height_px)
        if key not in self._lattice_cache:
            gu = np.arange(0, w + _LATTICE_PX, _LATTICE_PX, dtype=np.float64)
            gv = np.arange(0, h + _LATTICE_PX, _LATTICE_PX, dtype=np.float64)
            self._lattice_cache[key] = np.meshgrid(gu, gv)
        uu, vv = self._lattice_cache[key]
        dn, de = pixels_to_ground(uu + 0.5, vv + 0.5, camera, pose)
        ce, cn = self.camera_local(pose)
        lat = np.stack([de + ce, dn + cn], -1).astype(np.float32)
        # lattice node k sits at pixel k*L; resize maps node centres so pixel i samples node i/L
        gh, gw = lat.shape[:2]
        xs = np.arange(w, dtype=np.float32) / _LATTICE_PX
        ys = np.arange(h, dtype=np.float32) / _LATTICE_PX
        mx, my = np.meshgrid(xs, ys)
        out = cv2.remap(lat, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        del gh, gw
        return out[..., 0], out[..., 1]

    def ground_image(self, e: np.ndarray, n: np.ndarray) -> np.ndarray:
        """BGR uint8 colours of the procedural ground at local (east, north) arrays (no objects)."""
        c, s = math.cos(self.theta), math.sin(self.theta)
        a = e * c + n * s
        b = -e * s + n * c
        # land cover (periodic), bilinear
        lcx = (e / _LC_RES_M) % self.lc_size
        lcy = (n / _LC_RES_M) % self.lc_size
        lc = cv2.remap(self.lc, lcx.astype(np.float32), lcy.astype(np.float32), cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_WRAP)
        tx = ((a / _TEX_RES_M) % _TEX_PX).astype(np.float32)
        ty = ((b / _TEX_RES_M) % _TEX_PX).astype(np.float32)
        tex = cv2.remap(self.tex, tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        # cadastral parcels
        bb = b / self.cell_b
        ib = np.floor(bb).astype(np.int32)
        fb = (bb - ib) * self.cell_b  # metres into the parcel across
        row = ib & 1023
        aa = a / self.cell_a + self.row_offset[row]
        ia = np.floor(aa).astype(np.int32)
        fa = (aa - ia) * self.cell_a
        h = _hash_u32(ia, ib, self.seed)
        var = (h & np.uint32(255)).astype(np.int32)
        mat = np.full(e.shape, _FIELD, np.int32)
        mat[(fb < 0.7) | (fa < 0.7)] = _BUND
        forest = lc[..., 0] > self.lc_thresh[0]
        mat[forest] = _FOREST
        village = lc[..., 2] > self.lc_thresh[2]
        if village.any():
            ha = a / self.house_a
            hb = b / self.house_b
            ja, jb = np.floor(ha), np.floor(hb)
            la, lb = ha - ja, hb - jb
            hh = _hash_u32(ja.astype(np.int32), jb.astype(np.int32), self.seed ^ 0x5A5A)
            house = (la > 0.12) & (la < 0.88) & (lb > 0.15) & (lb < 0.85) & ((hh & np.uint32(7)) != 0)
            mat[village] = _VILLAGE
            roof = village & house
            mat[roof] = _ROOF
            ridge = roof & (np.abs(lb - 0.5) < 0.04)
            var = np.where(roof, (hh >> np.uint32(8)).astype(np.int32) & 255, var)
            var[ridge] = (var[ridge] + 1) & 255
        road = self.road_rows[row] & (fb < self.road_w)
        canal = self.canal_rows[row] & (fb < self.canal_w)
        mat[canal | (lc[..., 1] > self.lc_thresh[1])] = _WATER
        mat[road] = _ROAD
        d = e * self.exp_dir[0] + n * self.exp_dir[1] - self.exp_c
        ad = np.abs(d)
        exp = ad < self.exp_half_w
        mat[exp] = _EXPRESS
        along = -e * self.exp_dir[1] + n * self.exp_dir[0]
        lane = exp & ((ad > self.exp_half_w - 0.8) | (np.abs(ad - self.exp_half_w / 2) < 0.12) & ((along % 9.0) < 4.0)
                      | (ad < 0.35))
        mat[lane] = _LANE
        mat[np.isnan(e)] = _SKY
        img = self.lut[mat * 256 + var]
        amp = self.tex_amp[mat]
        veg = (mat == _FIELD) & (self.field_kind[var] == 1)
        shade = 1.0 + amp * (tex[..., 0] - 0.5) + amp * (tex[..., 1] - 0.5) - veg * 0.25 * tex[..., 2]
        if village.any():
            shade = shade * np.where(mat == _ROOF, 1.0 - 0.18 * (lb > 0.5), 1.0)
        return cv2.multiply(img, np.dstack([shade, shade, shade]), dtype=cv2.CV_8U)

    def render(self, camera: CameraModel, pose: CameraPose) -> Rendered:
        """The camera's view from ``pose`` with ground truth for every visible planted object."""
        e, n = self._ground_maps(camera, pose)
        img = self.ground_image(e, n)
        truth: list[TruthBox] = []
        ce, cn = self.camera_local(pose)
        w, h = camera.image_width_px, camera.image_height_px
        for sp in self.sprites:
            se, sn = sp.corners_ground()
            u, v = ground_to_pixels(sn - cn, se - ce, camera, pose)
            if not (np.all(np.isfinite(u)) and np.all(np.isfinite(v))):
                continue
            x0, x1 = int(max(0, math.floor(u.min()))), int(min(w, math.ceil(u.max())))
            y0, y1 = int(max(0, math.floor(v.min()))), int(min(h, math.ceil(v.max())))
            if x1 > x0 and y1 > y0:
                _blend_sprite(img, sp, u, v, x0, y0, x1, y1)
            tb = _truth_box(sp, camera, pose, ce, cn)
            if tb is not None:
                truth.append(tb)
        return Rendered(img, truth)


def _blend_sprite(img: np.ndarray, sp: Sprite, u: np.ndarray, v: np.ndarray, x0: int, y0: int, x1: int,
                  y1: int) -> None:
    sh, sw = sp.rgba.shape[:2]
    src = np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], np.float32)
    dst = np.stack([u - x0, v - y0], -1).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    # pixel-centre convention: sprite corner (0,0) is the outer corner
    patch = cv2.warpPerspective(sp.rgba, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    a = patch[..., 3:4].astype(np.float32) / 255.0
    roi = img[y0:y1, x0:x1]
    roi[:] = (roi * (1 - a) + patch[..., :3] * a).astype(np.uint8)


def _truth_box(sp: Sprite, camera: CameraModel, pose: CameraPose, ce: float, cn: float) -> TruthBox | None:
    te, tn = sp.truth_ground()
    u, v = ground_to_pixels(tn - cn, te - ce, camera, pose)
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(v))):
        return None
    w, h = camera.image_width_px, camera.image_height_px
    bx1, by1, bx2, by2 = float(u.min()), float(v.min()), float(u.max()), float(v.max())
    cx1, cy1, cx2, cy2 = max(bx1, 0.0), max(by1, 0.0), min(bx2, float(w)), min(by2, float(h))
    if cx2 <= cx1 or cy2 <= cy1:
        return None
    full = max((bx2 - bx1) * (by2 - by1), 1e-9)
    frac = (cx2 - cx1) * (cy2 - cy1) / full
    return TruthBox(sp.object_id, sp.kind, (cx1, cy1, cx2, cy2), float(min(1.0, frac)))
