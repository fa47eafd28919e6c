"""``skygrid vision detect`` (vision.detect_cli): boxes per photo, and incidents from photos
georeferenced with a flight log."""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pytest

from flight.flightlog import FlightLog
from flight.records import Telemetry
from geo.geodesy import distance_m
from vision import detect_cli

pytest.importorskip("onnx")
from tests.vision.onnx_models import const_model  # noqa: E402

LAT0, LON0 = 30.03, 120.57


def _parse(argv):
    p = argparse.ArgumentParser()
    detect_cli.add_arguments(p)
    return p.parse_args(argv)


@pytest.fixture
def model(tmp_path):
    raw = np.zeros((8, 1), np.float32)
    raw[:4, 0] = [320, 320, 40, 40]  # centre of a 640 x 640 input
    raw[4 + 2, 0] = 0.9  # illegal_dumping
    return const_model(tmp_path / "m.onnx", raw, names=["illegal_structure", "straw_burning", "illegal_dumping", "hazmat_fire"])


def _photos(tmp_path, n=3):
    out = []
    for i in range(n):
        p = tmp_path / f"DJI_{i:04d}.jpg"
        p.write_bytes(cv2.imencode(".jpg", np.full((480, 640, 3), 90 + i, np.uint8))[1].tobytes())
        out.append(p)
    return out


def test_detect_only_prints_json_boxes(tmp_path, model, capsys):
    photos = _photos(tmp_path, 2)
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    rc = detect_cli.run(_parse([*map(str, photos), str(tmp_path / "bad.jpg"), "--model", str(model), "--json"]))
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["image"] for x in lines] == [str(p) for p in photos]
    d = lines[0]["detections"][0]
    assert d["class_name"] == "illegal_dumping" and d["box"] == [300.0, 220.0, 340.0, 260.0]


def test_flight_log_turns_photos_into_an_incident(tmp_path, model, capsys):
    t0 = 1.75e9
    log = FlightLog(tmp_path / "d0_s1.jsonl", "d0", "s1")
    for i in range(10):  # hovering 80 m above take-off (5 m AMSL), heading north
        log.on_telemetry(Telemetry("d0", float(i), t0 + i, LAT0, LON0, 85.0, 80.0, 0.0, 0.0, 0.0, 0.0, 80.0,
                                   "HOLD", True, True, sortie_id="s1"))
    log.close()
    photos = _photos(tmp_path, 3)
    times = tmp_path / "times.csv"
    times.write_text("file,unix_time\n" + "".join(f"{p.name},{t0 + 2 + i}\n" for i, p in enumerate(photos)))
    rc = detect_cli.run(_parse([str(tmp_path), "--model", str(model), "--flight-log", str(tmp_path / "d0_s1.jsonl"),
                                "--times", str(times), "--json", "--camera", "m3e"]))
    assert rc == 0
    (inc,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert inc["class_name"] == "illegal_dumping" and inc["frames_seen"] == 3
    assert distance_m(inc["lat"], inc["lon"], LAT0, LON0) < 0.5  # image centre, straight below
    assert 1.0 < inc["error_m"] < 10.0


def test_clear_errors(tmp_path, model, capsys):
    assert detect_cli.run(_parse([str(tmp_path / "missing.jpg"), "--model", str(model)])) == 2
    assert "missing.jpg" in capsys.readouterr().err
    photos = _photos(tmp_path, 1)
    assert detect_cli.run(_parse([str(photos[0]), "--model", str(tmp_path / "nope.onnx")])) == 2
    assert "nope.onnx" in capsys.readouterr().err
    assert detect_cli.run(_parse([str(photos[0]), "--model", str(model), "--report-to", "http://x"])) == 2


def test_detect_only_samples_video_frames(tmp_path, model, capsys):
    p = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 4.0, (640, 480))
    if not vw.isOpened():
        pytest.skip("no MJPG writer in this OpenCV build")
    for i in range(10):
        vw.write(np.full((480, 640, 3), 20 * i, np.uint8))
    vw.release()
    assert detect_cli.run(_parse([str(p), "--model", str(model), "--json", "--video-step", "1.0"])) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["image"] for x in lines] == [f"{p}#t=0.00", f"{p}#t=1.00", f"{p}#t=2.00"]
    assert all(x["detections"][0]["class_name"] == "illegal_dumping" for x in lines)
