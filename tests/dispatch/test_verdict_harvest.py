"""确认 / 标记误报 on a ticket's evidence -> `skygrid vision harvest` -> fine-tune (the feedback loop)."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from tests.dispatch.conftest import auth


def _frame(seed: int, mix: str = "default") -> tuple[bytes, list]:
    """A rendered 640 x 480 frame as JPEG and its labelled boxes (pixels)."""
    from geo.camera import get_camera
    from vision.dataset import MIXES, random_frame, render_frame

    cam = get_camera("m3e").scaled(640)
    spec = random_frame(np.random.default_rng([seed, 1]), cam, world_seed=seed, mix=MIXES[mix])
    r = render_frame(spec, cam)
    ok, buf = cv2.imencode(".jpg", r.image)
    assert ok
    return buf.tobytes(), [t for t in r.truth if t.kind == "straw_burning" and t.visible_fraction > 0.9]


def _ticket_with_frame(env, n: int, jpeg: bytes, box: list | None = None) -> int:
    body = env.incident(f"v{n}", spot=n, evidence=False)
    body["evidence"] = {"content_type": "image/jpeg", "data_b64": base64.b64encode(jpeg).decode(), "box": box}
    return env.post_incident(body)["ticket_id"]


def _verdicts_to_dataset(env, tmp_path, n_pos: int = 3, n_neg: int = 3):
    from vision.harvest import harvest

    made = 0
    seed = 100
    while made < n_pos:  # frames with a fully visible straw burn, confirmed with its box
        seed += 1
        jpeg, burns = _frame(seed)
        if not burns:
            continue
        box = list(burns[0].box)
        # the drone sends the box with its evidence (every other one), or the room sends it with the verdict
        tid = _ticket_with_frame(env, made, jpeg, box if made % 2 == 0 else None)
        r = env.client.post(f"/api/v1/tickets/{tid}/verdict", headers=auth("dispatcher"),
                            json={"verdict": "confirmed"} if made % 2 == 0 else {"verdict": "confirmed", "box": box})
        assert r.status_code == 201, r.text
        assert r.json()["kind"] == "verdict" and r.json()["data"]["box"] == pytest.approx(list(burns[0].box))
        made += 1
    for k in range(n_neg):  # false alarms: frames from the look-alike-rich realistic mix
        jpeg, _ = _frame(500 + k, "realistic")
        tid = _ticket_with_frame(env, 20 + k, jpeg)
        assert env.client.post(f"/api/v1/tickets/{tid}/verdict", headers=auth("operator"),
                               json={"verdict": "confirmed"}).status_code == 201
        # the latest verdict counts: first "confirmed" (no box), then 标记误报
        assert env.client.post(f"/api/v1/tickets/{tid}/verdict", headers=auth("operator"),
                               json={"verdict": "false_alarm"}).status_code == 201
    return harvest(env.settings.database_url, env.settings.evidence_dir, tmp_path / "harvested")


def test_verdicts_become_positives_and_hard_negatives(env, tmp_path):
    assert env.client.post("/api/v1/tickets/1/verdict", headers=auth("viewer"),
                           json={"verdict": "false_alarm"}).status_code == 403
    rep = _verdicts_to_dataset(env, tmp_path, 2, 2)
    assert dict(rep.positives) == {"straw_burning": 2} and rep.negatives == 2 and not rep.skipped
    labels = sorted((tmp_path / "harvested" / "labels" / "train").glob("*.txt"))
    texts = [p.read_text() for p in labels]
    assert sum(1 for t in texts if t == "") == 2
    pos = [t.split() for t in texts if t]
    assert len(pos) == 2 and all(p[0] == "1" and all(0 < float(v) <= 1 for v in p[1:]) for p in pos)
    assert len(list((tmp_path / "harvested" / "images" / "train").glob("*.jpg"))) == 4
    assert (tmp_path / "harvested" / "data.yaml").is_file()
    bad = env.client.post("/api/v1/tickets/1/verdict", headers=auth("dispatcher"), json={"verdict": "maybe"})
    assert bad.status_code == 422


@pytest.mark.train
def test_harvest_then_fine_tune_one_epoch_exports_a_loadable_onnx(env, tmp_path):
    pytest.importorskip("ultralytics")
    import onnxruntime as ort

    from vision.train import REPO_ROOT, train

    _verdicts_to_dataset(env, tmp_path, 3, 2)
    ds = tmp_path / "harvested"
    r = train(ds, epochs=1, imgsz=160, out_dir=tmp_path / "model", batch=4, project=tmp_path / "runs",
              name="harvest", model_yaml=str(REPO_ROOT / "vision" / "models" / "skygrid-yolo.onnx"))
    assert r.onnx is not None and r.onnx.is_file()
    sess = ort.InferenceSession(str(r.onnx), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"images": np.zeros((1, 3, 160, 160), np.float32)})[0]
    assert out.shape[:2] == (1, 8)
