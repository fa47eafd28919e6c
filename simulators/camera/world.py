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

import functools
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
_VIL_RES_M = 0.2  # village pattern resolution

# material ids for the colour look-up table
_FIELD, _BUND, _FOREST, _VILLAGE, _ROOF, _WATER, _ROAD, _EXPRESS, _LANE, _SKY = range(10)  # by priority
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


_N_TEXTURES = 8


@functools.lru_cache(maxsize=_N_TEXTURES)
def _texture(variant: int) -> np.ndarray:
    """Fine ground texture (shared by worlds; ``variant`` < ``_N_TEXTURES``): 512 x 512 x 4 uint8
    channels grain (128 = neutral), crop-row stripes, grain, grain. Period 128 m."""
    rng = np.random.default_rng([variant, 0x7E7])
    fine = _periodic_noise(rng, _TEX_PX, 1.5)  # 0.4 m grain
    mid = _periodic_noise(rng, _TEX_PX, 10)  # 2.5 m crowns / moisture
    y = np.arange(_TEX_PX, dtype=np.float32)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * y / (_TEX_PX / 100))[:, None] * np.ones((1, _TEX_PX), np.float32)
    grain = np.clip(128 + 140 * (fine + mid - 1.0), 0, 255)
    tex = np.stack([grain, 255 * stripes, grain, grain], -1).astype(np.uint8)
    tex.flags.writeable = False
    return tex


