"""Everyday clutter and incident styles for the realistic dataset mix.

The original look-alikes (``roof``, ``cooking_smoke``, ``haystack``, ``parked_truck``) left the
detector free to learn shortcuts that real aerial photos punish: white or blue roofs of any
kind became ``illegal_structure``, anything dark became ``straw_burning``, colourful ground
became ``illegal_dumping`` and a bright patch on a vehicle became ``hazmat_fire``. Each kind
here is drawn to break one of those shortcuts and is never labelled (a hard negative):

- ``car`` / ``van``: every roof colour (white, silver, black, blue, red, orange, yellow...),
  on a road strip, in a yard or in a row of parked cars; ``bright_vehicle``: a lorry with an
  orange/red/yellow tarp or load (hazmat_fire without fire or smoke).
- ``building``: legal buildings of many shapes (flat concrete with parapet and water tank,
  L-shaped, courtyard with wall, large factory hall with white/blue colour-steel roof).
- ``tree_crown`` / ``shrub``: dark round crowns and bushes with their shadows;
  ``shadow``: long soft shadows of trees/buildings standing outside the frame.
- ``dirt_track``, ``flower_bed``, ``bare_soil``: brown tracks with ruts, rows of colourful
  flowers, ploughed/wet soil patches.
- ``water_glare``: a pond with a blown-out specular sun glint.
- ``steam``: large translucent drifting white plume without any fire (smoke without flame,
  not an incident: a chimney of a plant, dust from a tractor).

Incident styles (``kind`` = ``"straw_burning:smoke"`` or ``"straw_burning:flame"``, labelled
``straw_burning``): a burn with a large translucent drifting plume that hides most of the
fire, and a fire front without smoke. All sizes in metres, colours BGR.
"""

from __future__ import annotations

import cv2
import numpy as np

from simulators.camera.sprites import (
    _blob,
    _Canvas,
    _flames,
    _noise,
    _plume,
    _rect,
    _road_patch,
    _roof,
    _shadow,
)

#: Clutter kinds (never labelled) and the size range (characteristic length, metres) each is drawn at.
CLUTTER_SIZE_M: dict[str, tuple[float, float]] = {
    "car": (3.8, 5.2),
    "van": (5.0, 7.0),
    "car_row": (12.0, 35.0),
    "bright_vehicle": (5.0, 12.0),
    "building": (8.0, 40.0),
    "tree_crown": (4.0, 16.0),
    "shrub": (1.5, 5.0),
    "shadow": (8.0, 30.0),
    "dirt_track": (20.0, 60.0),
    "flower_bed": (3.0, 14.0),
    "bare_soil": (8.0, 30.0),
    "water_glare": (10.0, 40.0),
    "steam": (8.0, 25.0),
}
CLUTTER_KINDS = tuple(CLUTTER_SIZE_M)
#: Relative odds of each clutter kind in the realistic mix (cars and dark things most: they
#: were the commonest false alarms on real photos).
CLUTTER_WEIGHTS = (0.16, 0.06, 0.07, 0.06, 0.12, 0.10, 0.07, 0.08, 0.06, 0.06, 0.06, 0.04, 0.06)
#: Extra styles of incidents (``kind:style``); the label is the part before the colon.
INCIDENT_STYLES: dict[str, tuple[str, ...]] = {"straw_burning": ("smoke", "flame")}

# roof colours of ordinary cars, BGR: white, silver, black, dark grey, blue, red, orange, yellow, green, beige
_CAR_COLOURS = ((235, 235, 235), (192, 192, 196), (30, 30, 32), (80, 80, 84), (170, 90, 30), (40, 40, 190),
                (30, 120, 235), (40, 210, 230), (60, 120, 50), (150, 180, 200))


