"""DispatchReporter: batched, non-blocking, tolerant of a down server; applies commands."""

from __future__ import annotations

import time

from flight.records import FlightEvent, Telemetry
from flight.reporting import DispatchReporter
from tests.conftest import free_tcp_port

from .fakedispatch import FakeDispatch


def tel(i: int, drone: str = "d0") -> Telemetry:
    return Telemetry(drone_id=drone, time_s=i * 0.1, wall_time=time.time(), lat=30.0 + i * 1e-5, lon=120.5,
                     abs_alt_m=50, rel_alt_m=40, roll_deg=0, pitch_deg=0, yaw_deg=90, ground_speed_m_s=10,
                     battery_pct=80, flight_mode="MISSION", armed=True, in_air=True, sortie_id="s", mission_item=1,
                     mission_total=4)


class FakeFleet:
    drone_ids = ["d0", "d1"]

    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []

    def command(self, drone_id: str, action: str) -> None:
        self.got.append((drone_id, action))


def wait(pred, timeout=10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_server_down_then_up_delivers_everything_in_batches():
    port = free_tcp_port()
    rep = DispatchReporter(f"http://127.0.0.1:{port}", "T", flush_s=0.1)
    t0 = time.perf_counter()
    for i in range(500):
        rep.on_telemetry(tel(i))
    rep.on_event(FlightEvent("d0", time.time(), "link_lost", "lost"))
    assert time.perf_counter() - t0 < 0.5  # listeners never block on the network
    assert wait(lambda: rep.failures > 0)
    with FakeDispatch(port) as srv:
        assert wait(lambda: len(srv.records()) == 500 and len(srv.events()) == 1)
        assert len(srv.batches) < 20  # batched, not one request per record
        assert [r["lat"] for r in srv.records()] == [tel(i).lat for i in range(500)]
        assert srv.events()[0]["kind"] == "link_lost"
        rep.close()
    assert rep.sent_records == 500 and rep.dropped_records == 0


def test_commands_after_start_are_applied_to_the_fleet_old_ones_are_not():
    port = free_tcp_port()
    with FakeDispatch(port) as srv:
        srv.add_command("d0", "rtl")  # issued before this run: history
        rep = DispatchReporter(f"http://127.0.0.1:{port}", "T", flush_s=0.05, poll_s=0.1)
        fleet = FakeFleet()
        rep.attach(fleet)
        assert wait(lambda: rep._after is not None)
        srv.add_command("d1", "hold")
        srv.add_command("d9", "rtl")  # not ours
        srv.add_command("d1", "resume")
        assert wait(lambda: len(fleet.got) == 2)
        time.sleep(0.3)
        rep.close()
    assert fleet.got == [("d1", "hold"), ("d1", "resume")]


def test_wrong_token_is_retried_not_dropped():
    port = free_tcp_port()
    with FakeDispatch(port, token="right") as srv:
        rep = DispatchReporter(f"http://127.0.0.1:{port}", "wrong", flush_s=0.05)
        rep.on_telemetry(tel(0))
        assert wait(lambda: srv.unauthorised > 0)
        rep.close(timeout_s=0.5)
        assert srv.records() == [] and rep.sent_records == 0
