"""Evidence images: size and type checks, content-addressed storage on disk.

An image must be at most ``max_bytes``, start with JPEG (FF D8 FF) or PNG magic bytes
matching its declared content type, and decode (OpenCV) to a non-empty picture. Files
are stored as ``<evidence_dir>/<sha[:2]>/<sha>.<ext>``, written atomically (temp file +
rename + fsync) before the database row that points at them is committed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from dispatch.errors import ApiError

MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}
EXT = {"image/jpeg": "jpg", "image/png": "png"}


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    content_type: str
    width: int
    height: int
    sha256: str


def decode_b64(data_b64: str, field: str) -> bytes:
    try:
        return base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ApiError(422, f"{field}: not valid base64 ({e})", field) from None


def check_image(data: bytes, content_type: str, field: str, max_bytes: int) -> CheckedImage:
    """Validate an evidence image; raise :class:`ApiError` (413/415/422) naming ``field``."""
    if len(data) > max_bytes:
        raise ApiError(413, f"{field}: image is {len(data)} bytes, more than the {max_bytes} allowed", field)
    if content_type not in MAGIC:
        raise ApiError(415, f"{field}: content type {content_type!r} not accepted; use image/jpeg or image/png",
                       field)
    if not data.startswith(MAGIC[content_type]):
        raise ApiError(415, f"{field}: bytes are not a {content_type} image (magic bytes differ)", field)
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ApiError(422, f"{field}: image does not decode as {content_type}", field)
    return CheckedImage(data, content_type, int(img.shape[1]), int(img.shape[0]),
                        hashlib.sha256(data).hexdigest())


def store(evidence_dir: str | Path, img: CheckedImage) -> str:
    """Write the image (idempotent, atomic); return its path relative to ``evidence_dir``."""
    rel = f"{img.sha256[:2]}/{img.sha256}.{EXT[img.content_type]}"
    path = Path(evidence_dir) / rel
    if path.exists() and path.stat().st_size == len(img.data):
        return rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(img.data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return rel
