"""Import labelled datasets from local files (YOLO or COCO) into a SkyGrid YOLO dataset.

Real data (D-Fire, FASDD, UAVVaste, a county's own labelled photos) use their own class
names; a class-mapping YAML says which of them become which patrol class::

    # map.yaml: source class name -> patrol class (or null to drop)
    map:
      fire: hazmat_fire        # D-Fire's "fire" (our call: vehicle/road fires are the hazmat class)
      smoke: null              # D-Fire's "smoke" alone is not an incident class: dropped
      rubbish: illegal_dumping # UAVVaste

A bare mapping (without the ``map:`` key) is accepted too. Classes not in the map, or
mapped to null, are dropped and counted. Images are copied into ``DIR/images/<split>`` with a
prefix (so several sources merge without name clashes), labels rewritten with the patrol
class indices, and ``DIR/data.yaml`` (re)written. Errors name the file, line and field.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vision.classes import PATROL_CLASSES
from vision.dataset import SPLITS, write_data_yaml

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ImportErrorWithLocation(ValueError):
    """Bad input in a dataset being imported; the message names file, line and field."""


@dataclass
class ImportReport:
    """What an import did: images and boxes written, classes dropped (source name -> boxes)."""

    images: int = 0
    boxes: Counter = field(default_factory=Counter)  # patrol class -> boxes
    dropped: Counter = field(default_factory=Counter)  # source class -> boxes dropped
    skipped_images: list[str] = field(default_factory=list)  # "path: why"


def load_class_map(path: str | Path) -> dict[str, str | None]:
    """Read a class-mapping YAML: source class name -> patrol class name or None (drop)."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ImportErrorWithLocation(f"{p}: cannot read class map: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ImportErrorWithLocation(f"{p}: invalid YAML: {e}") from None
    if isinstance(raw, dict) and "map" in raw:
        raw = raw["map"]
    if not isinstance(raw, dict) or not raw:
        raise ImportErrorWithLocation(f"{p}: expected a mapping 'source class: patrol class' (optionally under 'map:')")
    out: dict[str, str | None] = {}
    for k, v in raw.items():
        if v is not None and v not in PATROL_CLASSES:
            raise ImportErrorWithLocation(
                f"{p}: class {k!r} maps to {v!r}; expected one of {list(PATROL_CLASSES)} or null")
        out[str(k)] = v
    return out


