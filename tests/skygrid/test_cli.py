"""The `skygrid` command line: every piece is reachable and explains itself."""

from __future__ import annotations

import subprocess
import sys

import pytest

from skygrid.cli import COMMANDS, build_parser, main


def test_every_command_is_registered_with_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    for name in COMMANDS:
        assert sub.choices[name].format_help().strip(), name


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "skygrid demo" in capsys.readouterr().out


def test_help_does_not_import_heavy_stacks():
    code = ("import sys; from skygrid.cli import build_parser; build_parser().format_help(); "
            "print(','.join(m for m in ('torch', 'ultralytics', 'mavsdk', 'onnxruntime', 'fastapi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_demo_reports_a_missing_model(tmp_path, capsys):
    rc = main(["demo", "--headless", "--model", str(tmp_path / "none.onnx"), "--work-dir", str(tmp_path)])
    assert rc == 2
    assert "none.onnx" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["plan", "fly", "sim", "vision", "serve", "audit", "demo"])
def test_subcommand_help_exits_zero(cmd):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
