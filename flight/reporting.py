"""Flight -> dispatch over HTTP: telemetry/events out, command-room orders in.

:class:`DispatchReporter` is a :class:`flight.records.FlightListener`. ``on_telemetry`` /
``on_event`` only append to a bounded in-memory queue (never block the flight loop); a
background thread POSTs batches to ``/api/v1/telemetry`` every ``flush_s`` and polls
``GET /api/v1/drones/commands`` every ``poll_s``, handing new orders to the fleet
(``fleet.command(drone_id, action)``). When the server is down the reporter keeps
retrying with back-off; telemetry older than the queue bound is dropped (counted) but
events are kept first, since the command room needs the faults more than old poses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from flight.records import FlightEvent, Telemetry

log = logging.getLogger("skygrid.flight.reporting")
#: commands asked for per poll (the API caps ``limit`` at 1,000)
COMMAND_PAGE = 1000


def upload_plan(base_url: str, token: str, plan: dict[str, Any], timeout_s: float = 15.0) -> str | None:
    """PUT the plan being flown to dispatch (``/api/v1/plan``) so the command room draws its
    routes. Returns None on success, else why not (the flight goes on: the plan is a view)."""
    import httpx

    try:
        r = httpx.put(f"{base_url.rstrip('/')}/api/v1/plan", json=plan, timeout=timeout_s,
                      headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as e:
        return f"dispatch unreachable at {base_url}: {e}"
    if r.status_code >= 400:
        return f"dispatch refused the plan: HTTP {r.status_code} {r.text[:200]}"
    return None


class DispatchReporter:
    """Posts flight streams to dispatch and applies its drone commands.

    ``base_url`` like ``http://127.0.0.1:8000``; ``token`` an operator bearer token.
    Call :meth:`attach` with the fleet (``Fleet.run`` does it) to apply commands;
    :meth:`close` (or ``await aclose()``) flushes what is left and stops the thread.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        flush_s: float = 0.5,
        poll_s: float = 1.0,
        max_batch: int = 2000,
        max_queued_records: int = 20000,
        timeout_s: float = 5.0,
        drone_ids: list[str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.flush_s = flush_s
        self.poll_s = poll_s
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self._records: deque[dict[str, Any]] = deque(maxlen=max_queued_records)
        self._events: deque[dict[str, Any]] = deque(maxlen=max_queued_records)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._fleet: Any = None
        self._drone_ids: set[str] = set(drone_ids or [])
        self._after: int | None = None
        self.sent_records = 0
        self.sent_events = 0
        self.dropped_records = 0
        self.failures = 0
        self.commands_applied: list[dict[str, Any]] = []
        self.server_up = False
        self._thread = threading.Thread(target=self._run, name="dispatch-reporter", daemon=True)
        self._thread.start()

    # -- FlightListener -------------------------------------------------------------
    def on_telemetry(self, record: Telemetry) -> None:
        with self._lock:
            if len(self._records) == self._records.maxlen:
                self.dropped_records += 1
            self._records.append(record.to_dict())
            self._drone_ids.add(record.drone_id)

    def on_event(self, event: FlightEvent) -> None:
        with self._lock:
            self._events.append(event.to_dict())
            self._drone_ids.add(event.drone_id)
        self._wake.set()  # events go out promptly

    def attach(self, fleet: Any) -> None:
        """Apply command-room orders to ``fleet`` (anything with ``command(drone_id, action)``)."""
        self._fleet = fleet
        for did in getattr(fleet, "drone_ids", []):
            self._drone_ids.add(did)

    # -- thread ---------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _run(self) -> None:
        import httpx

        backoff = 0.0
        next_poll = 0.0
        with httpx.Client(base_url=self.base_url, headers=self._headers(), timeout=self.timeout_s) as client:
            while True:
                self._wake.wait(timeout=max(self.flush_s, backoff))
                self._wake.clear()
                stopping = self._stop.is_set()  # close(): one last flush, then out
                ok = self._flush(client)
                now = time.monotonic()
                if ok and self._fleet is not None and now >= next_poll and not stopping:
                    ok = self._poll(client) and ok
                    next_poll = now + self.poll_s
                backoff = 0.0 if ok else min(10.0, max(1.0, backoff * 2))
                if stopping:
                    return

    def _flush(self, client: Any) -> bool:
        while True:
            with self._lock:
                if not self._records and not self._events:
                    return True
                events = [self._events.popleft() for _ in range(min(len(self._events), self.max_batch))]
                records = [self._records.popleft() for _ in range(min(len(self._records), self.max_batch))]
            try:
                r = client.post("/api/v1/telemetry", json={"records": records, "events": events})
                if r.status_code >= 500 or r.status_code in (401, 403, 429):
                    raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
                if r.status_code >= 400:  # a bad batch: drop it rather than retry forever
                    log.warning("dispatch refused a telemetry batch: %s %s", r.status_code, r.text[:300])
                self.sent_records += len(records)
                self.sent_events += len(events)
                self.server_up = True
            except Exception as e:
                self.failures += 1
                if self.server_up or self.failures == 1:
                    log.warning("dispatch unreachable at %s: %s (will retry)", self.base_url, e)
                self.server_up = False
                with self._lock:  # put them back, events first in line
                    self._events.extendleft(reversed(events))
                    for rec in reversed(records):
                        if len(self._records) == self._records.maxlen:
                            self.dropped_records += 1
                            break
                        self._records.appendleft(rec)
                return False

    def _poll(self, client: Any) -> bool:
        """Apply the orders issued since the last poll. The first poll of a run only finds
        where history ends (paging through all of it: the server answers at most ``limit``
        per request), so yesterday's "rtl" for a reused drone id is never flown today."""
        first = self._after is None
        after = self._after or 0
        try:
            cmds = self._fetch_commands(client, after)
            while first and len(cmds) >= COMMAND_PAGE:
                after = int(cmds[-1].get("id", 0))
                cmds = self._fetch_commands(client, after)
        except Exception as e:
            log.debug("command poll failed: %s", e)
            return False
        if first:  # orders from before this run are history, not for us
            self._after = max([after, *(int(c.get("id", 0)) for c in cmds)])
            return True
        for c in cmds:
            self._after = max(self._after or 0, int(c.get("id", 0)))
            did, action = c.get("drone_id"), c.get("action")
            if did not in self._drone_ids:
                continue
            try:
                self._fleet.command(did, action)
                self.commands_applied.append(c)
                log.info("command room: %s %s (by %s)", did, action, c.get("issued_by"))
            except Exception as e:
                log.warning("cannot apply command %s: %s", c, e)
        return True

    @staticmethod
    def _fetch_commands(client: Any, after: int) -> list[dict[str, Any]]:
        r = client.get("/api/v1/drones/commands", params={"after": after, "limit": COMMAND_PAGE})
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
        return list(r.json().get("commands", []))

    # -- closing --------------------------------------------------------------------
    def flush(self, timeout_s: float = 5.0) -> None:
        """Send what is queued now (best effort within ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        self._wake.set()
        while time.monotonic() < deadline:
            with self._lock:
                if not self._records and not self._events:
                    return
            time.sleep(0.05)

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush and stop the background thread."""
        if not self._thread.is_alive():
            return
        self.flush(timeout_s)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout_s + self.timeout_s)

    async def aclose(self, timeout_s: float = 5.0) -> None:
        import asyncio

        await asyncio.to_thread(self.close, timeout_s)
