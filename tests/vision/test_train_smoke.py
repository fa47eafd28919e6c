"""Smoke test: train one epoch at 160 px on a tiny rendered set and export ONNX (~10-40 s)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("ultralytics")
pytestmark = pytest.mark.train


def test_train_one_epoch_and_export(tmp_path) -> None:
    import onnxruntime as ort

    from vision.classes import PATROL_CLASSES
    from vision.dataset import generate_dataset
    from vision.train import train

    data = tmp_path / "ds"
    generate_dataset(data, 8, 2, 0, seed=3)
    r = train(data, epochs=1, imgsz=160, out_dir=tmp_path / "model", batch=4, project=tmp_path / "runs",
              name="smoke")
    assert r.weights.is_file() and r.onnx is not None and r.onnx.is_file()
    assert "mAP50" in r.metrics and 0.0 <= r.metrics["mAP50"] <= 1.0
    sess = ort.InferenceSession(str(r.onnx), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    assert inp.shape == [1, 3, 160, 160]
    out = sess.run(None, {inp.name: np.zeros((1, 3, 160, 160), np.float32)})[0]
    assert out.shape[:2] == (1, 4 + len(PATROL_CLASSES))  # raw head: NMS is the detector's
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["skygrid_names"]) == list(PATROL_CLASSES)
    side = json.loads(r.onnx.with_suffix(".json").read_text())
    assert side["names"] == list(PATROL_CLASSES) and side["imgsz"] == 160
