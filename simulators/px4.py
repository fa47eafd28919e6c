"""Start and stop PX4 SITL (SIH quadrotor, headless, no Gazebo) from a PX4 build.

PX4 is the reference autopilot the SkyGrid vehicle simulator imitates; where a PX4 build
exists the same MAVSDK code and the ``px4`` test suite run against it. ``PX4_DIR`` may name
either the PX4-Autopilot source tree (its ``build/px4_sitl_default`` is used) or that build
directory itself. ``PX4_INSTANCE`` (default 0) picks the instance, so that several PX4s or a
PX4 beside other simulators can run on one machine. Instance ``i`` works in ``rootfs/<i>``
and uses the UDP ports PX4 derives from it (:func:`px4_ports`): it listens on 14580+i and
sends to 14540+i (``udpin://0.0.0.0:14540+i`` for MAVSDK), and its ground-station link
listens on 18570+i, as PX4's own ``sitl_multiple_run.sh`` does::

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
#: where ``make px4_sitl_default`` puts the SITL build inside a PX4-Autopilot source tree
SITL_BUILD_SUBDIR = Path("build") / "px4_sitl_default"
#: PX4 SITL's UDP port bases; instance i adds i to each (see PX4's ROMFS px4-rc.mavlink)
API_REMOTE_BASE = 14540  # PX4 sends its API/offboard link here: MAVSDK listens on it
API_LOCAL_BASE = 14580  # PX4 listens for that link here
GCS_LOCAL_BASE = 18570  # PX4's ground-station link listens here (and sends to 14550)
#: what ``PX4_DIR`` may name, for error messages, ``--help`` and the docs
PX4_DIR_HELP = ("the PX4-Autopilot source tree (its build/px4_sitl_default is used) or that "
                "build/px4_sitl_default directory itself")


class Px4NotAvailable(RuntimeError):
    """No usable PX4 build: the message says what is missing and how to provide it."""


@dataclass(frozen=True)
class Px4Ports:
    """The loopback UDP ports of PX4 SITL instance ``instance`` (all derived from it)."""

    instance: int
    api_remote: int  # PX4 sends to it; MAVSDK / skygrid fly listen there
    api_local: int  # PX4 listens there for the API link
    gcs_local: int  # PX4's ground-station (QGroundControl) link listens there


def px4_ports(instance: int) -> Px4Ports:
    """Ports of instance ``instance`` (>= 0): 14540+i, 14580+i, 18570+i as PX4 derives them."""
    if isinstance(instance, bool) or not isinstance(instance, int) or instance < 0:
        raise ValueError(f"PX4 instance must be an integer >= 0, got {instance!r}")
    return Px4Ports(instance, API_REMOTE_BASE + instance, API_LOCAL_BASE + instance, GCS_LOCAL_BASE + instance)


def px4_instance_from_env(default: int = 0) -> int:
    """``PX4_INSTANCE`` as an instance number (``default`` when unset); ValueError names the variable."""
    value = os.environ.get("PX4_INSTANCE", "").strip()
    if not value:
        return default
    try:
        instance = int(value)
    except ValueError:
        raise ValueError(f"PX4_INSTANCE={value!r}: not an integer (instance number, 0 for the first PX4)") from None
    if instance < 0:
        raise ValueError(f"PX4_INSTANCE={value!r}: must be >= 0")
    return instance


def resolve_px4_build(value: str | os.PathLike[str], name: str = "PX4_DIR") -> Path:
    """The SITL build directory for ``value``: a build directory (``bin/px4`` in it) is used as it
    is, a PX4-Autopilot source tree is resolved to its ``build/px4_sitl_default``. Raises
    :class:`Px4NotAvailable` naming ``name``, the path and every place looked at."""
    path = Path(value).expanduser()
    if not path.is_dir():
        raise Px4NotAvailable(f"{name}={path}: no such directory (expected {PX4_DIR_HELP})")
    build = path if (path / "bin" / "px4").is_file() else path / SITL_BUILD_SUBDIR
    if not (build / "bin" / "px4").is_file():
        if (path / "Tools").is_dir() or (path / "boards").is_dir():
            hint = f"a PX4 source tree without a SITL build: run `make px4_sitl_default` in {path}"
        else:
            hint = f"expected {PX4_DIR_HELP}"
        raise Px4NotAvailable(f"{name}={path}: no bin/px4 there nor in {SITL_BUILD_SUBDIR}/bin/px4 ({hint})")
    if not (build / "etc").is_dir():
        raise Px4NotAvailable(f"{name}={path}: no etc/ directory in {build} (an incomplete build?)")
    return build


def px4_dir_from_env() -> Path:
    """``PX4_DIR`` resolved to the SITL build directory (:func:`resolve_px4_build`), or
    :class:`Px4NotAvailable` naming the problem."""
    value = os.environ.get("PX4_DIR")
    if not value:
        raise Px4NotAvailable(
            "PX4_DIR is not set: build PX4 SITL (git clone PX4-Autopilot && make px4_sitl_default) and set "
            f"PX4_DIR to {PX4_DIR_HELP}")
    return resolve_px4_build(value)


def status_text_is(text: str, expected: str) -> bool:
    """Whether a STATUSTEXT says ``expected``, compared loosely: PX4 appends a tab (and may
    change case, e.g. "Executing Mission"), so surrounding whitespace and case are ignored."""
    return text.strip().casefold() == expected.strip().casefold()


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

    def __post_init__(self) -> None:
        self.px4_dir = Path(self.px4_dir)
        if not (self.px4_dir / "bin" / "px4").is_file() and (self.px4_dir / SITL_BUILD_SUBDIR / "bin" / "px4").is_file():
            self.px4_dir = self.px4_dir / SITL_BUILD_SUBDIR  # a source tree: use its SITL build
        px4_ports(self.instance)  # ValueError for a bad instance number, before anything starts

    @classmethod
    def from_env(cls, instance: int | None = None, **kw) -> Px4Sitl:
        """Build from the environment: PX4_DIR, PX4_INSTANCE (when ``instance`` is None),
        PX4_HOME_LAT/LON/ALT, PX4_SIM_SPEED_FACTOR; keyword arguments override them."""
        env = os.environ
        if instance is None:
            instance = px4_instance_from_env()
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
    def ports(self) -> Px4Ports:
        """This instance's UDP ports (14540+i, 14580+i, 18570+i)."""
        return px4_ports(self.instance)

    @property
    def connection_url(self) -> str:
        """MAVSDK URL of this instance's API link (PX4 sends to 14540 + instance)."""
        return f"udpin://0.0.0.0:{self.ports.api_remote}"

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
