"""How :func:`vision.train.train` drives ultralytics (a fake stands in: no torch needed).

Fine-tuning from a checkpoint must keep its weights: ultralytics drops them when
``pretrained=False``, which silently turned a fine-tune into training from scratch.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest

import vision.train as vt


class _FakeYOLO:
    calls: list[tuple[str, dict]] = []

    def __init__(self, model: str, task: str | None = None) -> None:
        self.model = model

    def train(self, **kw) -> None:
        _FakeYOLO.calls.append((self.model, kw))
        save = Path(kw["project"]) / kw["name"]
        (save / "weights").mkdir(parents=True, exist_ok=True)
        (save / "weights" / "best.pt").write_bytes(b"pt")
        self.trainer = types.SimpleNamespace(save_dir=save, epoch=kw["epochs"] - 1)


@pytest.fixture
def fake_ultralytics(monkeypatch, tmp_path):
    _FakeYOLO.calls = []
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # train() sets it; restored after the test
    monkeypatch.setattr(vt, "_ultralytics", lambda: types.SimpleNamespace(YOLO=_FakeYOLO))
    monkeypatch.setattr(vt, "validate", lambda *a, **k: {"mAP50": 0.5})
    monkeypatch.setitem(__import__("sys").modules, "torch", types.SimpleNamespace(set_num_threads=lambda n: None))
    data = tmp_path / "ds"
    data.mkdir()
    (data / "data.yaml").write_text("names: {}\n")
    return data


@pytest.mark.parametrize(("model", "pretrained"), [("yolo11n.yaml", False), ("work/base.pt", True)])
def test_checkpoint_is_fine_tuned_and_yaml_starts_from_scratch(fake_ultralytics, tmp_path, model, pretrained) -> None:
    r = vt.train(fake_ultralytics, epochs=3, imgsz=320, model_yaml=model, export=False, project=tmp_path / "runs")
    (used, kw), = _FakeYOLO.calls
    assert used == model
    assert kw["pretrained"] is pretrained
    assert kw["imgsz"] == 320 and r.epochs == 3 and r.weights.name == "best.pt"


def test_missing_data_yaml_names_the_folder(fake_ultralytics, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no data.yaml"):
        vt.train(tmp_path / "nowhere", export=False)
