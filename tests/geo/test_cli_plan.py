"""`skygrid plan` end to end in-process: files written, summary printed, errors reported."""

from __future__ import annotations

import json
from pathlib import Path

from skygrid.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "keqiao"


def test_plan_command_writes_outputs(tmp_path, capsys):
    out = tmp_path / "plan.json"
    rc = main(["plan", str(EXAMPLES / "grids.geojson"), "--crs", "gcj02", "--no-fly", str(EXAMPLES / "no_fly.geojson"),
               "--grids", "330603-YXQ-003,330603-YXQ-004", "--home", "30.0879584,120.3289584", "--drones", "2",
               "--out", str(out), "--qgc", str(tmp_path / "m.plan"), "--kml", str(tmp_path / "r.kml"),
               "--geojson", str(tmp_path / "r.geojson")])
    assert rc == 0
    plan = json.loads(out.read_text(encoding="utf-8"))
    assert plan["schema"] == "skygrid.plan/1" and len(plan["grids"]) == 2 and plan["drones"] == 2
    assert (tmp_path / "r.kml").exists() and (tmp_path / "r.geojson").exists()
    assert len(list(tmp_path.glob("m.*.plan"))) == len(plan["sorties"])
    text = capsys.readouterr().out
    assert "个架次" in text and "覆盖率" in text  # the summary a 飞手 reads is Chinese


def test_plan_command_reports_errors(tmp_path, capsys):
    bad = tmp_path / "g.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
                   '"geometry": {"type": "Polygon", "coordinates": [[[120.3, 30.0], [120.31, 30.0], [120.31, 30.01], [120.3, 30.0]]]}}]}')
    rc = main(["plan", str(bad), "--out", str(tmp_path / "p.json")])
    assert rc == 1  # the file does not say its CRS: --crs is required, never guessed
    assert "does not say which coordinate system" in capsys.readouterr().err
    rc = main(["plan", str(bad), "--crs", "wgs84", "--out", str(tmp_path / "p.json")])
    assert rc == 1
    assert "feature 1: missing grid id" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()
    rc = main(["plan", str(EXAMPLES / "grids.geojson"), "--crs", "gcj02", "--grids", "330603-YXQ-001",
               "--altitude", "130", "--out", str(tmp_path / "p.json")])
    assert rc == 1 and "120 m limit" in capsys.readouterr().err
