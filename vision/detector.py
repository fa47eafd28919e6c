"""YOLO inference with ONNX Runtime (CPU by default), no torch needed.

The model is an ultralytics ONNX export: input ``[1, 3, S, S]`` float RGB in [0, 1],
letterboxed (aspect kept, grey 114 padding, centred); output ``[1, 4 + nc, N]`` with boxes
as (cx, cy, w, h) in input pixels followed by one score per class (no objectness), so NMS
runs here. End-to-end exports (``[1, N, 6]`` rows ``x1, y1, x2, y2, score, class``, as
YOLO26 can produce) are accepted too. Class names come from the model's ``names`` metadata,
falling back to :data:`vision.classes.PATROL_CLASSES`.

Everything image-geometric is a small pure function (:func:`letterbox`,
:func:`unletterbox_boxes`, :func:`nms`, :func:`merge_tiled`) so it can be tested without a
model. ``OnnxDetector.detect`` is thread-safe (ONNX Runtime sessions allow concurrent
``run`` calls).
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.classes import PATROL_CLASSES
from vision.contracts import Detection

log = logging.getLogger(__name__)

PAD_VALUE = 114  # ultralytics' letterbox grey


# --------------------------------------------------------------------------------------
# pure geometry
# --------------------------------------------------------------------------------------
def letterbox(image: np.ndarray, size: tuple[int, int], pad_value: int = PAD_VALUE) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize ``image`` (H x W x C) into ``size`` = (height, width) keeping its aspect ratio.

    Returns (canvas, scale, (pad_x, pad_y)): a model-input pixel p maps back to the source
    pixel ``(p - pad) / scale``. Padding is split evenly on both sides, as ultralytics does.
    """
    h, w = image.shape[:2]
    th, tw = size
    scale = min(th / h, tw / w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(image, (nw, nh), interpolation=interp)
    else:
        resized = image
    pad_x, pad_y = (tw - nw) / 2.0, (th - nh) / 2.0
    left, top = round(pad_x - 0.1), round(pad_y - 0.1)
    canvas = np.full((th, tw, image.shape[2]), pad_value, dtype=image.dtype)
    canvas[top:top + nh, left:left + nw] = resized
    return canvas, scale, (float(left), float(top))


def unletterbox_boxes(boxes: np.ndarray, scale: float, pad: tuple[float, float], frame_wh: tuple[int, int]) -> np.ndarray:
    """Model-input xyxy boxes (N x 4) -> source-frame pixels, clipped to the frame (W, H)."""
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    out[:, [0, 2]] = (out[:, [0, 2]] - pad[0]) / scale
    out[:, [1, 3]] = (out[:, [1, 3]] - pad[1]) / scale
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, frame_wh[0])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, frame_wh[1])
    return out


def xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    """(cx, cy, w, h) -> (x1, y1, x2, y2), N x 4."""
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (N x 4, M x 4) -> N x M."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    inter = _intersection(a, b)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    return (x2 - x1).clip(0) * (y2 - y1).clip(0)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray | None, iou: float, max_det: int = 300) -> np.ndarray:
    """Class-aware greedy NMS; returns kept indices, best score first.

    Boxes of different classes never suppress each other (the usual per-class offset trick:
    each class is shifted to its own region of the plane before one NMS pass).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    if classes is not None:
        span = float(np.abs(boxes).max()) + 1.0
        boxes = boxes + (np.asarray(classes, dtype=np.float64).reshape(-1, 1) * 2.0 * span)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_det:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        ious = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou]
    return np.asarray(keep, dtype=np.int64)


def merge_tiled(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, match_ios: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy non-maximum *merging* of boxes from overlapping tiles (as SAHI's GREEDYNMM).

    An object cut by a tile edge gives a partial box in each tile; IoU between a part and
    the whole is low, so matching uses intersection over the *smaller* area (IoS). Matched
    boxes of the same class are replaced by their union, keeping the highest score.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    order = list(np.argsort(-scores, kind="stable"))
    out_b, out_s, out_c = [], [], []
    used = np.zeros(len(boxes), dtype=bool)
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    for i in order:
        if used[i]:
            continue
        used[i] = True
        merged = boxes[i].copy()
        changed = True
        while changed:  # a grown box may now reach further parts
            changed = False
            cand = np.where(~used & (classes == classes[i]))[0]
            if cand.size == 0:
                break
            inter = _intersection(merged[None, :], boxes[cand])[0]
            m_area = (merged[2] - merged[0]) * (merged[3] - merged[1])
            smaller = np.minimum(m_area, area[cand])
            ios = np.where(smaller > 0, inter / np.where(smaller > 0, smaller, 1), 0.0)
            hit = cand[ios >= match_ios]
            if hit.size:
                used[hit] = True
                merged = np.array([min(merged[0], boxes[hit, 0].min()), min(merged[1], boxes[hit, 1].min()),
                                   max(merged[2], boxes[hit, 2].max()), max(merged[3], boxes[hit, 3].max())])
                changed = True
        out_b.append(merged)
        out_s.append(scores[i])
        out_c.append(classes[i])
    if not out_b:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.asarray(out_b), np.asarray(out_s), np.asarray(out_c, dtype=np.int64)


def tile_origins(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of ``tile`` px covering ``length`` px with at least ``overlap`` (0..1)."""
    if length <= tile:
        return [0]
    stride = max(1, int(tile * (1.0 - overlap)))
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return sorted(set(starts))


