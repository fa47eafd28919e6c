"""Cut the committed real aerial negatives (``bench/data/realneg``) from the photos that the
``deepforest`` 2.1.0 wheel on PyPI ships (see ``bench/data/realneg/LICENSE.md``).

Run once by hand, not at test or bench time (nothing downloads at run time)::

    pip download --no-deps deepforest==2.1.0 -d /tmp/df && unzip -o /tmp/df/*.whl 'deepforest/data/*' -d /tmp/df
    python -m bench.realneg_data /tmp/df/deepforest/data

Why these photos: they hold what the synthetic-only detector fired on in real scenes (dark tree
crowns and their long shadows, bright dead trees, a road edge, white birds on bare dirt) and
nothing to find. NEON AOP orthophotos are 0.10 m/px; they are resampled to the ground sample
distance of the patrol camera (m3e streamed at 640 px: about 0.16 m/px at 80 m AGL and 0.24 m/px at
120 m AGL) and cut into 640 x 480 frames. The Yellowstone ``crop2`` photo is the training share
(imported as background with ``skygrid vision import --format negatives``); every other photo is held
out for ``bench_vision_realneg``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2

OUT = Path(__file__).resolve().parent / "data" / "realneg"
FRAME_W, FRAME_H = 640, 480
NEON_M_PER_PX = 0.10
#: source file -> (share, metres per pixel of the source or None if unknown)
SOURCES = {
    "2019_YELL_2_528000_4978000_image_crop2.png": ("train", NEON_M_PER_PX),
    "2019_YELL_2_541000_4977000_image_crop.png": ("bench", NEON_M_PER_PX),
    "OSBS_029.png": ("bench", NEON_M_PER_PX),
    "SOAP_031.png": ("bench", NEON_M_PER_PX),
    "SOAP_061.png": ("bench", NEON_M_PER_PX),
    "AWPE Pigeon Lake 2020 DJI_0005.JPG": ("bench", None),
}
TARGET_M_PER_PX = (0.16, 0.24)  # 80 m and 120 m AGL


def _tiles(img, stride_frac: float = 1.0):
    """640 x 480 windows over ``img`` (a smaller image is returned whole)."""
    h, w = img.shape[:2]
    if w <= FRAME_W or h <= FRAME_H:
        yield 0, 0, img
        return
    sx, sy = int(FRAME_W * stride_frac), int(FRAME_H * stride_frac)
    for y in list(range(0, h - FRAME_H, sy)) + [h - FRAME_H]:
        for x in list(range(0, w - FRAME_W, sx)) + [w - FRAME_W]:
            yield x, y, img[y:y + FRAME_H, x:x + FRAME_W]


def main(src_dir: str) -> None:
    lines = ["file,share,source,m_per_px"]
    for name, (share, gsd) in SOURCES.items():
        img = cv2.imread(str(Path(src_dir) / name))
        if img is None:
            raise SystemExit(f"{Path(src_dir) / name}: missing or unreadable")
        stem = name.split(".")[0].replace(" ", "_")
        scales = [(t, gsd / t) for t in TARGET_M_PER_PX] if gsd else [(None, 1.0)]
        for target, r in scales:
            im = cv2.resize(img, None, fx=r, fy=r, interpolation=cv2.INTER_AREA) if r != 1.0 else img
            for x, y, tile in _tiles(im):
                tag = f"{int(target * 100):02d}cm" if target else "native"
                out = OUT / share / f"{stem}_{tag}_{x}_{y}.jpg"
                out.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(out), tile, [cv2.IMWRITE_JPEG_QUALITY, 82])
                lines.append(f"{share}/{out.name},{share},{name},{target if target else ''}")
    (OUT / "MANIFEST.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines) - 1} frames under {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
