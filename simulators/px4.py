"""Start and stop PX4 SITL (SIH quadrotor, headless, no Gazebo) from a PX4 build directory.

PX4 is the reference autopilot the SkyGrid vehicle simulator imitates; where a PX4 build
exists (``PX4_DIR`` = ``PX4-Autopilot/build/px4_sitl_default``) the same MAVSDK code and
the ``px4`` test suite run against it. Instance ``i`` works in ``rootfs/<i>``, listens on
UDP 14580+i and sends to 14540+i (``udpin://0.0.0.0:14540+i`` for MAVSDK), as PX4's own
``sitl_multiple_run.sh`` does::

    cd $PX4_DIR/rootfs/<i> && PX4_SIM_MODEL=sihsim_quadx PX4_SIMULATOR=sihsim \\
        PX4_HOME_LAT=.. PX4_HOME_LON=.. PX4_HOME_ALT=.. PX4_SIM_SPEED_FACTOR=10 \\
        $PX4_DIR/bin/px4 -i <i> -d $PX4_DIR/etc

PX4 keeps parameters (and so the last home) in ``parameters.bson`` of its working
directory; ``fresh_params`` (default) removes them so each start uses the given home.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

READY_LINE = "Ready for takeoff"


class Px4NotAvailable(RuntimeError):
    """No usable PX4 build: the message says what is missing and how to provide it."""


def px4_dir_from_env() -> Path:
    """``PX4_DIR`` as a checked build directory, or :class:`Px4NotAvailable` naming the problem."""
    value = os.environ.get("PX4_DIR")
    if not value:
        raise Px4NotAvailable(
            "PX4_DIR is not set: build PX4 SITL (git clone PX4-Autopilot && make px4_sitl_default) and set "
            "PX4_DIR=<PX4-Autopilot>/build/px4_sitl_default")
    path = Path(value).expanduser()
    if not (path / "bin" / "px4").is_file():
        raise Px4NotAvailable(f"PX4_DIR={path}: no bin/px4 there (expected a px4_sitl_default build directory)")
    if not (path / "etc").is_dir():
        raise Px4NotAvailable(f"PX4_DIR={path}: no etc/ directory (an incomplete build?)")
    return path


@dataclass
class Px4Sitl:
    """One PX4 SITL SIH instance. Degrees WGS-84, metres AMSL, sim seconds per wall second."""

    px4_dir: Path
    instance: int = 0
    home_lat: float = 30.0870
    home_lon: float = 120.4950
    home_alt: float = 0.0
    speed_factor: float = 1.0
    model: str = "sihsim_quadx"
    ready_timeout_s: float = 90.0
    fresh_params: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _ready: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _lines: list[str] = field(default_factory=list, init=False, repr=False)

    @classmethod
    def from_env(cls, instance: int = 0, **kw) -> Px4Sitl:
        """Build from the environment: PX4_DIR, PX4_HOME_LAT/LON/ALT, PX4_SIM_SPEED_FACTOR."""
        env = os.environ
        defaults = {
            "home_lat": float(env["PX4_HOME_LAT"]) if "PX4_HOME_LAT" in env else cls.home_lat,
            "home_lon": float(env["PX4_HOME_LON"]) if "PX4_HOME_LON" in env else cls.home_lon,
            "home_alt": float(env["PX4_HOME_ALT"]) if "PX4_HOME_ALT" in env else cls.home_alt,
            "speed_factor": float(env["PX4_SIM_SPEED_FACTOR"]) if "PX4_SIM_SPEED_FACTOR" in env else cls.speed_factor,
        }
        defaults.update(kw)
        return cls(px4_dir_from_env(), instance=instance, **defaults)

    @property
    def workdir(self) -> Path:
        return self.px4_dir / "rootfs" / str(self.instance)

    @property
    def log_path(self) -> Path:
        return self.workdir / "skygrid-px4.log"

    @property
    def connection_url(self) -> str:
        """MAVSDK URL of this instance's API link (PX4 sends to 14540 + instance)."""
        return f"udpin://0.0.0.0:{14540 + self.instance}"

    def env(self) -> dict[str, str]:
        e = dict(os.environ)
        e.update({
            "PX4_SIM_MODEL": self.model,
            "PX4_SIMULATOR": "sihsim",
            "PX4_HOME_LAT": repr(self.home_lat),
            "PX4_HOME_LON": repr(self.home_lon),
            "PX4_HOME_ALT": repr(self.home_alt),
            "PX4_SIM_SPEED_FACTOR": repr(self.speed_factor),
        })
        e.update(self.extra_env)
        return e

    def command(self) -> list[str]:
        return [str(self.px4_dir / "bin" / "px4"), "-i", str(self.instance), "-d", str(self.px4_dir / "etc")]

    def start(self) -> Px4Sitl:
        """Start PX4 and wait for "Ready for takeoff"; on timeout stop it and raise with the log tail."""
        if self._proc is not None:
            raise RuntimeError("Px4Sitl.start: already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.fresh_params:
            for name in ("parameters.bson", "parameters_backup.bson", "dataman"):
                (self.workdir / name).unlink(missing_ok=True)
        self._ready.clear()
        self._lines.clear()
        self._proc = subprocess.Popen(
            self.command(), cwd=self.workdir, env=self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
        threading.Thread(target=self._pump, name=f"px4-{self.instance}-log", daemon=True).start()
        deadline = time.monotonic() + self.ready_timeout_s
        while not self._ready.wait(0.2):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self._lines[-20:])
                why = f"exited with {self._proc.returncode}" if self._proc.poll() is not None else \
                    f"not ready after {self.ready_timeout_s} s"
                self.stop()
                raise RuntimeError(f"PX4 SITL instance {self.instance} {why}; log {self.log_path}:\n{tail}")
        return self

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with open(self.log_path, "w", encoding="utf-8") as log:
            for line in self._proc.stdout:
                log.write(line)
                log.flush()
                self._lines.append(line.rstrip())
                if len(self._lines) > 500:
                    del self._lines[:100]
                if READY_LINE in line:
                    self._ready.set()

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGINT the PX4 process group (PX4 shuts down cleanly on it), SIGKILL after ``timeout_s``."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            except ProcessLookupError:
                pass
        return proc.returncode

    def __enter__(self) -> Px4Sitl:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