def decode_yolo_output(out: np.ndarray, nc: int, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw model output -> (xyxy boxes in model-input px, scores, class ids) above threshold.

    ``thresholds`` holds one confidence threshold per class. Accepts the raw head
    ``[1, 4 + nc, N]`` (or its transpose) and end-to-end ``[1, N, 6]``.
    """
    a = np.asarray(out)
    if a.ndim == 3:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"unexpected model output shape {np.shape(out)}")
    if a.shape[1] == 6 and a.shape[0] != 4 + nc:  # end-to-end: x1 y1 x2 y2 score cls
        cls = a[:, 5].astype(np.int64).clip(0, nc - 1)
        score = a[:, 4].astype(np.float64)
        keep = score >= thresholds[cls]
        return a[keep, :4].astype(np.float64), score[keep], cls[keep]
    if a.shape[0] != 4 + nc and a.shape[1] == 4 + nc:
        a = a.T
    if a.shape[0] != 4 + nc:
        raise ValueError(f"model output {np.shape(out)} does not match {nc} classes (expected [1, {4 + nc}, N])")
    cls_scores = a[4:]
    cls = cls_scores.argmax(axis=0)
    score = cls_scores[cls, np.arange(cls_scores.shape[1])].astype(np.float64)
    keep = score >= thresholds[cls]
    return xywh_to_xyxy(a[:4, keep].T), score[keep], cls[keep].astype(np.int64)


def parse_names(meta: dict[str, str]) -> list[str] | None:
    """Class names from ultralytics ONNX metadata (``names`` = "{0: 'a', 1: 'b'}"), or None."""
    raw = meta.get("names")
    if not raw:
        return None
    try:
        val = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(val, dict):
        return [str(val[k]) for k in sorted(val, key=int)]
    if isinstance(val, list | tuple):
        return [str(v) for v in val]
    return None


# --------------------------------------------------------------------------------------
# the ONNX Runtime adapter
# --------------------------------------------------------------------------------------
class OnnxDetector:
    """A YOLO ONNX model run with ONNX Runtime.

    ``conf`` is the default confidence threshold; ``class_conf`` overrides it per class
    name. ``iou`` is the NMS IoU threshold. ``imgsz`` is only needed for models exported
    with a dynamic input size (default: the model's fixed input size, else its ``imgsz``
    metadata, else 640). ``threads`` sets ONNX Runtime's intra-op threads (2 on this CPU).
    ``providers`` defaults to CPU; pass e.g. ``["CUDAExecutionProvider", "CPUExecutionProvider"]``
    where onnxruntime-gpu is installed. ``spin``: let ONNX Runtime's threads busy-wait
    between runs (faster only on an otherwise idle machine).
    """

    def __init__(self, model_path: str | Path, providers: Sequence[str] | None = None, threads: int = 2,
                 conf: float = 0.25, class_conf: dict[str, float] | None = None, iou: float = 0.5,
                 imgsz: int | tuple[int, int] | None = None, max_det: int = 300, spin: bool = False) -> None:
        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Worker threads busy-wait between runs by default. On a shared 2-core machine that
        # steals the CPU the renderer, the other threads and the next frame need: measured
        # here, 2 threads take 52-58 ms per 320 px frame spinning, 27 ms not spinning.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        avail = ort.get_available_providers()
        wanted = list(providers) if providers else ["CPUExecutionProvider"]
        use = [p for p in wanted if p in avail] or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=use)
        except Exception as e:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: not a loadable ONNX model: {e}") from None
        self.model_path = path
        self.providers = use
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        meta = dict(self.session.get_modelmeta().custom_metadata_map or {})
        self.metadata = meta
        self.input_size = self._input_size(inp.shape, meta, imgsz)
        names = parse_names(meta)
        out_shape = self.session.get_outputs()[0].shape
        if names is None:
            names = list(PATROL_CLASSES)
            if isinstance(out_shape[1], int) and out_shape[1] > 4 and out_shape[1] - 4 != len(names):
                names = [f"class_{i}" for i in range(out_shape[1] - 4)]
        self.names: list[str] = names
        dims = [d for d in out_shape[1:] if isinstance(d, int)]
        if len(out_shape) == 3 and len(dims) == 2 and 4 + len(names) not in dims and 6 not in dims:
            raise ValueError(f"{path}: output shape {out_shape} does not fit its {len(names)} class names {names} "
                             f"(expected [1, {4 + len(names)}, N])")
        self.conf = float(conf)
        self.iou = float(iou)
        self.max_det = int(max_det)
        self.class_conf = dict(class_conf or {})
        unknown = set(self.class_conf) - set(self.names)
        if unknown:
            raise ValueError(f"class_conf names {sorted(unknown)} are not model classes {self.names}")
        self.thresholds = np.array([self.class_conf.get(n, self.conf) for n in self.names], dtype=np.float64)

    @staticmethod
    def _input_size(shape: Sequence[Any], meta: dict[str, str], imgsz: int | tuple[int, int] | None) -> tuple[int, int]:
        if imgsz is not None:
            return (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
        if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
            return int(shape[2]), int(shape[3])
        try:
            v = ast.literal_eval(meta.get("imgsz", "640"))
            return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))
        except (ValueError, SyntaxError, TypeError, IndexError):
            return 640, 640

    # ---------------------------------------------------------------------------------
    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float, tuple[float, float]]:
        """BGR uint8 frame -> (NCHW float32 RGB blob, scale, pad)."""
        canvas, scale, pad = letterbox(image, self.input_size)
        blob = cv2.dnn.blobFromImage(canvas, scalefactor=1.0 / 255.0, swapRB=True)
        return blob, scale, pad

    def _raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detections on one image (no NMS yet): boxes xyxy in source pixels, scores, classes."""
        image = _as_bgr(image)
        blob, scale, pad = self.preprocess(image)
        out = self.session.run(None, {self.input_name: blob})[0]
        boxes, scores, cls = decode_yolo_output(out, len(self.names), self.thresholds)
        h, w = image.shape[:2]
        return unletterbox_boxes(boxes, scale, pad, (w, h)), scores, cls

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detections on a BGR frame of any size, boxes in that frame's pixels, best first."""
        boxes, scores, cls = self._raw(image)
        keep = nms(boxes, scores, cls, self.iou, self.max_det)
        return self._to_detections(boxes[keep], scores[keep], cls[keep])

    def detect_tiled(self, image: np.ndarray, tile: int = 640, overlap: float = 0.2, include_full: bool = True) -> list[Detection]:
        """Sliced inference for frames much larger than the model input.

        The frame is cut into ``tile`` px squares overlapping by ``overlap`` (fraction), each
        run at full resolution (small objects stay large enough to detect); with
        ``include_full`` a downscaled whole-frame pass catches objects larger than a tile.
        Boxes are NMS'd per class, then parts of one object cut by tile edges are merged.
        """
        image = _as_bgr(image)
        h, w = image.shape[:2]
        all_b, all_s, all_c = [], [], []
        for y0 in tile_origins(h, tile, overlap):
            for x0 in tile_origins(w, tile, overlap):
                b, s, c = self._raw(image[y0:y0 + tile, x0:x0 + tile])
                b[:, [0, 2]] += x0
                b[:, [1, 3]] += y0
                all_b.append(b)
                all_s.append(s)
                all_c.append(c)
        if include_full and (h > tile or w > tile):
            b, s, c = self._raw(image)
            all_b.append(b)
            all_s.append(s)
            all_c.append(c)
        boxes = np.concatenate(all_b) if all_b else np.zeros((0, 4))
        scores = np.concatenate(all_s) if all_s else np.zeros(0)
        cls = np.concatenate(all_c) if all_c else np.zeros(0, dtype=np.int64)
        keep = nms(boxes, scores, cls, self.iou, self.max_det * 4)
        mb, ms, mc = merge_tiled(boxes[keep], scores[keep], cls[keep])
        return self._to_detections(mb[: self.max_det], ms[: self.max_det], mc[: self.max_det])

    def _to_detections(self, boxes: np.ndarray, scores: np.ndarray, cls: Iterable[int]) -> list[Detection]:
        return [
            Detection(class_name=self.names[int(c)], class_id=int(c), confidence=float(s),
                      box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])))
            for b, s, c in zip(boxes, scores, cls, strict=True)
            if b[2] - b[0] > 0.5 and b[3] - b[1] > 0.5
        ]

    def __repr__(self) -> str:
        return f"OnnxDetector({self.model_path.name}, input={self.input_size}, classes={self.names}, providers={self.providers})"


