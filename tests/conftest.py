"""Shared fixtures. Suites that need outside parts (chromium, PostgreSQL, PX4) skip with a
reason on a developer machine but FAIL under CI (CI=true or SKYGRID_REQUIRE_*), so a
broken CI install cannot pass silently."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


def _required(flag: str) -> bool:
    return os.environ.get(flag) == "1" or os.environ.get("CI", "").lower() == "true"


def need(flag: str, reason: str) -> None:
    """Skip locally, fail in CI, when a required outside part is missing."""
    if _required(flag):
        pytest.fail(f"{reason} (required under CI: {flag})")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("SKYGRID_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).exists() and not shutil.which("chromium"):
        need("SKYGRID_REQUIRE_BROWSER", f"Debian chromium not found at {path}: apt-get install chromium")
    return path if Path(path).exists() else shutil.which("chromium")


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = os.environ.get("SKYGRID_TEST_PG_URL")
    if not url:
        need("SKYGRID_REQUIRE_POSTGRES", "no PostgreSQL: set SKYGRID_TEST_PG_URL (see .ci/run)")
    return url


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PX4_HOME = (30.0870, 120.4950, 12.0)  # lat, lon, alt AMSL of the SITL home used by the px4 suites


@pytest.fixture
def px4():
    """PX4 SITL (SIH) from ``PX4_DIR`` (source tree or build directory), instance ``PX4_INSTANCE``
    (default 0; its ports are 14540+i / 14580+i / 18570+i), started headless; skipped with the
    reason when unset (failed instead when SKYGRID_REQUIRE_PX4=1)."""
    from simulators.px4 import Px4NotAvailable, Px4Sitl, px4_dir_from_env

    try:
        px4_dir_from_env()
    except Px4NotAvailable as e:
        if os.environ.get("SKYGRID_REQUIRE_PX4") == "1":
            pytest.fail(f"{e} (required: SKYGRID_REQUIRE_PX4=1)")
        pytest.skip(str(e))
    sitl = Px4Sitl.from_env(home_lat=PX4_HOME[0], home_lon=PX4_HOME[1], home_alt=PX4_HOME[2],
                            speed_factor=float(os.environ.get("PX4_SIM_SPEED_FACTOR", "10")))
    sitl.start()
    yield sitl
    sitl.stop()
