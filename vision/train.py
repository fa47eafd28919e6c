"""Train the patrol detector with ultralytics and export it to ONNX.

The only module that imports ultralytics/torch (imported inside the functions, after the
offline settings are in place). A nano model is built from its yaml (no pretrained
weights: nothing may download here), trained on a YOLO dataset (see :mod:`vision.dataset`,
:mod:`vision.importers`) and exported to ONNX for ONNX Runtime on CPU. The class names
are embedded in the ONNX metadata (ultralytics' ``names``) and written to a sidecar JSON
next to the model.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vision.classes import PATROL_CLASSES

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_YAML = "yolo26n.yaml"
DEFAULT_OPSET = 17  # onnxruntime >= 1.12 runs it
MODEL_NAME = "skygrid-yolo"


@dataclass
class TrainResult:
    """Where training left its outputs and how well the model did on the validation split."""

    weights: Path  # best.pt
    onnx: Path | None
    metrics: dict[str, float] = field(default_factory=dict)  # mAP50 overall and per class
    epochs: int = 0
    imgsz: int = 0
    seconds: float = 0.0


def _find_font() -> Path | None:
    for p in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"):
        if Path(p).is_file():
            return Path(p)
    try:
        import matplotlib

        p = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return p if p.is_file() else None
    except ImportError:
        return None


def configure_offline(config_dir: Path | None = None) -> Path:
    """Make ultralytics work without network: offline, no auto-install, a local config dir
    with a local TTF copied in as ``Arial.ttf`` (its plots would otherwise download one).
    Call before importing ultralytics. Returns the config dir."""
    cfg = Path(config_dir or os.environ.get("YOLO_CONFIG_DIR") or REPO_ROOT / "work" / "ultralytics")
    (cfg / "Ultralytics").mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_CONFIG_DIR"] = str(cfg)
    os.environ["YOLO_OFFLINE"] = "true"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        dst = cfg / "Ultralytics" / name
        font = _find_font()
        if not dst.exists() and font is not None:
            shutil.copyfile(font, dst)
    return cfg


def _ultralytics():
    configure_offline()
    import ultralytics
    from ultralytics.utils import SETTINGS

    SETTINGS.update({"sync": False})
    return ultralytics


def train(data_dir: str | Path, epochs: int = 40, imgsz: int = 480, out_dir: str | Path = "vision/models",
          model_yaml: str = DEFAULT_MODEL_YAML, batch: int = 16, workers: int = 0, seed: int = 0,
          device: str = "cpu", export: bool = True, project: str | Path | None = None,
          name: str = "train", patience: int = 100, fraction: float = 1.0, threads: int = 1,
          hours: float | None = None) -> TrainResult:
    """Train ``model_yaml`` (a .yaml: from scratch; a .pt: fine-tune its weights) on
    ``data_dir/data.yaml`` and (optionally) export ONNX
    as ``out_dir/skygrid-yolo.onnx`` (+ ``.json`` sidecar with class names and training facts).

    Augmentation is the ultralytics default minus mosaic in the last epochs; ``workers=0``
    keeps it to one process on a shared CPU. ``imgsz`` in pixels (the exported input size).
    ``threads``: torch CPU threads (1 is fastest on an oversubscribed CPU: OpenMP workers
    otherwise spin). The nominal batch equals ``batch`` (an optimizer step per batch: short
    CPU runs need steps more than gradient accumulation). ``hours``: a wall-clock budget; ultralytics then fits the epoch count to
    it after the first epoch. ``fraction``: share of the train split used.
    """
    data_yaml = Path(data_dir) / "data.yaml"
    if not data_yaml.is_file():
        raise FileNotFoundError(f"{data_yaml}: no data.yaml; generate one with `skygrid vision dataset --out {data_dir}`")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    ul = _ultralytics()
    import torch

    torch.set_num_threads(threads)
    project = Path(project or REPO_ROOT / "work" / "runs")
    t0 = time.monotonic()
    model = ul.YOLO(model_yaml)
    # a .pt starts from its weights (fine-tuning); a .yaml from scratch. ultralytics drops a
    # checkpoint's weights when pretrained=False, so it must follow the model kind
    finetune = str(model_yaml).endswith(".pt")
    model.train(data=str(data_yaml.resolve()), epochs=epochs, imgsz=imgsz, batch=batch, workers=workers,
                device=device, seed=seed, deterministic=True, project=str(project.resolve()), name=name,
                exist_ok=True, pretrained=finetune, amp=False, plots=False, verbose=False, patience=patience,
                close_mosaic=max(1, min(5, epochs // 5)), fraction=fraction, cache="ram",
                warmup_epochs=min(1.0, epochs / 10), nbs=batch,
                **({"time": hours} if hours else {}))
    save_dir = Path(model.trainer.save_dir)
    best = save_dir / "weights" / "best.pt"
    if not best.is_file():
        best = save_dir / "weights" / "last.pt"
    metrics = validate(best, data_dir, imgsz=imgsz, split="val")
    ran = int(getattr(model.trainer, "epoch", epochs - 1)) + 1  # a time budget may stop before `epochs`
    result = TrainResult(best, None, metrics, ran, imgsz, time.monotonic() - t0)
    if export:
        result.onnx = export_onnx(best, Path(out_dir) / f"{MODEL_NAME}.onnx", imgsz=imgsz,
                                  facts={"epochs": ran, "seed": seed, "model_yaml": model_yaml,
                                         "data": str(data_dir), "val_metrics": metrics})
    return result


def validate(weights: str | Path, data_dir: str | Path, imgsz: int = 480, split: str = "val") -> dict[str, float]:
    """mAP50 (overall and per class) of a ``.pt`` or ``.onnx`` model on a dataset split (ultralytics' val)."""
    ul = _ultralytics()
    model = ul.YOLO(str(weights), task="detect")
    r = model.val(data=str((Path(data_dir) / "data.yaml").resolve()), imgsz=imgsz, split=split, batch=16,
                  device="cpu", workers=0, plots=False, verbose=False,
                  project=str((REPO_ROOT / "work" / "runs").resolve()), name=f"val-{split}", exist_ok=True)
    out = {"mAP50": float(r.box.map50), "mAP50-95": float(r.box.map)}
    names = r.names
    for i, c in enumerate(r.box.ap_class_index):
        out[f"mAP50/{names[int(c)]}"] = float(r.box.ap50[i])
    return out


def export_onnx(weights: str | Path, out_path: str | Path, imgsz: int = 480, opset: int = DEFAULT_OPSET,
                facts: dict | None = None) -> Path:
    """Export a trained ``.pt`` to ONNX at ``out_path`` (fixed input 1x3xIMGSZxIMGSZ, raw head
    output ``[1, 4 + classes, N]`` — NMS is the caller's), with the class names in the ONNX
    metadata and a sidecar ``<out>.json``: class names, input size, opset, training facts."""
    ul = _ultralytics()
    model = ul.YOLO(str(weights))
    names = [model.names[i] for i in range(len(model.names))]
    if tuple(names) != PATROL_CLASSES[: len(names)]:
        # imported datasets must map onto the patrol classes in index order
        raise ValueError(f"{weights}: class names {names} are not the patrol classes {list(PATROL_CLASSES)}")
    exported = Path(model.export(format="onnx", imgsz=imgsz, opset=opset, simplify=False, dynamic=False,
                                 device="cpu", verbose=False))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    _embed_metadata(exported, out, names, imgsz)
    sidecar = out.with_suffix(".json")
    sidecar.write_text(json.dumps({"model": out.name, "names": names, "imgsz": imgsz, "opset": opset,
                                   "input": "images [1,3,imgsz,imgsz] RGB 0..1, letterboxed (pad 114)",
                                   "output": "[1, 4 + classes, N]: cx, cy, w, h (input pixels), class scores",
                                   **(facts or {})}, indent=2, default=str) + "\n", encoding="utf-8")
    return out


def _embed_metadata(src: Path, dst: Path, names: list[str], imgsz: int) -> None:
    """Copy the ONNX model, adding ``skygrid_names`` (JSON list) next to ultralytics' ``names``."""
    import onnx

    m = onnx.load(str(src))
    meta = {p.key: p.value for p in m.metadata_props}
    meta["skygrid_names"] = json.dumps(names)
    meta["skygrid_imgsz"] = str(imgsz)
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(dst))


def result_dict(r: TrainResult) -> dict:
    d = asdict(r)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}
