"""DispatchReporter: batched, non-blocking, tolerant of a down server; applies commands.

No assertion depends on machine speed: "non-blocking" is shown by listener calls returning
while the fake dispatch holds a POST open; waits poll a condition under a generous deadline
(``HANG_GUARD_S``) that only a hung test reaches."""

from __future__ import annotations

import threading
import time

from flight.records import FlightEvent, Telemetry
from flight.reporting import DispatchReporter
from tests.conftest import free_tcp_port

from .fakedispatch import FakeDispatch

HANG_GUARD_S = 60.0  # wall seconds


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


def wait(pred, timeout: float = HANG_GUARD_S) -> bool:
    """Poll ``pred`` every 50 ms until true or ``timeout`` wall seconds passed."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_server_down_then_up_delivers_everything_in_batches():
    port = free_tcp_port()
    rep = DispatchReporter(f"http://127.0.0.1:{port}", "T", flush_s=0.1)
    for i in range(500):
        rep.on_telemetry(tel(i))
    rep.on_event(FlightEvent("d0", time.time(), "link_lost", "lost"))
    assert wait(lambda: rep.failures > 0)
    with FakeDispatch(port) as srv:
        assert wait(lambda: len(srv.records()) == 500 and len(srv.events()) == 1)
        assert len(srv.batches) < 20  # batched, not one request per record
        assert [r["lat"] for r in srv.records()] == [tel(i).lat for i in range(500)]
        assert srv.events()[0]["kind"] == "link_lost"
        rep.close()
    assert rep.sent_records == 500 and rep.dropped_records == 0


def test_listeners_return_while_dispatch_holds_a_post():
    """The flight loop never waits on the network: while the reporter thread is inside a POST
    that dispatch holds open (client timeout 600 s), ``on_telemetry``/``on_event`` return and
    queue; a blocking listener would still be waiting when the join's hang guard ends."""
    port = free_tcp_port()
    gate = threading.Event()
    with FakeDispatch(port, gate=gate) as srv:
        rep = DispatchReporter(f"http://127.0.0.1:{port}", "T", flush_s=0.05, timeout_s=600.0)
        try:
            rep.on_telemetry(tel(0))
            assert srv.held.wait(HANG_GUARD_S), "the fake dispatch never received the first batch"

            def produce() -> None:
                for i in range(1, 500):
                    rep.on_telemetry(tel(i))
                rep.on_event(FlightEvent("d0", time.time(), "link_lost", "lost"))

            producer = threading.Thread(target=produce, daemon=True)
            producer.start()
            producer.join(HANG_GUARD_S)
            assert not producer.is_alive(), "a listener blocked while dispatch held a POST open"
            assert srv.batches == [] and rep.sent_records == 0  # the first POST is still held
        finally:
            gate.set()
        assert wait(lambda: len(srv.records()) == 500 and len(srv.events()) == 1)
        assert [r["lat"] for r in srv.records()] == [tel(i).lat for i in range(500)]
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
        assert rep._after == 4  # d9's order (id 3) came before d1's resume (id 4): seen and skipped
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
