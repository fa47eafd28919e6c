"""The PX4 SITL launcher's process handling, against a stand-in ``bin/px4`` script."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from simulators.px4 import Px4Sitl

FAKE_PX4 = """#!/bin/sh
# records its arguments and environment like PX4 would read them, then idles until SIGINT
echo "args $*" > args.txt
echo "$PX4_SIM_MODEL $PX4_SIMULATOR $PX4_HOME_LAT $PX4_HOME_LON $PX4_HOME_ALT $PX4_SIM_SPEED_FACTOR" > env.txt
trap 'echo "Exiting NOW."; exit 0' INT
echo "INFO  [commander] {ready}"
while true; do sleep 0.05; done
"""


def fake_build(tmp_path: Path, ready: str = "Ready for takeoff!") -> Path:
    (tmp_path / "bin").mkdir()
    (tmp_path / "etc").mkdir()
    px4 = tmp_path / "bin" / "px4"
    px4.write_text(FAKE_PX4.format(ready=ready))
    px4.chmod(px4.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def test_start_waits_for_ready_passes_env_and_stops_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = fake_build(tmp_path)
    monkeypatch.setenv("PX4_DIR", str(build))
    monkeypatch.setenv("PX4_SIM_SPEED_FACTOR", "10")
    work = build / "rootfs" / "2"
    work.mkdir(parents=True)
    (work / "parameters.bson").write_text("stale home")
    sitl = Px4Sitl.from_env(instance=2, home_lat=30.1, home_lon=120.5, home_alt=12.0)
    assert sitl.connection_url == "udpin://0.0.0.0:14542"
    with sitl:
        assert (work / "args.txt").read_text().split() == ["args", "-i", "2", "-d", str(build / "etc")]
        assert (work / "env.txt").read_text().split() == ["sihsim_quadx", "sihsim", "30.1", "120.5", "12.0", "10.0"]
        assert not (work / "parameters.bson").exists()  # the home comes from the environment, not old params
    assert "Exiting NOW." in sitl.log_path.read_text()


def test_not_ready_in_time_raises_with_log_tail(tmp_path: Path) -> None:
    build = fake_build(tmp_path, ready="still booting")
    sitl = Px4Sitl(build, instance=0, ready_timeout_s=1.0)
    with pytest.raises(RuntimeError, match=r"(?s)not ready after 1.0 s.*still booting"):
        sitl.start()
    assert sitl.stop() is None  # already stopped by start()