class UltralyticsDetector:
    """Optional GPU backend: the ultralytics/torch predictor (``.pt`` or ``.onnx``).

    Only for machines with a CUDA GPU; torch is imported when this is constructed, never at
    module import. Same ``detect`` contract as :class:`OnnxDetector`.
    """

    def __init__(self, model_path: str | Path, device: str | int = 0, conf: float = 0.25,
                 class_conf: dict[str, float] | None = None, iou: float = 0.5, imgsz: int = 640) -> None:
        from ultralytics import YOLO  # heavy: torch

        self.model = YOLO(str(model_path), task="detect")
        self.device, self.conf, self.iou, self.imgsz = device, float(conf), float(iou), int(imgsz)
        names = self.model.names
        self.names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
        self.class_conf = dict(class_conf or {})

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = _as_bgr(image)
        low = min([self.conf, *self.class_conf.values()])
        res = self.model.predict(image, conf=low, iou=self.iou, imgsz=self.imgsz, device=self.device, verbose=False)[0]
        b = res.boxes
        out = []
        for xyxy, s, c in zip(b.xyxy.cpu().numpy(), b.conf.cpu().numpy(), b.cls.cpu().numpy().astype(int), strict=True):
            name = self.names[c]
            if s >= self.class_conf.get(name, self.conf):
                out.append(Detection(name, int(c), float(s), tuple(float(v) for v in xyxy)))
        return out


