"""The README's plan + sim + fly example runs as written and passes pre-flight (issue 15 item 7).

The block after ``<!-- readme-test: sim-fly -->`` is run by bash in a scratch folder that
holds ``examples/`` and a ``.venv/bin/skygrid`` starting this checkout's CLI. The only edit:
the MAVLink UDP ports move to free ones (14540 may be taken by another simulator on a shared
machine); the commands, options and paths are the README's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT, free_udp_port

MARK = "<!-- readme-test: sim-fly -->"


def readme_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert MARK in text, "README.md lost its tested sim + fly example"
    block = re.search(re.escape(MARK) + r"\s*```sh\n(.*?)```", text, re.S)
    assert block, "the marker must precede a ```sh block"
    return block.group(1)


def test_readme_block_is_the_documented_chain():
    lines = [ln for ln in readme_block().splitlines() if ln.strip()]
    assert [ln.split()[1] for ln in lines[:3]] == ["plan", "sim", "fly"]
    assert all(ln.startswith(".venv/bin/skygrid ") for ln in lines[:3])
    assert "udpin://0.0.0.0:14540" in lines[2]


@pytest.mark.timeout(300)
def test_readme_sim_and_fly_pass_preflight_as_written(tmp_path):
    base, listen = free_udp_port(), free_udp_port()
    script = readme_block()
    script = script.replace("udpin://0.0.0.0:14540", f"udpin://0.0.0.0:{base}")
    script = script.replace("skygrid sim vehicle ", f"skygrid sim vehicle --base-port {base} --listen-base-port {listen} ", 1)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    exe = tmp_path / ".venv" / "bin" / "skygrid"
    exe.parent.mkdir(parents=True)
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m skygrid "$@"\n', encoding="utf-8")
    exe.chmod(0o755)
    # whatever happens, the simulator does not outlive the script
    runner = "set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160"}
    proc = subprocess.Popen(["bash", "-c", runner], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"README example did not finish in 240 s:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]
    assert "无人机 d0：完成" in out, out[-3000:]
    events = [json.loads(line) for line in (tmp_path / "work" / "flightlogs" / "d0_events.jsonl").read_text(
        encoding="utf-8").splitlines()]
    kinds = [e.get("kind") for e in events if e.get("type") == "event"]
    assert "preflight_ok" in kinds and "preflight_failed" not in kinds, kinds
    assert "landed" in kinds