def _car(cv: _Canvas, rng: np.random.Generator, length: float, width: float, center, sun_en, colour=None) -> None:
    """One car seen from above: body, dark windscreen/rear window, roof, its shadow."""
    cx, cy = center
    body = _rect(length, width, cx, cy)
    _shadow(cv, body, sun_en, 0.7)
    col = np.asarray(colour if colour is not None else _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))], np.float32)
    cv.paint(cv.poly_mask(body), col * rng.uniform(0.85, 1.05))
    cv.paint(cv.poly_mask(_rect(0.22 * length, 0.85 * width, cx + 0.18 * length, cy)), (40, 38, 35), alpha=0.9)
    cv.paint(cv.poly_mask(_rect(0.12 * length, 0.8 * width, cx - 0.3 * length, cy)), (45, 42, 40), alpha=0.85)
    cv.paint(cv.poly_mask(_rect(0.32 * length, 0.8 * width, cx - 0.04 * length, cy)), np.minimum(col * 1.08, 255))
    if rng.random() < 0.3:  # sun glint on the roof or bonnet
        g = cv.mask()
        p = cv.px([[cx + rng.uniform(-0.2, 0.3) * length, cy + rng.uniform(-0.2, 0.2) * width]])[0]
        cv2.circle(g, (int(p[0]), int(p[1])), max(1, int(0.35 / cv.res)), 255, -1, cv2.LINE_AA)
        cv.paint(cv2.GaussianBlur(g, (5, 5), 1.5), (250, 250, 250), alpha=0.9)


def _yard(cv: _Canvas, rng: np.random.Generator, length: float, width: float, center=(0.0, 0.0)) -> None:
    """A concrete or earth yard with a thin wall round it."""
    outline = _rect(length, width, *center)
    col = [(150, 152, 155), (110, 130, 145), (125, 125, 120)][rng.integers(3)]
    cv.paint(cv.poly_mask(outline), col, alpha=0.95)
    edge = cv.mask()
    cv2.polylines(edge, [np.round(cv.px(outline)).astype(np.int32)], True, 255, max(1, int(0.3 / cv.res)))
    cv.paint(edge, (200, 200, 200), alpha=0.9)


def _building(cv: _Canvas, rng: np.random.Generator, s: float, sun_en) -> np.ndarray:
    """A legal building: flat-roofed house, L-shaped block, courtyard house or factory hall."""
    style = rng.integers(4)
    white_blue = [(235, 235, 230), (215, 220, 222), (185, 110, 40), (175, 95, 30), (200, 160, 90), (160, 160, 160),
                  (50, 60, 150)]
    colour = np.asarray(white_blue[rng.integers(len(white_blue))], np.float32)
    if style == 0:  # flat concrete roof, parapet, water tank / solar heater
        outline = _rect(s, 0.6 * s)
        _shadow(cv, outline, sun_en, 0.5 * s)
        cv.paint(cv.poly_mask(outline), colour)
        cv.paint(cv.poly_mask(_rect(0.9 * s, 0.52 * s)), colour * 0.9)
        for _ in range(rng.integers(1, 4)):
            c = (rng.uniform(-0.3, 0.3) * s, rng.uniform(-0.15, 0.15) * s)
            cv.paint(cv.poly_mask(_rect(1.6, 1.2, *c)), [(200, 200, 205), (60, 60, 70), (170, 100, 40)][rng.integers(3)])
    elif style == 1:  # L-shaped block with a gabled or ribbed roof
        _roof(cv, rng, s, 0.35 * s, colour, sun_en, ribbed=bool(rng.random() < 0.5), center=(0.0, -0.15 * s))
        _roof(cv, rng, 0.4 * s, 0.3 * s, colour * 0.95, sun_en, ribbed=False, center=(0.3 * s, 0.15 * s))
        outline = _rect(s, 0.65 * s)
    elif style == 2:  # courtyard: house plus wall plus a car or two in the yard
        _yard(cv, rng, s, 0.8 * s)
        _roof(cv, rng, s * 0.9, 0.3 * s, colour, sun_en, ribbed=bool(rng.random() < 0.4), center=(0.0, -0.22 * s))
        for _ in range(rng.integers(0, 3)):
            _car(cv, rng, 4.5, 1.8, (rng.uniform(-0.3, 0.3) * s, 0.2 * s), sun_en)
        outline = _rect(s, 0.8 * s)
    else:  # factory hall: long ribbed colour-steel roof, big
        ls = s * 1.5
        outline = _rect(ls, 0.5 * ls)
        _roof(cv, rng, ls, 0.5 * ls, colour, sun_en, ribbed=True)
        if rng.random() < 0.6:
            for k in range(rng.integers(2, 6)):  # skylights
                cv.paint(cv.poly_mask(_rect(0.05 * ls, 0.4 * ls, (k / 5 - 0.4) * ls, 0)), (230, 230, 225), alpha=0.8)
    return outline


