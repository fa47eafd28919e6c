"""Light, lens and codec effects that real aerial frames have and clean renders lack.

The clean renderer lights every frame the same and never darkens a corner, so a detector
trained on it learned "dark = straw burning": dusk frames, cloud shadows and lens vignetting
fired on real photos. :func:`degrade` applies, each with its own odds, a lighting look
(dusk, overcast, low sun/hard contrast, bright noon), cloud shadows, haze, vignetting,
motion blur or defocus, sensor noise and JPEG artefacts. The image keeps its geometry
(boxes stay valid).
"""

from __future__ import annotations

import cv2
import numpy as np

#: Odds of each lighting look; the rest of the frames keep the renderer's light.
LIGHTING_ODDS = {"dusk": 0.15, "overcast": 0.15, "low_sun": 0.12, "bright": 0.1}


def _smooth_field(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth random field in [0, 1] at the image size, ``cells`` blobs across."""
    small = rng.random((max(2, cells * h // w), cells)).astype(np.float32)
    f = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip((f - f.min()) / max(float(f.max() - f.min()), 1e-6), 0, 1)


def degrade(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """A realistically degraded copy of the BGR uint8 ``img``; returns it and the effects applied."""
    h, w = img.shape[:2]
    x = img.astype(np.float32) / 255.0
    fx: list[str] = []
    r = rng.random()
    acc = 0.0
    look = None
    for name, p in LIGHTING_ODDS.items():
        acc += p
        if r < acc:
            look = name
            break
    if look == "dusk":  # dark, warm, low contrast
        x = x ** rng.uniform(1.2, 1.8) * rng.uniform(0.35, 0.65)
        x *= np.array([rng.uniform(0.7, 0.9), rng.uniform(0.85, 0.95), 1.0], np.float32)
    elif look == "overcast":  # flat, grey, desaturated
        grey = x.mean(-1, keepdims=True)
        x = grey + (x - grey) * rng.uniform(0.4, 0.7)
        x = 0.5 + (x - 0.5) * rng.uniform(0.6, 0.85) - rng.uniform(0.0, 0.1)
    elif look == "low_sun":  # hard contrast, warm highlights
        x = np.clip(0.5 + (x - 0.5) * rng.uniform(1.2, 1.5), 0, 1)
        x *= np.array([rng.uniform(0.8, 0.95), 1.0, rng.uniform(1.0, 1.15)], np.float32)
    elif look == "bright":
        x = x ** rng.uniform(0.6, 0.85) * rng.uniform(1.0, 1.15)
    if look:
        fx.append(look)
    if rng.random() < 0.25:  # cloud shadows: large soft dark regions
        f = _smooth_field(rng, h, w, int(rng.integers(2, 5)))
        m = np.clip((f - rng.uniform(0.4, 0.7)) / rng.uniform(0.1, 0.3), 0, 1)  # soft-edged cloud
        x *= (1 - rng.uniform(0.3, 0.6) * cv2.GaussianBlur(m, (0, 0), 12))[..., None]
        fx.append("cloud_shadow")
    if rng.random() < 0.25:  # haze: blend towards a bluish grey
        a = rng.uniform(0.1, 0.4)
        x = x * (1 - a) + a * np.array([0.85, 0.8, 0.75], np.float32)
        fx.append("haze")
    if rng.random() < 0.5:  # lens vignetting
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        rr = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        x *= (1 - rng.uniform(0.2, 0.6) * (rr / 2) ** rng.uniform(1.0, 2.0))[..., None]
        fx.append("vignette")
    x = np.clip(x * 255, 0, 255).astype(np.uint8)
    r = rng.random()
    if r < 0.2:  # motion blur along a random direction
        k = int(rng.integers(3, 10))
        kern = np.zeros((k, k), np.float32)
        kern[k // 2, :] = 1.0 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        kern = cv2.warpAffine(kern, rot, (k, k))
        x = cv2.filter2D(x, -1, kern / max(float(kern.sum()), 1e-6))
        fx.append("motion_blur")
    elif r < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.8, 1.8))
        fx.append("defocus")
    if rng.random() < 0.4:  # sensor noise
        x = np.clip(x.astype(np.float32) + rng.normal(0, rng.uniform(2, 8), x.shape), 0, 255).astype(np.uint8)
        fx.append("noise")
    if rng.random() < 0.6:  # JPEG artefacts of a low-bitrate stream
        ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 70))])
        if ok:
            x = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            fx.append("jpeg")
    return x, fx