def _yolo_names(src: Path) -> list[str]:
    for cand in ("data.yaml", "dataset.yaml", "data.yml"):
        f = src / cand
        if f.is_file():
            try:
                d = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as e:
                raise ImportErrorWithLocation(f"{f}: invalid YAML: {e}") from None
            names = d.get("names")
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names, key=int)]
            if isinstance(names, list):
                return [str(n) for n in names]
            raise ImportErrorWithLocation(f"{f}: field 'names' must be a list or an index->name mapping")
    for f in [src / "classes.txt", src / "obj.names", *sorted(src.glob("*.names"))]:
        if f.is_file():  # YOLO classes.txt or a Darknet .names file: one name per line
            return [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
    raise ImportErrorWithLocation(f"{src}: no data.yaml, classes.txt or .names file with the class names")


def _parse_yolo_label(path: Path, names: list[str]) -> list[tuple[str, float, float, float, float]]:
    out = []
    for ln, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 5:
            raise ImportErrorWithLocation(f"{path}:{ln}: expected 'class cx cy w h', got {len(parts)} fields")
        fields = ("class", "cx", "cy", "w", "h")
        try:
            cls = int(parts[0])
        except ValueError:
            raise ImportErrorWithLocation(f"{path}:{ln}: field 'class' is {parts[0]!r}, not an integer") from None
        if not 0 <= cls < len(names):
            raise ImportErrorWithLocation(f"{path}:{ln}: field 'class' is {cls}; the dataset has {len(names)} classes")
        vals = []
        for name, tok in zip(fields[1:], parts[1:5], strict=True):
            try:
                v = float(tok)
            except ValueError:
                raise ImportErrorWithLocation(f"{path}:{ln}: field {name!r} is {tok!r}, not a number") from None
            if not 0.0 <= v <= 1.0:
                raise ImportErrorWithLocation(f"{path}:{ln}: field {name!r} is {v}; YOLO labels are normalised to [0, 1]")
            vals.append(v)
        out.append((names[cls], *vals))
    return out


def _split_name(name: str) -> str | None:
    return "val" if name in ("valid", "validation") else name if name in SPLITS else None


def _yolo_pairs(src: Path) -> list[tuple[Path, Path, str]]:
    """(image, label, split) pairs of a YOLO tree in any of the usual layouts:

    - ultralytics: images/<split>/x.jpg + labels/<split>/x.txt, or images/x.jpg + labels/x.txt;
    - Roboflow export: <split>/images/x.jpg + <split>/labels/x.txt (``valid`` -> val);
    - Darknet flat folder: x.jpg next to x.txt (names in a ``.names`` file), split 'train'.
    """
    pairs = []
    img_root = src / "images"
    if not img_root.is_dir():
        rf = [d for d in sorted(src.iterdir()) if d.is_dir() and _split_name(d.name) and (d / "images").is_dir()]
        if rf:  # Roboflow
            for d in rf:
                for img in sorted((d / "images").rglob("*")):
                    if img.suffix.lower() in IMAGE_EXTS:
                        rel = img.relative_to(d / "images")
                        pairs.append((img, d / "labels" / rel.with_suffix(".txt"), _split_name(d.name) or "train"))
            return pairs
        flat = [p for p in sorted(src.rglob("*")) if p.suffix.lower() in IMAGE_EXTS]
        if flat:  # Darknet: labels beside the images
            return [(img, img.with_suffix(".txt"), "train") for img in flat]
        raise ImportErrorWithLocation(f"{src}: no images found (expected images/ + labels/, Roboflow train/images, "
                                      "or a Darknet folder of images with .txt labels beside them)")
    for img in sorted(img_root.rglob("*")):
        if img.suffix.lower() not in IMAGE_EXTS:
            continue
        rel = img.relative_to(img_root)
        split = rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in SPLITS else "train"
        if len(rel.parts) > 1 and rel.parts[0] in ("valid", "validation"):
            split = "val"
        label = src / "labels" / rel.with_suffix(".txt")
        pairs.append((img, label, split))
    return pairs


#: Images larger than this (pixels, longest side) are shrunk on import: a 4K frame becomes
#: the 640 px detection-stream size (labels are normalised, so they need no change).
DEFAULT_MAX_SIDE = 640


def _write(into: Path, split: str, prefix: str, img: Path, labels: list[tuple[int, float, float, float, float]],
           max_side: int | None = DEFAULT_MAX_SIDE) -> None:
    (into / "images" / split).mkdir(parents=True, exist_ok=True)
    (into / "labels" / split).mkdir(parents=True, exist_ok=True)
    stem = f"{prefix}_{img.stem}"
    dst = into / "images" / split / f"{stem}{img.suffix.lower()}"
    if max_side:
        import cv2

        im = cv2.imread(str(img), cv2.IMREAD_COLOR)
        if im is None:
            raise ImportErrorWithLocation(f"{img}: not a readable image")
        h, w = im.shape[:2]
        if max(h, w) > max_side:
            r = max_side / max(h, w)
            im = cv2.resize(im, (max(1, round(w * r)), max(1, round(h * r))), interpolation=cv2.INTER_AREA)
            dst = dst.with_suffix(".jpg")
            cv2.imwrite(str(dst), im, [cv2.IMWRITE_JPEG_QUALITY, 92])
        else:
            shutil.copyfile(img, dst)
    else:
        shutil.copyfile(img, dst)
    (into / "labels" / split / f"{stem}.txt").write_text(
        "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels), encoding="utf-8")


def _map_boxes(boxes, class_map: dict[str, str | None], report: ImportReport):
    out = []
    for name, *xywh in boxes:
        target = class_map.get(name)
        if target is None:
            report.dropped[name] += 1
            continue
        out.append((PATROL_CLASSES.index(target), *xywh))
        report.boxes[target] += 1
    return out


def _finish(into: Path) -> None:
    write_data_yaml(into, tuple(s for s in SPLITS if (into / "images" / s).is_dir()))


def import_yolo(src: str | Path, into: str | Path, class_map: dict[str, str | None], prefix: str | None = None,
                split: str | None = None, max_side: int | None = DEFAULT_MAX_SIDE) -> ImportReport:
    """Merge a YOLO dataset at ``src`` into ``into``: ultralytics (images/, labels/, data.yaml or
    classes.txt), Roboflow (train/images, valid/labels...) or Darknet flat (x.jpg + x.txt, a
    ``.names`` file).

    ``split`` forces every image into one split; otherwise the source's split folders are
    kept (``valid`` -> ``val``; flat -> ``train``). Images without a label file are negatives
    (background). Images longer than ``max_side`` px are shrunk.
    """
    src, into = Path(src), Path(into)
    if not src.is_dir():
        raise ImportErrorWithLocation(f"{src}: not a folder")
    names = _yolo_names(src)
    prefix = prefix or src.name
    report = ImportReport()
    for img, label, sp in _yolo_pairs(src):
        boxes = _parse_yolo_label(label, names) if label.is_file() else []
        _write(into, split or sp, prefix, img, _map_boxes(boxes, class_map, report), max_side)
        report.images += 1
    _finish(into)
    return report


def import_negatives(src: str | Path, into: str | Path, prefix: str | None = None, split: str = "train",
                     max_side: int | None = DEFAULT_MAX_SIDE) -> ImportReport:
    """Import every image under ``src`` (any layout, no labels) as background: an empty label
    file each, so the detector learns that nothing there is an incident."""
    src, into = Path(src), Path(into)
    imgs = [p for p in sorted(src.rglob("*")) if p.suffix.lower() in IMAGE_EXTS] if src.is_dir() else []
    if not imgs:
        raise ImportErrorWithLocation(f"{src}: no images ({', '.join(IMAGE_EXTS)}) found")
    report = ImportReport()
    prefix = prefix or src.name
    for img in imgs:
        _write(into, split, prefix, img, [], max_side)
        report.images += 1
    _finish(into)
    return report


def import_voc(src: str | Path, into: str | Path, class_map: dict[str, str | None], prefix: str | None = None,
               split: str = "train", max_side: int | None = DEFAULT_MAX_SIDE) -> ImportReport:
    """Merge Pascal VOC XML annotations under ``src`` (``Annotations/*.xml`` with
    ``JPEGImages/``, or XML files beside their images). Boxes are VOC pixel corners
    (xmin, ymin, xmax, ymax, 1-based), normalised by the XML's ``size``."""
    import xml.etree.ElementTree as ET

    src, into = Path(src), Path(into)
    xmls = sorted(src.rglob("*.xml")) if src.is_dir() else []
    if not xmls:
        raise ImportErrorWithLocation(f"{src}: no Pascal VOC .xml annotation files found")
    all_imgs = {p.name: p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXTS}
    report = ImportReport()
    prefix = prefix or src.name
    for x in xmls:
        try:
            root = ET.parse(x).getroot()
        except ET.ParseError as e:
            raise ImportErrorWithLocation(f"{x}: invalid XML: {e}") from None
        fname = (root.findtext("filename") or "").strip()
        img = x.parent / fname if fname and (x.parent / fname).is_file() else all_imgs.get(fname)
        if img is None:
            img = next((all_imgs[n] for n in all_imgs if Path(n).stem == x.stem), None)
        if img is None:
            report.skipped_images.append(f"{x}: image {fname or x.stem!r} not found")
            continue
        try:
            w = float(root.findtext("size/width") or 0)
            h = float(root.findtext("size/height") or 0)
        except ValueError:
            raise ImportErrorWithLocation(f"{x}: field 'size' is not numeric") from None
        if w <= 0 or h <= 0:
            import cv2

            im = cv2.imread(str(img))
            if im is None:
                raise ImportErrorWithLocation(f"{img}: not a readable image")
            h, w = float(im.shape[0]), float(im.shape[1])
        boxes = []
        for i, obj in enumerate(root.iter("object")):
            name = (obj.findtext("name") or "").strip()
            try:
                x1, y1, x2, y2 = (float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
            except (TypeError, ValueError):
                raise ImportErrorWithLocation(f"{x}: object[{i}] ({name!r}): field 'bndbox' needs numeric "
                                              "xmin, ymin, xmax, ymax") from None
            if x2 <= x1 or y2 <= y1:
                raise ImportErrorWithLocation(f"{x}: object[{i}] ({name!r}): field 'bndbox' is empty")
            x1, y1, x2, y2 = max(0.0, x1 - 1), max(0.0, y1 - 1), min(w, x2), min(h, y2)
            boxes.append((name, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h))
        _write(into, split, prefix, img, _map_boxes(boxes, class_map, report), max_side)
        report.images += 1
    _finish(into)
    return report


def import_coco(annotations: str | Path, into: str | Path, class_map: dict[str, str | None],
                images_dir: str | Path | None = None, prefix: str | None = None, split: str = "train",
                max_side: int | None = DEFAULT_MAX_SIDE) -> ImportReport:
    """Merge a COCO detection file (``annotations`` JSON; images under ``images_dir``, default
    the JSON's folder) into ``into`` as YOLO labels in ``split``. Boxes are COCO pixel
    ``[x, y, w, h]``; each image's ``width``/``height`` normalise them."""
    ann_path, into = Path(annotations), Path(into)
    try:
        coco = json.loads(ann_path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ImportErrorWithLocation(f"{ann_path}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ImportErrorWithLocation(f"{ann_path}:{e.lineno}: invalid JSON: {e.msg}") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise ImportErrorWithLocation(f"{ann_path}: field {key!r} missing or not a list")
    cats = {}
    for i, c in enumerate(coco["categories"]):
        if "id" not in c or "name" not in c:
            raise ImportErrorWithLocation(f"{ann_path}: categories[{i}]: needs fields 'id' and 'name'")
        cats[c["id"]] = str(c["name"])
    images = {}
    for i, im in enumerate(coco["images"]):
        for f in ("id", "file_name", "width", "height"):
            if f not in im:
                raise ImportErrorWithLocation(f"{ann_path}: images[{i}]: missing field {f!r}")
        images[im["id"]] = im
    boxes: dict = {k: [] for k in images}
    for i, a in enumerate(coco["annotations"]):
        where = f"{ann_path}: annotations[{i}] (id {a.get('id')!r})"
        if a.get("image_id") not in images:
            raise ImportErrorWithLocation(f"{where}: field 'image_id' {a.get('image_id')!r} is not in images")
        if a.get("category_id") not in cats:
            raise ImportErrorWithLocation(f"{where}: field 'category_id' {a.get('category_id')!r} is not in categories")
        bb = a.get("bbox")
        if not (isinstance(bb, list) and len(bb) == 4 and all(isinstance(v, (int, float)) for v in bb)):
            raise ImportErrorWithLocation(f"{where}: field 'bbox' must be [x, y, w, h] numbers, got {bb!r}")
        im = images[a["image_id"]]
        x, y, w, h = bb
        iw, ih = float(im["width"]), float(im["height"])
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > iw + 1 or y + h > ih + 1:
            raise ImportErrorWithLocation(f"{where}: field 'bbox' {bb} is outside the {iw:g} x {ih:g} image")
        boxes[a["image_id"]].append((cats[a["category_id"]], min(1.0, (x + w / 2) / iw), min(1.0, (y + h / 2) / ih),
                                     min(1.0, w / iw), min(1.0, h / ih)))
    root = Path(images_dir) if images_dir else ann_path.parent
    prefix = prefix or ann_path.stem
    report = ImportReport()
    missing = [k for k, im in images.items() if not (root / im["file_name"]).is_file()]
    missing_set = set(missing)
    if images and len(missing) == len(images):  # one error, not one line per image
        first = images[missing[0]]["file_name"]
        raise ImportErrorWithLocation(
            f"{ann_path}: none of its {len(images)} images is under {root} (first: {first!r}); "
            "pass the image folder with --images")
    if missing:
        report.skipped_images.append(f"{ann_path}: {len(missing)} of {len(images)} images not found under {root} "
                                     f"(first: {images[missing[0]]['file_name']!r}); imported the rest")
    for k, im in images.items():
        if k in missing_set:
            continue
        _write(into, split, prefix, root / im["file_name"], _map_boxes(boxes[k], class_map, report), max_side)
        report.images += 1
    _finish(into)
    return report