def _crowns(cv: _Canvas, rng: np.random.Generator, s: float, sun_en, n: int, crown: tuple[float, float]) -> None:
    """Dark round tree crowns or bushes with soft shadows and lit tops."""
    summer = rng.random() < 0.7
    base = np.array([(25, 55, 25), (30, 70, 40), (20, 45, 30), (35, 60, 55)][rng.integers(4)] if summer
                    else (40, 50, 60), np.float32)
    for _ in range(n):
        r = rng.uniform(*crown) / 2
        c = rng.uniform(-0.4, 0.4, 2) * max(s - 2 * r, 0.1)
        out = c + _blob(rng, r, 12, 0.25)
        _shadow(cv, out, sun_en, rng.uniform(0.8, 2.5) * r)
        m = cv2.GaussianBlur(cv.poly_mask(out), (5, 5), 1.5)
        shade = 0.6 + 0.8 * _noise(rng, cv.size, max(1.0, 0.5 / cv.res))
        cv.paint(m, base * rng.uniform(0.7, 1.2), shade=shade)


def draw_clutter(kind: str, rng: np.random.Generator, s: float, heading_deg: float, sun_en, wind_en) -> tuple[
        _Canvas, np.ndarray]:
    """Draw a clutter kind of size ``s`` metres; returns the canvas and the outline (object-local metres)."""
    if kind in ("car", "van"):
        cv = _Canvas(0.9 * s + 3, heading_deg)
        if rng.random() < 0.5:
            _road_patch(cv, 2.0 * s + 4)
        w = 1.8 if kind == "car" else rng.uniform(1.9, 2.2)
        _car(cv, rng, s, w, (0.0, 0.0), sun_en)
        return cv, _rect(s, w)
    if kind == "car_row":
        cv = _Canvas(0.75 * s, heading_deg)
        cv.paint(cv.poly_mask(_rect(s, 6.0)), (95, 95, 95) if rng.random() < 0.6 else (150, 152, 155))
        for x in np.arange(-s / 2 + 1.4, s / 2 - 1.0, rng.uniform(2.6, 3.2)):
            if rng.random() < 0.8:
                _car(cv, rng, 1.9, rng.uniform(4.2, 5.0), (x, 0.0), sun_en)
        return cv, _rect(s, 6.0)
    if kind == "bright_vehicle":
        cv = _Canvas(0.9 * s + 2, heading_deg)
        if rng.random() < 0.6:
            _road_patch(cv, 1.5 * s + 4)
        body = _rect(s, 2.5)
        _shadow(cv, body, sun_en, 1.2)
        cv.paint(cv.poly_mask(_rect(2.2, 2.5, s / 2 - 1.1)), [(220, 220, 220), (40, 40, 190), (170, 80, 30)][rng.integers(3)])
        load = [(30, 110, 240), (30, 60, 220), (40, 200, 240), (20, 140, 250), (50, 50, 200)][rng.integers(5)]
        shade = 0.8 + 0.4 * _noise(rng, cv.size, 3)
        cv.paint(cv.poly_mask(_rect(s - 2.5, 2.5, -1.25)), load, shade=shade)
        if rng.random() < 0.5:  # a bright white-yellow glint on the cab glass
            g = cv.mask()
            p = cv.px([[s / 2 - 0.6, rng.uniform(-0.8, 0.8)]])[0]
            cv2.circle(g, (int(p[0]), int(p[1])), max(1, int(0.5 / cv.res)), 255, -1, cv2.LINE_AA)
            cv.paint(cv2.GaussianBlur(g, (5, 5), 1.5), (200, 245, 255))
        return cv, body
    if kind == "building":
        cv = _Canvas(1.2 * s, heading_deg)
        return cv, _building(cv, rng, s, sun_en)
    if kind == "tree_crown":
        cv = _Canvas(1.0 * s, heading_deg)
        _crowns(cv, rng, s, sun_en, int(rng.integers(1, 7)), (3.0, max(3.5, 0.6 * s)))
        return cv, _rect(s, s)
    if kind == "shrub":
        cv = _Canvas(1.0 * s, heading_deg)
        _crowns(cv, rng, s, sun_en, int(rng.integers(1, 5)), (0.8, max(1.0, 0.6 * s)))
        return cv, _rect(s, s)
    if kind == "shadow":  # long shadow of a tree line / tall building outside the frame
        cv = _Canvas(0.6 * s, heading_deg)
        w = rng.uniform(0.15, 0.4) * s
        out = _rect(s, w) if rng.random() < 0.5 else _blob(rng, s / 2, 16, 0.3) * np.array([1.0, w / s * 2])
        m = cv2.GaussianBlur(cv.poly_mask(out), (9, 9), 3)
        cv.paint(m, (20, 25, 25), alpha=rng.uniform(0.35, 0.7))
        return cv, out
    if kind == "dirt_track":
        cv = _Canvas(0.6 * s, heading_deg)
        m = cv.mask()
        w = rng.uniform(2.0, 4.0)
        bend = rng.uniform(-0.2, 0.2) * s
        t = np.linspace(-0.5, 0.5, 20)
        pts = cv.px(np.stack([t * s, bend * (4 * t * t - 1)], -1))
        cv2.polylines(m, [np.round(pts).astype(np.int32)], False, 255, max(1, int(w / cv.res)), cv2.LINE_AA)
        col = [(90, 120, 150), (80, 110, 135), (110, 140, 165), (70, 90, 110)][rng.integers(4)]
        shade = 0.75 + 0.5 * _noise(rng, cv.size, 2)
        cv.paint(cv2.GaussianBlur(m, (5, 5), 1.5), col, shade=shade)
        for off in (-0.25 * w, 0.25 * w):  # tyre ruts
            r = cv.mask()
            cv2.polylines(r, [np.round(cv.px(np.stack([t * s, bend * (4 * t * t - 1) + off], -1))).astype(np.int32)],
                          False, 255, max(1, int(0.4 / cv.res)), cv2.LINE_AA)
            cv.paint(r, np.asarray(col) * 0.7, alpha=0.7)
        return cv, np.stack([t * s, bend * (4 * t * t - 1)], -1)
    if kind == "flower_bed":
        cv = _Canvas(0.75 * s, heading_deg)
        out = _rect(s, rng.uniform(0.4, 1.0) * s) if rng.random() < 0.5 else _blob(rng, s / 2, 16, 0.15)
        m = cv.poly_mask(out)
        cv.paint(m, (40, 90, 50))
        colours = [(60, 40, 220), (40, 200, 240), (180, 80, 160), (240, 240, 240), (40, 120, 240), (200, 120, 220)]
        n_rows = int(rng.integers(3, 9))
        for k in range(n_rows):
            row = cv.mask()
            y = (k + 0.5) / n_rows - 0.5
            p = cv.px([[-s / 2, y * s], [s / 2, y * s]])
            cv2.line(row, tuple(np.round(p[0]).astype(int)), tuple(np.round(p[1]).astype(int)), 255,
                     max(1, int(s / n_rows * 0.6 / cv.res)))
            tex = 0.5 + 0.5 * _noise(rng, cv.size, 1.0)
            cv.paint(cv2.bitwise_and(row, m), colours[rng.integers(len(colours))], shade=tex)
        return cv, out
    if kind == "bare_soil":
        cv = _Canvas(0.75 * s, heading_deg)
        out = _blob(rng, s / 2, 16, 0.3)
        col = [(40, 55, 70), (50, 70, 90), (35, 45, 55), (70, 95, 120)][rng.integers(4)]
        shade = 0.6 + 0.8 * _noise(rng, cv.size, 3)
        cv.paint(cv2.GaussianBlur(cv.poly_mask(out), (9, 9), 3), col, shade=shade)
        return cv, out
    if kind == "water_glare":
        cv = _Canvas(0.7 * s, heading_deg)
        out = _blob(rng, s / 2, 16, 0.2)
        cv.paint(cv2.GaussianBlur(cv.poly_mask(out), (5, 5), 1.5), [(90, 90, 50), (80, 100, 70), (60, 60, 40)][rng.integers(3)])
        g = cv.mask()
        c = cv.px([rng.uniform(-0.15, 0.15, 2) * s])[0]
        rad = rng.uniform(0.05, 0.2) * s / cv.res
        cv2.ellipse(g, (int(c[0]), int(c[1])), (max(1, int(rad)), max(1, int(rad * rng.uniform(0.4, 1)))),
                    rng.uniform(0, 180), 0, 360, 255, -1)
        k = int(max(3, rad)) | 1
        cv.paint(cv2.bitwise_and(cv2.GaussianBlur(g, (k, k), k / 3), cv.poly_mask(out)), (250, 252, 255))
        return cv, out
    if kind == "steam":  # large translucent white plume, no fire: a plant chimney or tractor dust
        cv = _Canvas(1.8 * s, heading_deg)
        col = (225, 228, 230) if rng.random() < 0.6 else (150, 175, 190)
        _plume(cv, rng, wind_en, 1.5 * s, 0.6 * s, col, rng.uniform(0.3, 0.6))
        return cv, _rect(s, 0.6 * s)
    raise ValueError(f"unknown clutter kind {kind!r}")


