"""Planted objects drawn as ground-aligned RGBA sprites.

Each planted object (an incident or a look-alike) is drawn once per world, in metres on
the ground around its WGS-84 position, into a small RGBA raster (``SPRITE_RES_M`` metres
per pixel, north up). The renderer warps every visible sprite into the frame with the
homography that :func:`geo.georef.ground_to_pixels` gives for the sprite's corners, so an
object looks the same from every pose and appears exactly where geolocation expects it.

Object-local coordinates: ``x`` metres forward along the heading (0 = north, clockwise),
``y`` metres to the right. Colours are BGR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SPRITE_RES_M = 0.08  # metres per sprite pixel (finer than any stream GSD at >= 50 m AGL)
MAX_SPRITE_PX = 360  # sprites wider than this use coarser pixels (smoke plumes)


@dataclass(frozen=True)
class Sprite:
    """An object's look on the ground.

    ``rgba``: H x W x 4 uint8 (BGR + alpha), north up, ``res_m`` metres per pixel, centred
    on local (``east_m``, ``north_m``). ``truth_xy``: object-local (x forward, y right)
    outline in metres whose pixel bounding box is the labelled box.
    """

    object_id: str
    kind: str
    east_m: float
    north_m: float
    heading_deg: float
    res_m: float
    rgba: np.ndarray
    truth_xy: np.ndarray  # K x 2, object-local metres

    def truth_ground(self) -> tuple[np.ndarray, np.ndarray]:
        """The truth outline as local (east_m, north_m) arrays."""
        return _local_to_en(self.truth_xy, self.heading_deg, self.east_m, self.north_m)

    def corners_ground(self) -> tuple[np.ndarray, np.ndarray]:
        """Local (east, north) of the sprite's four outer pixel corners: TL, TR, BR, BL."""
        h, w = self.rgba.shape[:2]
        hw, hh = w * self.res_m / 2, h * self.res_m / 2
        e = self.east_m + np.array([-hw, hw, hw, -hw])
        n = self.north_m + np.array([hh, hh, -hh, -hh])
        return e, n


def _local_to_en(xy: np.ndarray, heading_deg: float, e0: float, n0: float) -> tuple[np.ndarray, np.ndarray]:
    h = math.radians(heading_deg)
    x, y = xy[:, 0], xy[:, 1]
    e = e0 + x * math.sin(h) + y * math.cos(h)
    n = n0 + x * math.cos(h) - y * math.sin(h)
    return e, n


