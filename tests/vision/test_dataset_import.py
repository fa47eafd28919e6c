"""Importing local YOLO and COCO datasets with a class map; errors name file, line, field."""

from __future__ import annotations

import json

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