def draw_straw_burning(style: str, rng: np.random.Generator, s: float, heading_deg: float, wind_en) -> tuple[
        _Canvas, np.ndarray]:
    """A straw burn in ``style`` "smoke" (large translucent drifting plume, few visible flames) or
    "flame" (a fire front with no smoke); the outline is the burning patch."""
    plume_len = rng.uniform(2.5, 4.0) * s if style == "smoke" else 0.0
    cv = _Canvas(max(0.75 * s, 0.6 * s + plume_len), heading_deg)
    outline = _blob(rng, s / 2, 16, 0.3)
    burnt = (28, 30, 32) if rng.random() < 0.5 else (45, 55, 65)
    cv.paint(cv2.GaussianBlur(cv.poly_mask(outline), (7, 7), 2), burnt)
    cv.paint(cv.poly_mask(outline * 0.8), (55, 58, 60), alpha=0.5, shade=0.6 + 0.8 * _noise(rng, cv.size, 4))
    ang = np.linspace(0, 2 * np.pi, 13)[:-1] + rng.uniform(0, 1)
    if style == "flame":
        front = np.stack([np.cos(ang) * s * 0.45, np.sin(ang) * s * 0.45], -1)[: rng.integers(4, 10)]
        _flames(cv, rng, front, max(0.7, 0.08 * s))
    else:
        front = np.stack([np.cos(ang) * s * 0.42, np.sin(ang) * s * 0.42], -1)[: rng.integers(1, 3)]
        _flames(cv, rng, front, max(0.5, 0.06 * s))
        _plume(cv, rng, wind_en, plume_len, rng.uniform(0.8, 1.6) * s, (200, 205, 208) if rng.random() < 0.6
               else (150, 155, 160), rng.uniform(0.35, 0.65), start_m=0.0)
    return cv, outline

