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
    if str(model_yaml).endswith(".onnx"):  # fine-tune an exported model: rebuild its .pt first
        calib = sorted((Path(data_dir) / "images" / "train").glob("*.jpg"))[:64]
        model_yaml = str(pt_from_onnx(model_yaml, project / f"{name}-from-onnx.pt", calib))
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


def _letterbox(img, imgsz: int):
    """BGR uint8 image -> float32 1 x 3 x imgsz x imgsz RGB 0..1, letterboxed (pad 114), as the detector feeds it."""
    import cv2
    import numpy as np

    h, w = img.shape[:2]
    r = imgsz / max(h, w)
    nw, nh = round(w * r), round(h * r)
    canvas = np.full((imgsz, imgsz, 3), 114, np.uint8)
    top, left = (imgsz - nh) // 2, (imgsz - nw) // 2
    canvas[top:top + nh, left:left + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0


def pt_from_onnx(onnx_path: str | Path, out_pt: str | Path, calib_images: list[Path] | tuple = (),
                 model_yaml: str = "yolo11n.yaml") -> Path:
    """Rebuild a trainable ultralytics ``.pt`` from an exported ONNX of ``model_yaml`` (the
    shipped model came without its ``.pt``).

    The export fused every Conv+BatchNorm into one conv with a bias; the initializers keep
    the module names (``model.2.cv1.conv.weight`` / ``.bias``). Each BatchNorm is set so that
    in eval mode the net computes exactly the ONNX function: with the pre-BN per-channel
    mean ``mu`` and variance ``var`` of the conv outputs measured on ``calib_images`` (a few
    dozen training frames), gamma = sqrt(var + eps), beta = bias + mu, running stats = (mu,
    var). Training-mode batch statistics then start close to the running ones, so fine-tuning
    starts from the shipped function rather than from a broken one (with no calibration
    images the BN is identity: exact in eval mode only).
    """
    import cv2
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    _ultralytics()
    from ultralytics.nn.modules.conv import Conv
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils import DEFAULT_CFG_DICT

    m = onnx.load(str(onnx_path))
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in m.graph.initializer}
    meta = {p.key: p.value for p in m.metadata_props}
    try:
        names = json.loads(meta["skygrid_names"])
    except (KeyError, ValueError):
        raise ValueError(f"{onnx_path}: no skygrid_names metadata; not a SkyGrid detector export") from None
    imgsz = int(meta.get("skygrid_imgsz", 320))
    model = DetectionModel(model_yaml, nc=len(names), verbose=False)
    convs = {name: mod for name, mod in model.named_modules() if isinstance(mod, Conv) and hasattr(mod, "bn")}
    used: set[str] = set()
    with torch.no_grad():
        for name, mod in convs.items():
            w, b = weights.get(f"{name}.conv.weight"), weights.get(f"{name}.conv.bias")
            if w is None or b is None or tuple(w.shape) != tuple(mod.conv.weight.shape):
                raise ValueError(f"{onnx_path}: no fused conv {name!r} of shape {tuple(mod.conv.weight.shape)}; "
                                 f"was it exported from {model_yaml}?")
            mod.conv.weight.copy_(w)
            mod.bn.weight.fill_(1.0)
            mod.bn.bias.copy_(b)
            mod.bn.running_mean.zero_()
            mod.bn.running_var.fill_(1.0 - mod.bn.eps)
            used |= {f"{name}.conv.weight", f"{name}.conv.bias"}
        sd = model.state_dict()
        for k, v in weights.items():
            if k not in used:
                if k not in sd or sd[k].shape != v.shape:
                    raise ValueError(f"{onnx_path}: initializer {k!r} does not fit {model_yaml}")
                sd[k].copy_(v)
    calib = [Path(p) for p in calib_images]
    if calib:
        stats: dict[str, list] = {n: [0.0, 0.0, 0] for n in convs}
        hooks = []
        for name, mod in convs.items():
            def hook(_m, _i, out, name=name):
                o = out.double()
                st = stats[name]
                st[0] = st[0] + o.sum((0, 2, 3))
                st[1] = st[1] + (o * o).sum((0, 2, 3))
                st[2] += o.numel() // o.shape[1]
            hooks.append(mod.conv.register_forward_hook(hook))
        model.eval()
        with torch.no_grad():
            for p in calib:
                img = cv2.imread(str(p))
                if img is not None:
                    model(torch.from_numpy(np.ascontiguousarray(_letterbox(img, imgsz))))
        for h in hooks:
            h.remove()
        with torch.no_grad():
            for name, mod in convs.items():
                s1, s2, n = stats[name]
                if not n:
                    continue
                mu = (s1 / n).float()
                var = (s2 / n - (s1 / n) ** 2).clamp_min(1e-6).float()
                mod.bn.weight.copy_(torch.sqrt(var + mod.bn.eps))
                mod.bn.bias.add_(mu)
                mod.bn.running_mean.copy_(mu)
                mod.bn.running_var.copy_(var)
    model.names = dict(enumerate(names))
    args = {**DEFAULT_CFG_DICT, "imgsz": imgsz, "task": "detect", "model": model_yaml}
    model.args = args
    out = Path(out_pt)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "ema": None, "epoch": -1, "train_args": args, "date": None,
                "skygrid_from_onnx": str(onnx_path)}, out)
    return out


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
