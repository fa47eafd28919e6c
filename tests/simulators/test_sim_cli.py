"""`skygrid sim vehicle`: starts vehicles MAVSDK can connect to, stops cleanly, explains bad input."""

from __future__ import annotations

import asyncio
import threading

import pytest

from skygrid.cli import main
from tests.conftest import free_udp_port
from tests.simulators.mavsdk_client import connect, first


@pytest.mark.timeout(60)
def test_sim_vehicle_command_serves_mavsdk_and_stops() -> None:
    base, listen = free_udp_port(), free_udp_port()
    rc: list[int] = []
    t = threading.Thread(target=lambda: rc.append(main(
        ["sim", "vehicle", "--count", "1", "--speed", "5", "--duration", "4", "--home", "30.1,120.6,15",
         "--base-port", str(base), "--listen-base-port", str(listen)])))
    t.start()

    async def check() -> None:
        async with connect(f"udpin://0.0.0.0:{base}") as c:
            home = await first(c.telemetry.subscribe_home(), lambda h: h.latitude_deg == h.latitude_deg, 10, "home")
            assert home.latitude_deg == pytest.approx(30.1, abs=1e-6)
            assert home.absolute_altitude_m == pytest.approx(15.0, abs=0.01)

    try:
        asyncio.run(check())
    finally:
        t.join(20)
    assert rc == [0]


def test_sim_vehicle_rejects_bad_home(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["sim", "vehicle", "--home", "30.1"])
    assert e.value.code == 2
    assert "--home must be LAT,LON[,ALT]" in capsys.readouterr().err


def test_port_in_use_is_a_clear_error() -> None:
    import socket

    from simulators.vehicle import SimVehicle, VehicleConfig

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on udp 127.0.0.1:{port}"):
            SimVehicle(VehicleConfig(listen_host="127.0.0.1", listen_port=port, gcs_port=free_udp_port())).start()
