"""The same mission scenario against real PX4 SITL (SIH), where a PX4 build exists.

Skipped with the reason when PX4_DIR is unset (the normal case here and in CI, which
cannot download PX4's sources); set SKYGRID_REQUIRE_PX4=1 to make a missing PX4 fail.
"""

from __future__ import annotations

import asyncio

import pytest

from simulators.px4 import Px4NotAvailable, Px4Sitl, px4_dir_from_env
from tests.conftest import PX4_HOME as HOME
from tests.simulators.mavsdk_client import connect, fly_survey

pytestmark = [pytest.mark.px4, pytest.mark.timeout(400)]


def test_px4_flies_the_same_survey(px4: Px4Sitl) -> None:
    async def run() -> None:
        async with connect(px4.connection_url, timeout_s=30) as c:
            await fly_survey(c, HOME[0], HOME[1], n=40, timeout_s=300, spacing_m=20.0, leg_m=60.0, alt_m=30.0)

    asyncio.run(run())


def test_missing_px4_dir_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("PX4_DIR", raising=False)
    with pytest.raises(Px4NotAvailable, match="PX4_DIR is not set"):
        px4_dir_from_env()
    monkeypatch.setenv("PX4_DIR", str(tmp_path))
    with pytest.raises(Px4NotAvailable, match="no bin/px4"):
        px4_dir_from_env()
