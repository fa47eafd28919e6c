"""The PX4 SITL launcher without PX4: process handling against a stand-in ``bin/px4`` script,
``PX4_DIR`` resolution (source tree or build directory), ``PX4_INSTANCE`` and port derivation."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from simulators.px4 import (
    Px4NotAvailable,
    Px4Sitl,
    px4_dir_from_env,
    px4_instance_from_env,
    px4_ports,
    resolve_px4_build,
    status_text_is,
)

FAKE_PX4 = """#!/bin/sh
# records its arguments and environment like PX4 would read them, then idles until SIGINT
echo "args $*" > args.txt
echo "$PX4_SIM_MODEL $PX4_SIMULATOR $PX4_HOME_LAT $PX4_HOME_LON $PX4_HOME_ALT $PX4_SIM_SPEED_FACTOR" > env.txt
trap 'echo "Exiting NOW."; exit 0' INT
echo "INFO  [commander] {ready}"
while true; do sleep 0.05; done
"""


def fake_build(tmp_path: Path, ready: str = "Ready for takeoff!") -> Path:
    (tmp_path / "bin").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    px4 = tmp_path / "bin" / "px4"
    px4.write_text(FAKE_PX4.format(ready=ready))
    px4.chmod(px4.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def fake_source_tree(tmp_path: Path, built: bool = True) -> Path:
    """A PX4-Autopilot checkout as far as the launcher looks: Tools/, boards/ and, when
    ``built``, build/px4_sitl_default with bin/px4 and etc/."""
    (tmp_path / "Tools").mkdir(parents=True)
    (tmp_path / "boards").mkdir()
    if built:
        fake_build(tmp_path / "build" / "px4_sitl_default")
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


def test_px4_dir_may_be_the_build_directory_or_the_source_tree(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    src = fake_source_tree(tmp_path / "PX4-Autopilot")
    build = src / "build" / "px4_sitl_default"
    assert resolve_px4_build(build) == build
    assert resolve_px4_build(src) == build
    monkeypatch.setenv("PX4_DIR", str(src))
    assert px4_dir_from_env() == build
    sitl = Px4Sitl.from_env(instance=1)
    assert sitl.px4_dir == build and sitl.workdir == build / "rootfs" / "1"
    assert sitl.command()[0] == str(build / "bin" / "px4")
    assert Px4Sitl(src).px4_dir == build  # given directly, the source tree resolves the same way


def test_px4_dir_errors_name_the_path_and_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unbuilt = fake_source_tree(tmp_path / "src", built=False)
    with pytest.raises(Px4NotAvailable, match=r"PX4_DIR=.*src: no bin/px4 there nor in build/px4_sitl_default.*"
                                              r"make px4_sitl_default"):
        resolve_px4_build(unbuilt)
    (tmp_path / "other").mkdir()
    with pytest.raises(Px4NotAvailable, match=r"other: no bin/px4.*source tree .* or that build"):
        resolve_px4_build(tmp_path / "other")
    with pytest.raises(Px4NotAvailable, match=r"missing: no such directory"):
        resolve_px4_build(tmp_path / "missing")
    no_etc = fake_build(tmp_path / "b")
    (no_etc / "etc").rmdir()
    with pytest.raises(Px4NotAvailable, match=r"no etc/ directory"):
        resolve_px4_build(no_etc)
    monkeypatch.delenv("PX4_DIR", raising=False)
    with pytest.raises(Px4NotAvailable, match=r"PX4_DIR is not set.*source tree"):
        px4_dir_from_env()


@pytest.mark.parametrize("instance", [0, 1, 7])
def test_ports_are_derived_from_the_instance(instance: int) -> None:
    ports = px4_ports(instance)
    assert (ports.api_remote, ports.api_local, ports.gcs_local) == (14540 + instance, 14580 + instance,
                                                                    18570 + instance)
    sitl = Px4Sitl(Path("/nonexistent"), instance=instance)
    assert sitl.ports == ports
    assert sitl.connection_url == f"udpin://0.0.0.0:{14540 + instance}"


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_bad_instance_numbers_are_refused(bad) -> None:
    with pytest.raises(ValueError, match="instance must be an integer >= 0"):
        px4_ports(bad)
    with pytest.raises(ValueError, match="instance"):
        Px4Sitl(Path("/nonexistent"), instance=bad)


def test_px4_instance_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PX4_INSTANCE", raising=False)
    assert px4_instance_from_env() == 0 and px4_instance_from_env(default=3) == 3
    monkeypatch.setenv("PX4_INSTANCE", " 4 ")
    assert px4_instance_from_env() == 4
    monkeypatch.setenv("PX4_DIR", str(fake_build(tmp_path)))
    sitl = Px4Sitl.from_env()
    assert sitl.instance == 4 and sitl.ports.api_remote == 14544 and sitl.workdir == tmp_path / "rootfs" / "4"
    assert Px4Sitl.from_env(instance=2).instance == 2  # an explicit instance wins over the environment
    for bad, why in (("two", "not an integer"), ("-3", "must be >= 0")):
        monkeypatch.setenv("PX4_INSTANCE", bad)
        with pytest.raises(ValueError, match=f"PX4_INSTANCE='{bad}': {why}"):
            px4_instance_from_env()


@pytest.mark.parametrize("text", ["Landing detected\t", "landing detected", " Landing detected \n"])
def test_status_texts_compare_loosely(text: str) -> None:
    assert status_text_is(text, "Landing detected")
    assert not status_text_is(text, "Landing")
    assert status_text_is("Executing Mission\t", "executing mission")
