"""Importing local YOLO and COCO datasets with a class map; errors name file, line, field."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from vision.importers import ImportErrorWithLocation, import_coco, import_yolo, load_class_map


def _img(path, w=200, h=100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 90, np.uint8))


@pytest.fixture()
def cmap(tmp_path):
    p = tmp_path / "map.yaml"
    p.write_text("map:\n  fire: hazmat_fire\n  smoke: null\n  rubbish: illegal_dumping\n")
    return load_class_map(p)


def test_yolo_import_maps_drops_and_merges(tmp_path, cmap) -> None:
    src = tmp_path / "dfire"
    (src / "data.yaml").parent.mkdir(parents=True)
    (src / "data.yaml").write_text(yaml.safe_dump({"names": ["smoke", "fire"]}))
    _img(src / "images" / "train" / "a.jpg")
    _img(src / "images" / "valid" / "b.jpg")
    _img(src / "images" / "train" / "neg.jpg")
    (src / "labels" / "train").mkdir(parents=True)
    (src / "labels" / "valid").mkdir(parents=True)
    (src / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.2 0.2\n0 0.3 0.3 0.1 0.1\n")
    (src / "labels" / "valid" / "b.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    into = tmp_path / "merged"
    rep = import_yolo(src, into, cmap)
    assert rep.images == 3 and rep.boxes == {"hazmat_fire": 1} and rep.dropped == {"smoke": 2}
    assert (into / "labels" / "train" / "dfire_a.txt").read_text() == "3 0.500000 0.500000 0.200000 0.200000\n"
    assert (into / "labels" / "val" / "dfire_b.txt").read_text() == ""
    assert (into / "labels" / "train" / "dfire_neg.txt").read_text() == ""
    data = yaml.safe_load((into / "data.yaml").read_text())
    assert data["names"][3] == "hazmat_fire" and data["train"] == "images/train"


def test_yolo_bad_label_names_file_line_field(tmp_path, cmap) -> None:
    src = tmp_path / "s"
    (src / "labels").mkdir(parents=True)
    (src / "classes.txt").write_text("fire\n")
    _img(src / "images" / "x.jpg")
    (src / "labels" / "x.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 abc 0.2 0.2\n")
    with pytest.raises(ImportErrorWithLocation, match=r"x\.txt:2: field 'cy' is 'abc'"):
        import_yolo(src, tmp_path / "o", cmap)
    (src / "labels" / "x.txt").write_text("3 0.5 0.5 0.2 0.2\n")
    with pytest.raises(ImportErrorWithLocation, match=r"x\.txt:1: field 'class' is 3"):
        import_yolo(src, tmp_path / "o", cmap)
    (src / "labels" / "x.txt").write_text("0 0.5 1.5 0.2 0.2\n")
    with pytest.raises(ImportErrorWithLocation, match=r"x\.txt:1: field 'cy' is 1.5"):
        import_yolo(src, tmp_path / "o", cmap)


def test_coco_import(tmp_path, cmap) -> None:
    _img(tmp_path / "imgs" / "p.jpg", 200, 100)
    coco = {"images": [{"id": 1, "file_name": "p.jpg", "width": 200, "height": 100},
                       {"id": 2, "file_name": "missing.jpg", "width": 200, "height": 100}],
            "categories": [{"id": 7, "name": "rubbish"}, {"id": 8, "name": "bottle"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [50, 25, 100, 50]},
                            {"id": 2, "image_id": 1, "category_id": 8, "bbox": [0, 0, 10, 10]}]}
    ann = tmp_path / "uavvaste.json"
    ann.write_text(json.dumps(coco))
    rep = import_coco(ann, tmp_path / "o", cmap, images_dir=tmp_path / "imgs", split="val")
    assert rep.images == 1 and rep.boxes == {"illegal_dumping": 1} and rep.dropped == {"bottle": 1}
    assert "missing.jpg" in rep.skipped_images[0]
    assert (tmp_path / "o" / "labels" / "val" / "uavvaste_p.txt").read_text() == "2 0.500000 0.500000 0.500000 0.500000\n"
    coco["annotations"][0]["bbox"] = [150, 25, 100, 50]
    ann.write_text(json.dumps(coco))
    with pytest.raises(ImportErrorWithLocation, match=r"annotations\[0\] \(id 1\): field 'bbox'"):
        import_coco(ann, tmp_path / "o2", cmap, images_dir=tmp_path / "imgs")


def test_class_map_errors(tmp_path) -> None:
    p = tmp_path / "m.yaml"
    p.write_text("fire: flames\n")
    with pytest.raises(ImportErrorWithLocation, match=r"m\.yaml: class 'fire' maps to 'flames'"):
        load_class_map(p)
    p.write_text("fire: hazmat_fire\n")  # a bare mapping works too
    assert load_class_map(p) == {"fire": "hazmat_fire"}


def _labels(into, split="train") -> dict[str, list[list[float]]]:
    return {p.stem: [[float(v) for v in ln.split()] for ln in p.read_text().splitlines()]
            for p in sorted((into / "labels" / split).glob("*.txt"))}


def test_roboflow_layout_round_trips_with_valid_split(tmp_path, cmap) -> None:
    src = tmp_path / "rf"
    src.mkdir()
    (src / "data.yaml").write_text(yaml.safe_dump({"names": ["fire", "rubbish"], "train": "../train/images"}))
    _img(src / "train" / "images" / "a.jpg")
    _img(src / "valid" / "images" / "b.jpg")
    (src / "train" / "labels").mkdir(parents=True)
    (src / "valid" / "labels").mkdir(parents=True)
    (src / "train" / "labels" / "a.txt").write_text("1 0.25 0.5 0.2 0.4\n")
    (src / "valid" / "labels" / "b.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    into = tmp_path / "ds"
    rep = import_yolo(src, into, cmap)
    assert rep.images == 2 and rep.boxes == {"illegal_dumping": 1, "hazmat_fire": 1}
    assert _labels(into, "train") == {"rf_a": [[2, 0.25, 0.5, 0.2, 0.4]]}
    assert _labels(into, "val") == {"rf_b": [[3, 0.5, 0.5, 0.1, 0.1]]}


def test_darknet_flat_folder_with_names_file(tmp_path, cmap) -> None:
    src = tmp_path / "dk"
    src.mkdir()
    (src / "obj.names").write_text("rubbish\nfire\n")
    _img(src / "x.jpg")
    (src / "x.txt").write_text("1 0.5 0.5 0.3 0.3\n0 0.1 0.1 0.05 0.05\n")
    _img(src / "empty.jpg")  # no label: background
    into = tmp_path / "ds"
    rep = import_yolo(src, into, cmap)
    assert rep.images == 2
    assert _labels(into) == {"dk_empty": [], "dk_x": [[3, 0.5, 0.5, 0.3, 0.3], [2, 0.1, 0.1, 0.05, 0.05]]}


def test_voc_xml_round_trips_and_large_image_is_shrunk(tmp_path, cmap) -> None:
    from vision.importers import import_voc

    src = tmp_path / "voc"
    _img(src / "JPEGImages" / "big.jpg", w=3840, h=2160)
    (src / "Annotations").mkdir(parents=True)
    (src / "Annotations" / "big.xml").write_text(
        "<annotation><filename>big.jpg</filename><size><width>3840</width><height>2160</height></size>"
        "<object><name>rubbish</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>384</xmax><ymax>216</ymax></bndbox>"
        "</object><object><name>smoke</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>20</xmax><ymax>20</ymax>"
        "</bndbox></object></annotation>")
    into = tmp_path / "ds"
    rep = import_voc(src, into, cmap)
    assert rep.images == 1 and rep.boxes == {"illegal_dumping": 1} and rep.dropped == {"smoke": 1}
    (lab,) = _labels(into).values()
    assert lab == [[2, 0.05, 0.05, 0.1, 0.1]]
    im = cv2.imread(str(next((into / "images" / "train").iterdir())))
    assert im.shape[:2] == (360, 640)  # 4K -> the 640 px stream size, boxes normalised so they still fit


def test_coco_round_trip_4k_resized_and_all_images_missing_is_one_error(tmp_path, cmap) -> None:
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "width": 3840, "height": 2160}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [384, 216, 768, 432]}],
            "categories": [{"id": 5, "name": "fire"}]}
    ann = tmp_path / "c" / "ann.json"
    _img(tmp_path / "c" / "a.jpg", w=3840, h=2160)
    ann.write_text(json.dumps(coco))
    into = tmp_path / "ds"
    rep = import_coco(ann, into, cmap)
    assert rep.images == 1 and _labels(into) == {"ann_a": [[3, 0.2, 0.2, 0.2, 0.2]]}
    assert cv2.imread(str(into / "images" / "train" / "ann_a.jpg")).shape[:2] == (360, 640)
    coco["images"] = [{"id": i, "file_name": f"gone/{i}.jpg", "width": 10, "height": 10} for i in range(772)]
    coco["annotations"] = []
    ann.write_text(json.dumps(coco))
    with pytest.raises(ImportErrorWithLocation) as e:
        import_coco(ann, tmp_path / "ds2", cmap)
    msg = str(e.value)
    assert "ann.json" in msg and "772" in msg and "\n" not in msg


def test_negatives_folder_imports_as_background(tmp_path) -> None:
    from vision.importers import import_negatives

    _img(tmp_path / "neg" / "a.png")
    _img(tmp_path / "neg" / "sub" / "b.jpg")
    into = tmp_path / "ds"
    rep = import_negatives(tmp_path / "neg", into)
    assert rep.images == 2 and _labels(into) == {"neg_a": [], "neg_b": []}
    assert (into / "data.yaml").is_file()
    with pytest.raises(ImportErrorWithLocation, match="no images"):
        import_negatives(tmp_path / "nothing", into)


def test_cli_coco_missing_images_prints_one_line(tmp_path, capsys) -> None:
    from skygrid.cli import main

    (tmp_path / "map.yaml").write_text("fire: hazmat_fire\n")
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [{"id": i, "file_name": f"{i}.jpg", "width": 9, "height": 9} for i in range(50)],
                               "annotations": [], "categories": [{"id": 1, "name": "fire"}]}))
    rc = main(["vision", "import", "--format", "coco", "--map", str(tmp_path / "map.yaml"), str(ann),
               "--into", str(tmp_path / "ds")])
    out = capsys.readouterr().out
    assert rc == 1 and "ann.json" in out and len(out.strip().splitlines()) <= 3


def test_committed_real_negatives_import_as_background(tmp_path) -> None:
    """bench/data/realneg: every frame in MANIFEST.csv exists, is a real image no larger than a
    stream frame, the train and bench shares never share a source photo, and the train share
    imports as background (empty labels) the way the model card's recipe uses it."""
    import csv

    from vision.importers import import_negatives

    root = Path(__file__).resolve().parents[2] / "bench" / "data" / "realneg"
    with open(root / "MANIFEST.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["share"] for r in rows} == {"train", "bench"}
    sources = {s: {r["source"] for r in rows if r["share"] == s} for s in ("train", "bench")}
    assert not sources["train"] & sources["bench"]
    for r in rows:
        im = cv2.imread(str(root / r["file"]))
        assert im is not None, r["file"]
        assert im.shape[0] <= 480 and im.shape[1] <= 640, r["file"]
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(
        Path(r["file"]).name for r in rows if r["share"] == "train")
    rep = import_negatives(root / "train", tmp_path / "ds", prefix="rn")
    labels = _labels(tmp_path / "ds")
    assert rep.images == sum(1 for r in rows if r["share"] == "train")
    assert labels and all(v == [] for v in labels.values())
    assert "Creative Commons CC0" in (root / "LICENSE.md").read_text(encoding="utf-8")