def gpu_available() -> bool:
    """True when a CUDA device is usable by ONNX Runtime or torch (torch checked only if installed)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return True
    try:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return False
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # a broken torch install means "no GPU"
        return False


def operating_point(model_path: str | Path) -> dict[str, Any]:
    """The thresholds a model's card recommends, from its sidecar ``<model>.json``.

    Returns ``{"conf": float, "class_conf": {class: float}}`` (empty when the sidecar has no
    ``operating_point``), ready to pass to :class:`OnnxDetector`. Keeping them beside the
    weights means a retrained model brings its own thresholds to the patrol and benchmarks.
    """
    import json

    sidecar = Path(model_path).with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        op = json.loads(sidecar.read_text(encoding="utf-8")).get("operating_point") or {}
    except ValueError as e:
        raise ValueError(f"{sidecar}: invalid JSON: {e}") from None
    out: dict[str, Any] = {}
    if "conf" in op:
        out["conf"] = float(op["conf"])
    if op.get("class_conf"):
        out["class_conf"] = {str(k): float(v) for k, v in op["class_conf"].items()}
    return out


def create_detector(model_path: str | Path, device: str = "cpu", threads: int = 2, **kw: Any) -> OnnxDetector | UltralyticsDetector:
    """``device``: "cpu" (ONNX Runtime, the default), "gpu" (CUDA or error), "auto" (GPU when present).

    On a GPU, ONNX Runtime's CUDA provider is used when onnxruntime-gpu is installed,
    else the ultralytics/torch predictor.
    """
    if device not in ("cpu", "gpu", "auto"):
        raise ValueError(f"device must be cpu, gpu or auto, got {device!r}")
    if device == "cpu" or (device == "auto" and not gpu_available()):
        return OnnxDetector(model_path, threads=threads, **kw)
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return OnnxDetector(model_path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"], threads=threads, **kw)
    if not gpu_available():
        raise RuntimeError("device='gpu' but neither onnxruntime-gpu nor torch sees a CUDA device")
    kw.pop("providers", None)
    kw.pop("max_det", None)
    imgsz = kw.pop("imgsz", None) or 640
    return UltralyticsDetector(model_path, device=0, imgsz=imgsz if isinstance(imgsz, int) else imgsz[0], **kw)


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """Accept gray, BGR or BGRA uint8; anything else is a clear error."""
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise ValueError("image is empty or not a numpy array")
    if image.dtype != np.uint8:
        raise ValueError(f"image dtype must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    raise ValueError(f"image must be H x W, H x W x 3 or H x W x 4, got shape {image.shape}")
