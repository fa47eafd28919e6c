"""A new run never flies yesterday's orders, however many there are (the API pages them)."""

from __future__ import annotations

from flight.reporting import COMMAND_PAGE, DispatchReporter
from tests.conftest import free_tcp_port

from .fakedispatch import FakeDispatch
from .test_reporting import FakeFleet, tel, wait


def test_more_history_than_one_page_is_skipped_not_applied():
    port = free_tcp_port()
    with FakeDispatch(port) as srv:
        for _ in range(COMMAND_PAGE * 2 + 5):
            srv.add_command("d0", "rtl")  # a past patrol's orders for the same drone id
        rep = DispatchReporter(f"http://127.0.0.1:{port}", "T", flush_s=0.05, poll_s=0.05)
        rep.on_telemetry(tel(0, "d0"))
        fleet = FakeFleet()
        rep.attach(fleet)
        assert wait(lambda: rep._after is not None)
        assert rep._after == COMMAND_PAGE * 2 + 5
        srv.add_command("d0", "hold")
        assert wait(lambda: fleet.got != [])
        rep.close()
    assert fleet.got == [("d0", "hold")]