class _Canvas:
    """Drawing helper: object-local metres -> sprite pixels, with alpha compositing."""

    def __init__(self, radius_m: float, heading_deg: float, res_m: float = SPRITE_RES_M) -> None:
        self.res = max(res_m, 2 * radius_m / MAX_SPRITE_PX)  # big plumes get coarser pixels
        self.size = int(math.ceil(2 * radius_m / self.res)) | 1
        self.heading = heading_deg
        self.bgr = np.zeros((self.size, self.size, 3), np.float32)
        self.alpha = np.zeros((self.size, self.size), np.float32)

    def px(self, xy) -> np.ndarray:
        """Object-local (x forward, y right) metres -> sprite pixel (col, row), float."""
        xy = np.atleast_2d(np.asarray(xy, np.float64))
        e, n = _local_to_en(xy, self.heading, 0.0, 0.0)
        c = self.size / 2
        return np.stack([c + e / self.res, c - n / self.res], axis=-1)

    def enpx(self, en) -> np.ndarray:
        """Ground-aligned (east, north) offsets in metres -> sprite pixels."""
        en = np.atleast_2d(np.asarray(en, np.float64))
        c = self.size / 2
        return np.stack([c + en[:, 0] / self.res, c - en[:, 1] / self.res], axis=-1)

    def mask(self) -> np.ndarray:
        return np.zeros((self.size, self.size), np.uint8)

    def poly_mask(self, xy, ground: bool = False) -> np.ndarray:
        m = self.mask()
        p = (self.enpx(xy) if ground else self.px(xy)) * 16
        cv2.fillPoly(m, [np.round(p).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
        return m

    def paint(self, mask: np.ndarray, color, alpha: float = 1.0, shade: np.ndarray | None = None) -> None:
        """Composite ``color`` over the canvas where ``mask`` (uint8 or float 0..1) is set."""
        a = mask.astype(np.float32)
        if a.max() > 1.0:
            a = a / 255.0
        a = a * alpha
        col = np.asarray(color, np.float32)[None, None, :]
        if shade is not None:
            col = col * shade[..., None]
        self.bgr = self.bgr * (1 - a[..., None]) + col * a[..., None]
        self.alpha = self.alpha + a * (1 - self.alpha)

    def rgba(self) -> np.ndarray:
        out = np.empty((self.size, self.size, 4), np.uint8)
        with np.errstate(invalid="ignore", divide="ignore"):
            # bgr is premultiplied-like (composited over black): un-premultiply for storage
            col = np.where(self.alpha[..., None] > 1e-4, self.bgr / np.maximum(self.alpha[..., None], 1e-4), 0)
        out[..., :3] = np.clip(col, 0, 255).astype(np.uint8)
        out[..., 3] = np.clip(self.alpha * 255, 0, 255).astype(np.uint8)
        return out


def _rect(length: float, width: float, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    return np.array(
        [[cx + length / 2, cy - width / 2], [cx + length / 2, cy + width / 2],
         [cx - length / 2, cy + width / 2], [cx - length / 2, cy - width / 2]]
    )


def _blob(rng: np.random.Generator, radius: float, n: int = 14, jitter: float = 0.35) -> np.ndarray:
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * (1 - jitter * rng.uniform(0, 1, n))
    return np.stack([r * np.cos(ang), r * np.sin(ang)], axis=-1)


def _noise(rng: np.random.Generator, size: int, blur_px: float) -> np.ndarray:
    """Smooth noise in [0, 1] of ``size`` x ``size``."""
    n = rng.random((size, size), dtype=np.float32)
    k = max(1, int(blur_px * 3) | 1)
    n = cv2.GaussianBlur(n, (k, k), blur_px)
    lo, hi = float(n.min()), float(n.max())
    return (n - lo) / max(hi - lo, 1e-6)


def _shadow(cv: _Canvas, outline: np.ndarray, sun_en: tuple[float, float], length_m: float) -> None:
    """A soft shadow: the outline shifted away from the sun."""
    sx, sy = sun_en
    pts = cv.px(outline)
    shift = np.array([sx * length_m / cv.res, -sy * length_m / cv.res])
    m = cv.mask()
    cv2.fillPoly(m, [np.round((pts + shift) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    m = cv2.GaussianBlur(m, (5, 5), 1.5)
    cv.paint(m, (25, 30, 30), alpha=0.45)


def _plume(cv: _Canvas, rng: np.random.Generator, wind_en: tuple[float, float], length_m: float,
           width_m: float, color, alpha: float, start_m: float = 0.0) -> None:
    """A drifting semi-transparent smoke plume from the object centre downwind."""
    m = np.zeros((cv.size, cv.size), np.float32)
    wx, wy = wind_en
    steps = 14
    for i in range(steps):
        t = i / (steps - 1)
        d = start_m + t * length_m
        wobble = rng.normal(0, 0.08 * width_m)
        c = cv.enpx([[wx * d - wy * wobble, wy * d + wx * wobble]])[0]
        r = (0.3 + 0.7 * t) * width_m / 2 / cv.res
        disc = np.zeros_like(m)
        cv2.circle(disc, (int(c[0]), int(c[1])), max(1, int(r)), 1.0 - 0.7 * t, -1)
        np.maximum(m, disc, out=m)
    k = int(max(3, width_m / cv.res / 2)) | 1
    m = cv2.GaussianBlur(m, (k, k), k / 4)
    tex = 0.6 + 0.4 * _noise(rng, cv.size, max(1.0, width_m / cv.res / 6))
    cv.paint(np.clip(1.8 * m * tex, 0, 1), color, alpha=alpha)


def _flames(cv: _Canvas, rng: np.random.Generator, centres: np.ndarray, radius_m: float) -> None:
    """Flame core: bright yellow-white centre, orange-red rim."""
    outer = cv.mask()
    inner = cv.mask()
    for c in cv.px(centres):
        r = radius_m * rng.uniform(0.6, 1.1) / cv.res
        pts = c + _blob(rng, r, 10, 0.45)
        cv2.fillPoly(outer, [np.round(pts).astype(np.int32)], 255, cv2.LINE_AA)
        cv2.circle(inner, (int(c[0]), int(c[1])), max(1, int(r * 0.45)), 255, -1, cv2.LINE_AA)
    cv.paint(cv2.GaussianBlur(outer, (5, 5), 1.2), (20, 90, 235))
    cv.paint(cv2.GaussianBlur(inner, (5, 5), 1.2), (120, 225, 255))


def _roof(cv: _Canvas, rng: np.random.Generator, length: float, width: float, color, sun_en, ribbed: bool,
          center=(0.0, 0.0)) -> None:
    outline = _rect(length, width, *center)
    _shadow(cv, outline, sun_en, 0.35 * width)
    m = cv.poly_mask(outline)
    shade = np.ones((cv.size, cv.size), np.float32)
    cv.paint(m, color, shade=shade)
    # ridge along the length: one slope darker
    half = _rect(length, width / 2, center[0], center[1] + width / 4)
    cv.paint(cv.poly_mask(half), np.asarray(color) * 0.82, alpha=0.9)
    if ribbed:  # colour-steel sheets: ribs every ~0.4 m across the roof, along the slope
        rib = cv.mask()
        step = 0.4
        for x in np.arange(-length / 2 + step / 2, length / 2, step):
            p = cv.px([[center[0] + x, center[1] - width / 2], [center[0] + x, center[1] + width / 2]])
            cv2.line(rib, tuple(np.round(p[0]).astype(int)), tuple(np.round(p[1]).astype(int)), 255, 1, cv2.LINE_AA)
        cv.paint(cv2.bitwise_and(rib, m), np.asarray(color) * 0.6, alpha=0.8)
    else:  # clay/cement tiles: rows along the ridge
        rows = cv.mask()
        for y in np.arange(-width / 2 + 0.3, width / 2, 0.6):
            p = cv.px([[center[0] - length / 2, center[1] + y], [center[0] + length / 2, center[1] + y]])
            cv2.line(rows, tuple(np.round(p[0]).astype(int)), tuple(np.round(p[1]).astype(int)), 255, 1)
        cv.paint(cv2.bitwise_and(rows, m), np.asarray(color) * 0.75, alpha=0.6)
    ridge = cv.px([[center[0] - length / 2, center[1]], [center[0] + length / 2, center[1]]])
    lm = cv.mask()
    cv2.line(lm, tuple(np.round(ridge[0]).astype(int)), tuple(np.round(ridge[1]).astype(int)), 255, 2, cv2.LINE_AA)
    cv.paint(lm, np.asarray(color) * 1.1, alpha=0.7)


def _truck(cv: _Canvas, rng: np.random.Generator, length: float, sun_en, tanker: bool) -> np.ndarray:
    width = 2.5
    body = _rect(length, width)
    _shadow(cv, body, sun_en, 1.2)
    cab_len = 2.2
    cab = _rect(cab_len, width, length / 2 - cab_len / 2)
    load = _rect(length - cab_len - 0.3, width, -cab_len / 2 - 0.15)
    cab_col = [(170, 80, 30), (40, 40, 190), (30, 140, 230), (220, 220, 220)][rng.integers(4)]
    cv.paint(cv.poly_mask(cab), cab_col)
    if tanker:  # silver cylinder: bright along its axis, darker at the sides
        m = cv.poly_mask(load)
        cv.paint(m, (200, 200, 205))
        mid = _rect(length - cab_len - 0.3, width * 0.35, -cab_len / 2 - 0.15)
        cv.paint(cv.poly_mask(mid), (245, 245, 245), alpha=0.9)
    else:
        load_col = [(60, 130, 40), (200, 200, 200), (40, 100, 200), (150, 90, 40)][rng.integers(4)]
        cv.paint(cv.poly_mask(load), load_col)
    return body


def _road_patch(cv: _Canvas, length: float) -> None:
    road = _rect(length, 8.0)
    cv.paint(cv.poly_mask(road), (92, 92, 90))
    lane = cv.mask()
    for x in np.arange(-length / 2, length / 2, 6.0):
        p = cv.px([[x, 0.0], [x + 3.0, 0.0]])
        cv2.line(lane, tuple(np.round(p[0]).astype(int)), tuple(np.round(p[1]).astype(int)), 255, 2)
    cv.paint(lane, (225, 225, 225), alpha=0.85)


_KINDS = ("illegal_structure", "roof", "straw_burning", "cooking_smoke", "illegal_dumping", "haystack", "hazmat_fire",
          "parked_truck")


def make_sprite(object_id: str, kind: str, east_m: float, north_m: float, heading_deg: float, size_m: float,
                seed: int, wind_en: tuple[float, float], sun_en: tuple[float, float]) -> Sprite:
    """Draw one planted object. ``wind_en``/``sun_en``: unit (east, north) vectors the smoke
    drifts along / shadows fall along. Deterministic in ``seed`` and ``object_id``."""
    rng = np.random.default_rng([seed, *object_id.encode()])
    s = float(size_m)
    kind, _, style = kind.partition(":")  # "straw_burning:smoke": a style of an incident, labelled as the kind
    if style or kind not in _KINDS:
        from simulators.camera import lookalikes  # the realistic mix's kinds (imports this module)

        if style and kind == "straw_burning" and style in lookalikes.INCIDENT_STYLES[kind]:
            cv, truth = lookalikes.draw_straw_burning(style, rng, s, heading_deg, wind_en)
        elif not style and kind in lookalikes.CLUTTER_SIZE_M:
            cv, truth = lookalikes.draw_clutter(kind, rng, s, heading_deg, sun_en, wind_en)
        else:
            raise ValueError(f"object {object_id!r}: unknown kind {kind + (':' + style if style else '')!r}")
        return Sprite(object_id, kind, east_m, north_m, heading_deg, cv.res, cv.rgba(), np.asarray(truth, float))
    if kind == "illegal_structure":
        cv = _Canvas(0.75 * s, heading_deg)
        color = [(185, 110, 40), (175, 95, 30), (235, 235, 230), (220, 225, 225)][rng.integers(4)]
        _roof(cv, rng, s, 0.6 * s, color, sun_en, ribbed=True)
        truth = _rect(s, 0.6 * s)
    elif kind == "roof":
        cv = _Canvas(0.75 * s, heading_deg)
        color = [(50, 60, 150), (40, 50, 120), (110, 110, 105), (85, 85, 80), (60, 75, 160)][rng.integers(5)]
        _roof(cv, rng, s, 0.7 * s, color, sun_en, ribbed=False)
        truth = _rect(s, 0.7 * s)
    elif kind == "straw_burning":
        cv = _Canvas(1.9 * s, heading_deg)
        outline = _blob(rng, s / 2, 16, 0.3)
        cv.paint(cv2.GaussianBlur(cv.poly_mask(outline), (7, 7), 2), (28, 30, 32))
        tex = _noise(rng, cv.size, 4)
        cv.paint(cv.poly_mask(outline * 0.8), (55, 58, 60), alpha=0.5, shade=0.6 + 0.8 * tex)
        # fire front on the upwind rim, a few smaller tongues inside
        ang = np.linspace(0, 2 * np.pi, 9)[:-1] + rng.uniform(0, 1)
        front = np.stack([np.cos(ang) * s * 0.42, np.sin(ang) * s * 0.42], -1)[: rng.integers(3, 7)]
        _flames(cv, rng, front, max(0.8, 0.1 * s))
        _plume(cv, rng, wind_en, 1.6 * s, 0.7 * s, (200, 205, 208), 0.7, start_m=0.1 * s)
        truth = outline
    elif kind == "cooking_smoke":
        cv = _Canvas(1.7 * s, heading_deg)
        color = [(50, 60, 150), (110, 110, 105), (85, 85, 80)][rng.integers(3)]
        _roof(cv, rng, s, 0.7 * s, color, sun_en, ribbed=False)
        _plume(cv, rng, wind_en, 1.3 * s, 0.35 * s, (225, 228, 230), 0.4)
        hx, hy = _local_to_en(_rect(s, 0.7 * s), heading_deg, 0, 0)
        wx, wy = wind_en
        tip = np.array([[1.3 * s * wx, 1.3 * s * wy]])
        pe = np.concatenate([hx, tip[:, 0]])
        pn = np.concatenate([hy, tip[:, 1]])
        truth = _en_to_local(pe, pn, heading_deg)
    elif kind == "illegal_dumping":
        cv = _Canvas(0.7 * s, heading_deg)
        outline = _blob(rng, s / 2, 18, 0.45)
        _shadow(cv, outline, sun_en, 0.5)
        cv.paint(cv.poly_mask(outline), (70, 95, 115))
        colours = np.array([(235, 235, 235), (200, 120, 40), (40, 40, 190), (40, 150, 60), (60, 60, 60),
                            (150, 170, 185), (30, 160, 220), (180, 180, 170), (90, 60, 130)], np.float32)
        m_out = cv.poly_mask(outline)
        pieces = np.zeros((cv.size, cv.size, 3), np.float32)
        pm = np.zeros((cv.size, cv.size), np.uint8)
        n = int(40 + 12 * s * s / 4)
        c = cv.px(outline.mean(0))[0]
        for _ in range(min(n, 900)):
            r = s / 2 * math.sqrt(rng.uniform(0, 1))
            a = rng.uniform(0, 2 * np.pi)
            p = c + np.array([math.cos(a), math.sin(a)]) * r / cv.res
            sz = rng.uniform(0.15, 0.7) / cv.res
            pts = p + _blob(rng, sz, 5, 0.5)
            col = colours[rng.integers(len(colours))]
            cv2.fillPoly(pieces, [np.round(pts).astype(np.int32)], col.tolist())
            cv2.fillPoly(pm, [np.round(pts).astype(np.int32)], 255)
        pm = cv2.bitwise_and(pm, m_out)
        a = pm.astype(np.float32)[..., None] / 255
        cv.bgr = cv.bgr * (1 - a) + pieces * a
        truth = outline
    elif kind == "haystack":
        cv = _Canvas(0.8 * s, heading_deg)
        outline = _blob(rng, s / 2, 16, 0.1)
        _shadow(cv, outline, sun_en, 0.4 * s)
        m = cv.poly_mask(outline)
        yy, xx = np.mgrid[: cv.size, : cv.size].astype(np.float32)
        c = cv.size / 2
        r = np.sqrt((xx - c) ** 2 + (yy - c) ** 2) / (s / 2 / cv.res)
        shade = np.clip(1.15 - 0.5 * r, 0.5, 1.2) * (0.85 + 0.3 * _noise(rng, cv.size, 1.5))
        cv.paint(m, [(60, 150, 185), (70, 170, 200), (50, 120, 150)][rng.integers(3)], shade=shade)
        truth = outline
    elif kind in ("hazmat_fire", "parked_truck"):
        length = s
        fire = kind == "hazmat_fire"
        cv = _Canvas((2.0 if fire else 0.8) * length, heading_deg)
        if fire or rng.random() < 0.6:
            _road_patch(cv, 1.5 * length)
        body = _truck(cv, rng, length, sun_en, tanker=fire or rng.random() < 0.4)
        if fire:
            n = rng.integers(4, 8)
            xs = rng.uniform(-length / 2, length / 3, n)
            ys = rng.uniform(-1.8, 1.8, n)
            _flames(cv, rng, np.stack([xs, ys], -1), 1.3)
            _plume(cv, rng, wind_en, 1.8 * length, 0.7 * length, (35, 35, 38), 0.85, start_m=1.0)
            truth = _rect(length + 2.0, 2.5 + 3.0)
        else:
            truth = body
    else:
        raise ValueError(f"object {object_id!r}: unknown kind {kind!r}")
    return Sprite(object_id, kind, east_m, north_m, heading_deg, cv.res, cv.rgba(), np.asarray(truth, float))


def _en_to_local(e: np.ndarray, n: np.ndarray, heading_deg: float) -> np.ndarray:
    h = math.radians(heading_deg)
    x = e * math.sin(h) + n * math.cos(h)
    y = e * math.cos(h) - n * math.sin(h)
    return np.stack([x, y], -1)
