"""The same flight code against real PX4 SITL (SIH), where a PX4 build exists.

Skipped with the reason when PX4_DIR is unset (the normal case here and in CI, which
cannot download PX4's sources); SKYGRID_REQUIRE_PX4=1 makes a missing PX4 fail.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from flight.executor import FlightConfig
from flight.fleet import Fleet

from .planfactory import make_plan
from .simharness import Recorder

pytestmark = [pytest.mark.px4, pytest.mark.timeout(500)]
HOME = (30.0870, 120.4950, 12.0)


@pytest.fixture
def px4():
    from simulators.px4 import Px4NotAvailable, Px4Sitl, px4_dir_from_env

    try:
        px4_dir_from_env()
    except Px4NotAvailable as e:
        if os.environ.get("SKYGRID_REQUIRE_PX4") == "1":
            pytest.fail(f"{e} (required: SKYGRID_REQUIRE_PX4=1)")
        pytest.skip(str(e))
    sitl = Px4Sitl.from_env(instance=0, home_lat=HOME[0], home_lon=HOME[1], home_alt=HOME[2],
                            speed_factor=float(os.environ.get("PX4_SIM_SPEED_FACTOR", "10")))
    sitl.start()
    yield sitl
    sitl.stop()


def test_px4_flies_a_multi_grid_plan_with_every_waypoint_reached(px4, tmp_path):
    plan = make_plan([[(40, 40), (200, 40)]], lines=2, alt=30, home=HOME[:2])
    rec = Recorder()
    fleet = Fleet(plan, [px4.connection_url], listeners=[rec], log_dir=tmp_path, config=FlightConfig(telemetry_hz=5))
    res = asyncio.run(fleet.run())
    assert res["d0"].status == "done", rec.kinds()
    s = plan.sorties[0]
    assert sorted(i for _sid, i in rec.reached()) == list(range(len(s.waypoints)))
    assert "landed" in rec.kinds()
