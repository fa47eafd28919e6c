"""Letterbox geometry, NMS, tile merging and the ONNX Runtime adapter on non-square frames."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vision.detector import (
    OnnxDetector,
    box_iou,
    decode_yolo_output,
    letterbox,
    merge_tiled,
    nms,
    parse_names,
    tile_origins,
    unletterbox_boxes,
)


@pytest.mark.parametrize(("w", "h"), [(640, 480), (1000, 300), (300, 1000), (5280, 3956), (641, 17)])
def test_letterbox_shape_and_padding(w, h):
    img = np.full((h, w, 3), 200, np.uint8)
    out, scale, (px, py) = letterbox(img, (640, 640))
    assert out.shape == (640, 640, 3)
    assert scale == pytest.approx(min(640 / w, 640 / h))
    # the image sits centred; padding is grey 114 on the short axis only
    nw, nh = round(w * scale), round(h * scale)
    assert out[int(py) + nh // 2, int(px) + nw // 2, 0] == 200
    if nh < 640:
        assert (out[: int(py)] == 114).all() and (out[int(py) + nh:] == 114).all()
        assert abs(py - (640 - nh - py)) <= 1
    if nw < 640:
        assert (out[:, : int(px)] == 114).all() and (out[:, int(px) + nw:] == 114).all()


@pytest.mark.parametrize(("w", "h", "box"), [
    (1000, 300, (700, 40, 820, 260)),
    (300, 1000, (20, 700, 140, 980)),
    (640, 480, (5, 5, 60, 90)),
    (1920, 1080, (1500, 900, 1900, 1070)),
])
def test_box_found_in_letterboxed_canvas_maps_back_to_the_frame(w, h, box):
    """Draw a white box, find it in the model input, map it back: same box within a pixel."""
    img = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    canvas, scale, pad = letterbox(img, (640, 640))
    ys, xs = np.nonzero(canvas[..., 0] > 127)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], float)
    back = unletterbox_boxes(found, scale, pad, (w, h))[0]
    assert back == pytest.approx(box, abs=1.5 / scale)


@settings(max_examples=60, deadline=None)
@given(w=st.integers(32, 4000), h=st.integers(32, 4000), fx=st.floats(0, 0.9), fy=st.floats(0, 0.9))
def test_unletterbox_inverts_the_forward_map(w, h, fx, fy):
    scale = min(640 / w, 640 / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    px, py = float(round((640 - nw) / 2 - 0.1)), float(round((640 - nh) / 2 - 0.1))
    box = np.array([fx * w, fy * h, fx * w + 0.1 * w, fy * h + 0.1 * h])
    fwd = np.array([[box[0] * scale + px, box[1] * scale + py, box[2] * scale + px, box[3] * scale + py]])
    assert unletterbox_boxes(fwd, scale, (px, py), (w, h))[0] == pytest.approx(box, abs=1e-6)


def test_nms_is_class_aware_and_keeps_best():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.6, 0.9, 0.8, 0.5])
    classes = np.array([0, 0, 1, 0])
    keep = nms(boxes, scores, classes, iou=0.5)
    assert list(keep) == [1, 2, 3]  # box 0 suppressed by box 1 (same class); box 2 is another class
    assert list(nms(boxes, scores, None, iou=0.5)) == [1, 3]  # class-agnostic: 1 suppresses 0 and 2
    assert nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.5).size == 0


def test_box_iou():
    assert box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)
    assert box_iou([[0, 0, 10, 10]], [[20, 20, 30, 30]])[0, 0] == 0.0


def test_merge_tiled_joins_parts_cut_by_a_tile_edge():
    # a long object across tiles [0, 640) and [512, 1152): each sees a part, the parts overlap
    # in 512..640; plus an unrelated box and an overlapping box of another class
    boxes = np.array([[480, 100, 640, 160], [512, 98, 700, 162], [900, 900, 950, 950], [490, 100, 540, 160]], float)
    scores = np.array([0.7, 0.9, 0.8, 0.6])
    classes = np.array([0, 0, 0, 2])
    b, s, c = merge_tiled(boxes, scores, classes)
    assert len(b) == 3
    i = int(np.argmax(s))
    assert b[i] == pytest.approx([480, 98, 700, 162]) and s[i] == 0.9 and c[i] == 0
    assert 2 in set(c.tolist())


def test_tile_origins_cover_the_frame():
    for length in (640, 641, 1000, 5280):
        starts = tile_origins(length, 640, 0.2)
        assert starts[0] == 0 and starts[-1] + 640 >= length
        assert all(b - a <= 640 * 0.8 + 1 for a, b in zip(starts, starts[1:], strict=False))


def test_decode_raw_head_transposed_and_end_to_end():
    nc = 4
    raw = np.zeros((1, 4 + nc, 3), np.float32)
    raw[0, :4, 0] = [100, 100, 20, 40]
    raw[0, 4 + 2, 0] = 0.8  # class 2
    raw[0, :4, 1] = [300, 300, 10, 10]
    raw[0, 4 + 1, 1] = 0.3  # class 1, under its threshold below
    thr = np.array([0.25, 0.5, 0.25, 0.25])
    for out in (raw, raw.transpose(0, 2, 1)):
        b, s, c = decode_yolo_output(out, nc, thr)
        assert b.tolist() == [[90, 80, 110, 120]] and c.tolist() == [2] and s[0] == pytest.approx(0.8)
    e2e = np.array([[[10, 20, 30, 40, 0.9, 3], [0, 0, 5, 5, 0.1, 0]]], np.float32)
    b, s, c = decode_yolo_output(e2e, nc, thr)
    assert b.tolist() == [[10, 20, 30, 40]] and c.tolist() == [3]
    with pytest.raises(ValueError, match="classes"):
        decode_yolo_output(np.zeros((1, 7, 5)), nc, thr)


def test_parse_names_from_ultralytics_metadata():
    assert parse_names({"names": "{0: 'a', 1: 'b', 10: 'k', 2: 'c'}"}) == ["a", "b", "c", "k"]
    assert parse_names({"names": "not python"}) is None
    assert parse_names({}) is None


# --- the ONNX Runtime adapter on a constant-output model -----------------------------
pytest.importorskip("onnx")
from tests.vision.onnx_models import const_model as _const_model  # noqa: E402


def test_onnx_detector_maps_boxes_to_a_non_square_frame(tmp_path):
    # frame 1280 x 720 -> scale 0.5, content 640 x 360, pad_y 140
    raw = np.zeros((8, 4), np.float32)
    raw[:4, 0] = [320, 320, 100, 50]; raw[4 + 3, 0] = 0.9  # noqa: E702  class 3 at input centre
    raw[:4, 1] = [322, 321, 100, 50]; raw[4 + 3, 1] = 0.7  # noqa: E702  duplicate: NMS removes
    raw[:4, 2] = [100, 200, 40, 40]; raw[4 + 0, 2] = 0.3  # noqa: E702  class 0, below its own threshold
    raw[:4, 3] = [500, 400, 40, 40]; raw[4 + 1, 3] = 0.6  # noqa: E702  class 1
    names = ["illegal_structure", "straw_burning", "illegal_dumping", "hazmat_fire"]
    model = _const_model(tmp_path / "m.onnx", raw, names=names)
    det = OnnxDetector(model, threads=1, class_conf={"illegal_structure": 0.5})
    assert det.names == names and det.input_size == (640, 640)
    out = det.detect(np.zeros((720, 1280, 3), np.uint8))
    assert [d.class_name for d in out] == ["hazmat_fire", "straw_burning"]
    assert out[0].box == pytest.approx((540, 310, 740, 410))
    assert out[1].box == pytest.approx(((500 - 20) * 2, (400 - 140 - 20) * 2, (500 + 20) * 2, (400 - 140 + 20) * 2))
    # a portrait frame: 360 x 720 -> scale 0.888..., pad_x 160
    s = 640 / 720
    out = det.detect(np.zeros((720, 360, 3), np.uint8))
    assert out[0].box == pytest.approx(((270 - 160) / s, 295 / s, (370 - 160) / s, 345 / s))
    gray = det.detect(np.zeros((720, 1280), np.uint8))  # grey frames are accepted
    assert len(gray) == 2


def test_onnx_detector_tiled_merges_across_tiles(tmp_path):
    raw = np.zeros((8, 1), np.float32)
    raw[:4, 0] = [320, 320, 300, 64]; raw[4, 0] = 0.8  # noqa: E702  centre of every tile
    det = OnnxDetector(_const_model(tmp_path / "m.onnx", raw), threads=1)
    out = det.detect_tiled(np.zeros((640, 1280, 3), np.uint8), tile=640, overlap=0.2, include_full=False)
    # tiles start at 0, 512 and 640: boxes 170-470, 682-982 and 810-1110; the last two
    # overlap (IoU 0.40: NMS keeps both; IoS 0.57) and merge into one
    assert sorted((round(d.box[0]), round(d.box[2])) for d in out) == [(170, 470), (682, 1110)]


def test_onnx_detector_rejects_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError):
        OnnxDetector(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.onnx"):
        OnnxDetector(bad)
    raw = np.zeros((8, 1), np.float32)
    det = OnnxDetector(_const_model(tmp_path / "m.onnx", raw), threads=1)
    with pytest.raises(ValueError, match="class_conf"):
        OnnxDetector(tmp_path / "m.onnx", class_conf={"unicorn": 0.3})
    with pytest.raises(ValueError, match="dtype"):
        det.detect(np.zeros((10, 10, 3), np.float32))
