"""Evidence images: size and type checks, content-addressed storage on disk.

An image must be at most ``max_bytes``, start with JPEG (FF D8 FF) or PNG magic bytes
matching its declared content type, declare at most ``max_pixels`` in its header (checked
before decoding), and decode (OpenCV) to a non-empty picture; it is stored re-encoded. Files
are stored as ``<evidence_dir>/<sha[:2]>/<sha>.<ext>``, written atomically (temp file +
rename + fsync) before the database row that points at them is committed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import uuid
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
    received_bytes: int = 0  # size as uploaded (``data`` is the re-encoded image)


def decode_b64(data_b64: str, field: str) -> bytes:
    try:
        return base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ApiError(422, f"{field}: not valid base64 ({e})", field) from None


def image_size(data: bytes, content_type: str) -> tuple[int, int] | None:
    """(width, height) from the PNG IHDR or the JPEG start-of-frame header, without
    decoding; None when the header is not where the format puts it."""
    if content_type == "image/png":
        if len(data) >= 24 and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return None
    i, n = 2, len(data)  # JPEG: walk the marker segments up to the first SOFn
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # standalone markers, no length
            i += 2
            continue
        seg = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF and i + 9 <= n:
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        if marker in (0xD9, 0xDA) or seg < 2:  # end of image / scan data before any frame header
            return None
        i += 2 + seg
    return None


_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def check_image(data: bytes, content_type: str, field: str, max_bytes: int,
                max_pixels: int = 24_000_000) -> CheckedImage:
    """Validate an evidence image and re-encode it; raise :class:`ApiError` (413/415/422)
    naming ``field``.

    The decoded size (width x height from the header) must be at most ``max_pixels``
    before anything is decoded: a 729 KiB PNG that decodes to 16000x16000 took 10.6 s and
    1.66 GB. What is stored is the decoded picture encoded again (JPEG quality 95 with the
    EXIF orientation applied, or PNG), so bytes appended to an image or hidden in its
    metadata (a script, a polyglot) are never served back."""
    if len(data) > max_bytes:
        raise ApiError(413, f"{field}: image is {len(data)} bytes, more than the {max_bytes} allowed", field)
    if content_type not in MAGIC:
        raise ApiError(415, f"{field}: content type {content_type!r} not accepted; use image/jpeg or image/png",
                       field)
    if not data.startswith(MAGIC[content_type]):
        raise ApiError(415, f"{field}: bytes are not a {content_type} image (magic bytes differ)", field)
    size = image_size(data, content_type)
    if size is None or 0 in size:
        raise ApiError(422, f"{field}: no readable {content_type} header with the picture's size", field)
    w, h = size
    if w * h > max_pixels:
        raise ApiError(413, f"{field}: image is {w}x{h} = {w * h} pixels, more than the {max_pixels} allowed", field)
    import cv2
    import numpy as np

    flags = cv2.IMREAD_COLOR if content_type == "image/jpeg" else cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if img is None or img.size == 0:
        raise ApiError(422, f"{field}: image does not decode as {content_type}", field)
    if content_type == "image/jpeg":
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    else:
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ApiError(422, f"{field}: image could not be re-encoded as {content_type}", field)
    clean = buf.tobytes()
    return CheckedImage(clean, content_type, int(img.shape[1]), int(img.shape[0]), hashlib.sha256(clean).hexdigest(),
                        len(data))


def store(evidence_dir: str | Path, img: CheckedImage) -> str:
    """Write the image (idempotent, atomic); return its path relative to ``evidence_dir``."""
    rel = f"{img.sha256[:2]}/{img.sha256}.{EXT[img.content_type]}"
    path = Path(evidence_dir) / rel
    if path.exists() and path.stat().st_size == len(img.data):
        return rel
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique temporary name: replicas on several hosts may share the directory (NFS) and
    # store the same image at once; each renames its own complete file into place
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}-{uuid.uuid4().hex}")
    with open(tmp, "wb") as f:
        f.write(img.data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return rel