@functools.lru_cache(maxsize=64)
def local_frame(lat0: float, lon0: float) -> LocalFrame:
    """A cached :class:`LocalFrame` (building pyproj transformers costs ~50 ms)."""
    return LocalFrame(lat0, lon0)


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
        self.frame = local_frame(self.origin_lat, self.origin_lon)
        rng = np.random.default_rng([self.seed, 0xCA3])
        self.season = _SEASONS[int(rng.integers(4))]
        self._build_layout(rng)
        self._build_rasters(rng)
        self._build_village(rng)
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
        self.tex = _texture(int(rng.integers(_N_TEXTURES)))

    def _build_village(self, rng: np.random.Generator) -> None:
        """A periodic block of 16 x 16 house lots (material, colour variant, roof-slope shade)."""
        lots = 16
        la, lb = self.house_a / _VIL_RES_M, self.house_b / _VIL_RES_M  # lot size in pixels
        h, w = int(round(lots * lb)), int(round(lots * la))
        tex = np.zeros((h, w, 4), np.uint8)
        tex[..., 0] = _VILLAGE
        tex[..., 2] = 128
        for j in range(lots):
            for i in range(lots):
                if rng.random() > 0.85:
                    continue
                sz = rng.uniform(0.6, 0.8)
                cx, cy = (i + 0.5) * la, (j + 0.5) * lb
                x0, x1 = int(cx - sz * la / 2), int(cx + sz * la / 2)
                y0, y1 = int(cy - sz * 0.85 * lb / 2), int(cy + sz * 0.85 * lb / 2)
                var = int(rng.integers(0, 255))
                tex[y0:y1, x0:x1, :3] = (_ROOF, var, 128)
                tex[int(cy):y1, x0:x1, 2] = 106  # the far slope is in shade
                tex[int(cy) - 1:int(cy) + 1, x0:x1, 1] = var + 1  # ridge
        self.village_tex = tex

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
        lut8 = np.clip(lut * light, 0, 255).astype(np.uint8).reshape(-1, 3)
        self.lut32 = np.concatenate([lut8, np.full((len(lut8), 1), 255, np.uint8)], 1).view(np.uint32)[:, 0]
        amp = {_FIELD: 0.35, _BUND: 0.3, _ROAD: 0.25, _WATER: 0.12, _FOREST: 0.7, _VILLAGE: 0.3, _ROOF: 0.15,
               _EXPRESS: 0.12, _LANE: 0.05, _SKY: 0.0}
        self.tex_amp = np.array([amp[i] for i in range(_N_MAT)], np.float32)

    # --- rendering ----------------------------------------------------------------------
    def camera_local(self, pose: CameraPose) -> tuple[float, float]:
        """Local (east_m, north_m) of the point under the camera."""
        e, n = self.frame.to_local(pose.lon, pose.lat)
        return float(e), float(n)

    def _ground_maps(self, camera: CameraModel, pose: CameraPose) -> np.ndarray:
        """Per-pixel ground coordinates, H x W x 9 float32 channels: local east, north (m),
        texture x, y and village-pattern x, y (pixels, unwrapped near the camera so that
        linear interpolation never crosses a wrap seam) and the forest / water / village
        land-cover fields. NaN where the
        ray misses the ground.

        Exact rays on a lattice every ``_LATTICE_PX`` pixels (one node beyond each edge),
        upsampled bilinearly with ``cv2.resize`` (node k lands on pixel centre 8k + 4).
        """
        w, h = camera.image_width_px, camera.image_height_px
        key = (w, h)
        if key not in self._lattice_cache:
            gu = np.arange(-1, w // _LATTICE_PX + 1, dtype=np.float64) * _LATTICE_PX + _LATTICE_PX / 2
            gv = np.arange(-1, h // _LATTICE_PX + 1, dtype=np.float64) * _LATTICE_PX + _LATTICE_PX / 2
            self._lattice_cache[key] = np.meshgrid(gu, gv)
        uu, vv = self._lattice_cache[key]
        dn, de = pixels_to_ground(uu, vv, camera, pose)
        ce, cn = self.camera_local(pose)
        e, n = de + ce, dn + cn
        c, s = math.cos(self.theta), math.sin(self.theta)
        a, b = e * c + n * s, -e * s + n * c
        ca, cb = ce * c + cn * s, -ce * s + cn * c

        def unwrapped(x: np.ndarray, x0: float, res: float, period: int) -> np.ndarray:
            return (x - x0) / res + (x0 / res) % period

        # land cover is smooth (4 m raster, ~50-160 m features): sample it on the lattice only
        lcx = unwrapped(e, ce, _LC_RES_M, self.lc_size).astype(np.float32)
        lcy = unwrapped(n, cn, _LC_RES_M, self.lc_size).astype(np.float32)
        lc = cv2.remap(self.lc, np.nan_to_num(lcx), np.nan_to_num(lcy), cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        vh, vw = self.village_tex.shape[:2]
        lat = np.concatenate([np.stack([e, n, unwrapped(a, ca, _TEX_RES_M, _TEX_PX),
                                        unwrapped(b, cb, _TEX_RES_M, _TEX_PX),
                                        unwrapped(a, ca, _VIL_RES_M, vw), unwrapped(b, cb, _VIL_RES_M, vh)],
                                       -1).astype(np.float32), lc], -1)
        gh, gw = lat.shape[:2]
        up = cv2.resize(lat, (gw * _LATTICE_PX, gh * _LATTICE_PX), interpolation=cv2.INTER_LINEAR)
        return up[_LATTICE_PX:_LATTICE_PX + h, _LATTICE_PX:_LATTICE_PX + w]

    def ground_image(self, maps: np.ndarray) -> np.ndarray:
        """BGR uint8 colours of the procedural ground for :meth:`_ground_maps` output (no objects)."""
        e = np.ascontiguousarray(maps[..., 0])
        n = np.ascontiguousarray(maps[..., 1])
        c, s = math.cos(self.theta), math.sin(self.theta)
        a = e * c + n * s
        b = n * c - e * s
        lc = maps[..., 6:9]
        tex = cv2.remap(self.tex, np.ascontiguousarray(maps[..., 2]), np.ascontiguousarray(maps[..., 3]),
                        cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        # cadastral parcels
        bb = b * (1.0 / self.cell_b)
        ib = np.floor(bb).astype(np.int32)
        fb = (bb - ib) * self.cell_b  # metres into the parcel across
        row = ib & 1023
        aa = a * (1.0 / self.cell_a) + self.row_offset[row]
        ia = np.floor(aa).astype(np.int32)
        fa = (aa - ia) * self.cell_a
        var = (_hash_u32(ia, ib, self.seed) & np.uint32(255)).astype(np.uint16)
        # materials are numbered by priority: the highest layer present wins
        u8 = np.uint8
        layers = [((fb < 0.7) | (fa < 0.7)).view(u8) * u8(_BUND),
                  (lc[..., 0] > self.lc_thresh[0]).view(u8) * u8(_FOREST)]
        village = lc[..., 2] > self.lc_thresh[2]
        has_village = bool(village.any())
        if has_village:  # houses: a periodic pattern of 16 x 16 lots, looked up nearest
            vil = cv2.remap(self.village_tex, np.ascontiguousarray(maps[..., 4]), np.ascontiguousarray(maps[..., 5]),
                            cv2.INTER_NEAREST, borderMode=cv2.BORDER_WRAP)
            vmat = np.where(village, vil[..., 0], u8(0))
            layers.append(vmat)
            var = np.where(vmat == _ROOF, vil[..., 1].astype(np.uint16), var)
        canal = self.canal_rows[row] & (fb < self.canal_w)
        layers.append((canal | (lc[..., 1] > self.lc_thresh[1])).view(u8) * u8(_WATER))
        layers.append((self.road_rows[row] & (fb < self.road_w)).view(u8) * u8(_ROAD))
        d = e * self.exp_dir[0] + n * self.exp_dir[1] - self.exp_c
        ad = np.abs(d)
        exp = ad < self.exp_half_w
        if exp.any():
            along = n * self.exp_dir[0] - e * self.exp_dir[1]
            dash = (along - np.floor(along * (1 / 9.0)) * 9.0) < 4.0
            lane = exp & ((ad > self.exp_half_w - 0.8) | (np.abs(ad - self.exp_half_w / 2) < 0.12) & dash | (ad < 0.35))
            layers += [exp.view(u8) * u8(_EXPRESS), lane.view(u8) * u8(_LANE)]
        layers.append(np.isnan(e).view(u8) * u8(_SKY))
        mat = np.maximum.reduce(layers)
        idx = mat.astype(np.uint16) * 256 + var
        img = self.lut32[idx].view(np.uint8).reshape(*idx.shape, 4)
        amp = self.tex_amp[mat]
        shade = 128.0 + amp * (tex[..., 0].astype(np.float32) - 128.0)
        veg = self.field_kind[var] & (mat == _FIELD)
        shade -= veg * (0.125 * tex[..., 1])
        if has_village:
            shade *= np.where(mat == _ROOF, vil[..., 2] * (1 / 128), 1.0).astype(np.float32)
        s8 = cv2.convertScaleAbs(shade)
        return cv2.multiply(cv2.cvtColor(img, cv2.COLOR_BGRA2BGR), cv2.merge([s8, s8, s8]), scale=1 / 128)

    def render(self, camera: CameraModel, pose: CameraPose) -> Rendered:
        """The camera's view from ``pose`` with ground truth for every visible planted object."""
        img = self.ground_image(self._ground_maps(camera, pose))
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
