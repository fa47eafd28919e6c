"""Several drones at once: one process, one asyncio loop, one connection per drone.

Each drone flies its sorties from the plan in order. Between sorties it lands (the
mission ends with return-to-launch), then *turns around*: waits ``turnaround_s``,
calls the optional ``battery_swap(drone_id)`` hook, and waits until the battery is
back above what the next sortie needs (``swap_timeout_s``). With PX4 SITL and the
SkyGrid simulator the simulated battery is refilled on the ground (disarmed), so
the default needs no hook; with a real drone the operator swaps the pack within the
timeout. An interrupted sortie (low battery, failsafe) is re-planned: its unfinished
remainder becomes a follow-up sortie flown next by the same drone.

A drone that fails (no link, pre-flight refused, upload refused) stops; the others go
on. ``await Fleet(...).run()`` returns a summary per drone.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flight.executor import (
    COMMANDS,
    Emitter,
    FlightConfig,
    SortieExecutor,
    SortieResult,
    TelemetryPump,
)
from flight.flightlog import FlightLog, log_path, unique_path
from flight.link import LinkError, VehicleLink
from flight.records import FlightListener
from flight.zh import event_zh
from geo.plan_schema import Plan, Sortie

log = logging.getLogger("skygrid.flight.fleet")


@dataclass
class DroneStatus:
    """Live per-drone status (read by progress displays; updated on the loop)."""

    drone_id: str
    url: str
    state: str = "waiting"  # connecting, preflight, flying, returning, turnaround, done, failed, aborted
    sortie_id: str | None = None
    sortie_no: int = 0
    sorties_total: int = 0
    item: int | None = None
    items_total: int | None = None
    battery_pct: float | None = None
    flight_mode: str = ""
    connected: bool = False
    in_air: bool = False
    last_event: str = ""  # the latest flight event in Chinese, for the 飞手's table (flight.zh)


@dataclass
class DroneSummary:
    """How one drone's day went."""

    drone_id: str
    url: str
    status: str  # done | failed | aborted
    sorties: list[SortieResult] = field(default_factory=list)
    #: ids of sorties (incl. follow-ups) it did not fly
    unflown: list[str] = field(default_factory=list)
    error: str = ""
    error_zh: str = ""  # the error in Chinese where one is known (pre-flight), for the 飞手's summary
    telemetry_records: int = 0
    logs: list[str] = field(default_factory=list)

    @property
    def completed(self) -> list[str]:
        return [r.sortie_id for r in self.sorties if r.status == "completed"]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for s in d["sorties"]:
            fu = s.get("follow_up")
            s["follow_up"] = fu["id"] if isinstance(fu, dict) else fu
        return d


def assign_sorties(plan: Plan, n_connections: int) -> list[list[Sortie]]:
    """Sorties per connection. Drone k of the plan flies on connection k; with fewer
    connections than planned drones the extra drones' sorties are appended round-robin
    to the connected ones (so nothing planned is silently dropped)."""
    if n_connections < 1:
        raise ValueError("no vehicle connection given (one --connect URL per drone)")
    queues: list[list[Sortie]] = [[] for _ in range(n_connections)]
    drones = sorted({s.drone for s in plan.sorties})
    for d in drones:
        queues[d % n_connections].extend(plan.sorties_for(d))
    return queues


class Fleet:
    """Fly ``plan`` on ``connections`` (one MAVSDK connection URL per drone).

    ``listeners`` get every Telemetry/FlightEvent; a listener with an ``attach(fleet)``
    method is given the fleet (so :class:`flight.reporting.DispatchReporter` can apply
    command-room orders). ``log_dir`` receives one JSON-lines flight log per sortie
    (``<drone>_<sortie>.jsonl``: poses + events) and one journal per drone
    (``<drone>_events.jsonl``: every event, also between sorties).
    """

    def __init__(
        self,
        plan: Plan,
        connections: Sequence[str],
        listeners: Sequence[FlightListener] = (),
        log_dir: Path | str | None = None,
        config: FlightConfig | None = None,
        *,
        turnaround_s: float = 0.0,
        battery_swap: Callable[[str], Any] | None = None,
        swap_timeout_s: float = 120.0,
        max_follow_ups: int = 3,
    ) -> None:
        self.plan = plan
        self.connections = list(connections)
        self.listeners = list(listeners)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.config = config or FlightConfig()
        self.turnaround_s = turnaround_s
        self.battery_swap = battery_swap
        self.swap_timeout_s = swap_timeout_s
        self.max_follow_ups = max_follow_ups
        self.queues = assign_sorties(plan, len(self.connections))
        self.drone_ids = [f"d{i}" for i in range(len(self.connections))]
        self.status: dict[str, DroneStatus] = {
            did: DroneStatus(did, url, sorties_total=len(q))
            for did, url, q in zip(self.drone_ids, self.connections, self.queues, strict=True)
        }
        self.results: dict[str, DroneSummary] = {}
        self._commands: dict[str, asyncio.Queue] = {}
        self._executors: dict[str, SortieExecutor | None] = {}
        self._stop: dict[str, bool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._pending: list[tuple[str, str]] = []

    # -- commands -------------------------------------------------------------------
    def command(self, drone_id: str, action: str) -> None:
        """Command-room order for one drone: ``"rtl"`` (abort: return and stop),
        ``"hold"`` (hover) or ``"resume"``. Safe to call from any thread."""
        if action not in COMMANDS:
            raise ValueError(f"unknown command {action!r}: use one of {', '.join(COMMANDS)}")
        if drone_id not in self.status:
            raise ValueError(f"unknown drone {drone_id!r}: fleet has {', '.join(self.drone_ids)}")
        if self._loop is None:
            self._pending.append((drone_id, action))
            return
        if threading.get_ident() == self._loop_thread:
            self._commands[drone_id].put_nowait(action)
        else:
            self._loop.call_soon_threadsafe(self._commands[drone_id].put_nowait, action)

    # -- run ------------------------------------------------------------------------
    async def run(self) -> dict[str, DroneSummary]:
        """Fly every drone's sorties; returns ``{drone_id: DroneSummary}``."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        n = len(self.connections)
        if n > 1:
            # MAVSDK's blocking calls run in the default executor: a few per drone at once
            self._loop.set_default_executor(ThreadPoolExecutor(max_workers=8 + 4 * n, thread_name_prefix="mavsdk"))
        for did in self.drone_ids:
            self._commands[did] = asyncio.Queue()
            self._stop[did] = False
        for did, action in self._pending:
            self._commands[did].put_nowait(action)
        self._pending.clear()
        for lst in self.listeners:
            attach = getattr(lst, "attach", None)
            if callable(attach):
                attach(self)
        tasks = [
            asyncio.create_task(self._drone(did, url, q), name=f"fleet-{did}")
            for did, url, q in zip(self.drone_ids, self.connections, self.queues, strict=True)
        ]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for did, url, r in zip(self.drone_ids, self.connections, results, strict=True):
            if isinstance(r, BaseException):
                log.error("drone %s crashed: %r", did, r)
                self.results[did] = DroneSummary(did, url, "failed", error=f"internal error: {r!r}")
                self.status[did].state = "failed"
        return dict(self.results)

    def _update_status(self, did: str, link: VehicleLink, emitter: Emitter) -> None:
        s = self.status[did]
        st = link.state
        s.connected = st.connected
        s.battery_pct = st.battery_pct if math.isfinite(st.battery_pct) else None
        s.flight_mode = st.flight_mode
        s.in_air = st.in_air
        s.item = emitter.mission_item
        s.items_total = emitter.mission_total

    async def _status_loop(self, did: str, link: VehicleLink, emitter: Emitter) -> None:
        while True:
            self._update_status(did, link, emitter)
            await asyncio.sleep(0.25)

    async def _drone(self, did: str, url: str, sorties: list[Sortie]) -> None:
        status = self.status[did]
        summary = DroneSummary(did, url, "done")
        self.results[did] = summary
        emitter = Emitter(did, self.listeners)

        class _LastEvent:
            def on_telemetry(self, record: Any) -> None:
                pass

            def on_event(self, event: Any) -> None:
                status.last_event = event_zh(event.kind, event.data)

        emitter.listeners.append(_LastEvent())
        journal = None
        if self.log_dir is not None:
            # every event of this drone, including those between sorties (turnaround, re-plan)
            journal = FlightLog(unique_path(self.log_dir / f"{did}_events.jsonl"), did, "*", events_only=True)
            emitter.listeners.append(journal)
        link = VehicleLink(url, did)
        status.state = "connecting"
        try:
            await link.connect(self.config.connect_timeout_s)
        except LinkError as e:
            summary.status, summary.error = "failed", str(e)
            summary.unflown = [s.id for s in sorties]
            status.state = "failed"
            emitter.event(link.state, "connect_failed", str(e), url=url)
            await link.close()
            if journal is not None:
                journal.close()
            return
        emitter.event(link.state, "connected", f"connected on {url}", url=url)
        pump = TelemetryPump(link, emitter, self.config.telemetry_hz)
        pump.start()
        stat_task = asyncio.create_task(self._status_loop(did, link, emitter))
        queue: deque[Sortie] = deque(sorties)
        follow_ups: dict[str, int] = {}
        first = True
        try:
            while queue:
                sortie = queue.popleft()
                if not first:
                    status.state = "turnaround"
                    await self._turnaround(did, link, emitter, sortie)
                if self._stop[did]:
                    queue.appendleft(sortie)
                    summary.status = "aborted"
                    break
                first = False
                status.sortie_id = sortie.id
                status.sortie_no += 1
                status.state = "flying"
                flog = None
                if self.log_dir is not None:
                    p = unique_path(log_path(self.log_dir, did, sortie.id))
                    flog = FlightLog(p, did, sortie.id)
                    summary.logs.append(str(p))
                    emitter.listeners.append(flog)
                ex = SortieExecutor(link, self.plan, sortie, emitter, self.config, self._commands[did])
                self._executors[did] = ex
                try:
                    res = await ex.run()
                finally:
                    self._executors[did] = None
                    if flog is not None:
                        emitter.listeners.remove(flog)
                        flog.close()
                summary.sorties.append(res)
                if res.status == "completed":
                    continue
                if res.status == "interrupted" and res.follow_up is not None:
                    root = re.sub(r"(-r\d+)+$", "", sortie.id)
                    follow_ups[root] = follow_ups.get(root, 0) + 1
                    if follow_ups[root] > self.max_follow_ups:
                        emitter.event(link.state, "replan_refused",
                                      f"{root} interrupted {follow_ups[root]} times; not re-planning again")
                        summary.unflown.append(res.follow_up.id)
                        continue
                    status.sorties_total += 1
                    queue.appendleft(res.follow_up)
                    emitter.event(
                        link.state,
                        "replanned",
                        f"follow-up sortie {res.follow_up.id}: {len(res.follow_up.waypoints)} waypoints "
                        f"from #{max(0, res.reached_index)} of {sortie.id} ({res.reason})",
                        follow_up=res.follow_up.id,
                        from_sortie=sortie.id,
                        from_index=max(0, res.reached_index),
                    )
                    continue
                if res.status == "aborted":
                    summary.status = "aborted"
                    if res.follow_up is not None:
                        summary.unflown.append(res.follow_up.id)
                    break
                summary.status, summary.error, summary.error_zh = "failed", res.reason, res.reason_zh
                if res.follow_up is not None:
                    summary.unflown.append(res.follow_up.id)
                elif res.reached_index < 0:
                    summary.unflown.append(sortie.id)  # never got going
                break
            summary.unflown.extend(s.id for s in queue)
            status.state = summary.status
            emitter.event(
                link.state,
                "drone_done",
                f"{did}: {summary.status}; {len(summary.completed)} sortie(s) completed"
                + (f", not flown: {', '.join(summary.unflown)}" if summary.unflown else ""),
                status=summary.status,
                unflown=list(summary.unflown),
            )
        finally:
            summary.telemetry_records = pump.count
            stat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stat_task
            self._update_status(did, link, emitter)
            await pump.stop()
            await link.close()
            if journal is not None:
                journal.close()

    async def _turnaround(self, did: str, link: VehicleLink, emitter: Emitter, nxt: Sortie) -> None:
        """Between sorties: wait, swap the battery, wait until it is fresh enough."""
        # drain commands given while on the ground
        q = self._commands[did]
        while not q.empty():
            a = q.get_nowait()
            if a in ("rtl", "hold"):
                self._stop[did] = True
                emitter.event(link.state, "command", f"command room: {a} while on the ground: no more sorties")
            elif a == "resume":
                self._stop[did] = False
        if self._stop[did]:
            return
        emitter.event(link.state, "turnaround", f"landed; turnaround before {nxt.id}", next_sortie=nxt.id)
        if self.turnaround_s > 0:
            await asyncio.sleep(self.turnaround_s)
        if self.battery_swap is not None:
            r = self.battery_swap(did)
            if inspect.isawaitable(r):
                await r
        cfg = self.config
        need = min(100.0, max(cfg.min_takeoff_battery_pct, nxt.battery_fraction * 100 + cfg.battery_reserve_pct))
        t0 = time.monotonic()
        ok = await link.wait_for(
            lambda s: math.isfinite(s.battery_pct) and s.battery_pct >= need and not s.armed, self.swap_timeout_s
        )
        st = link.state
        if ok:
            emitter.event(st, "battery_ready", f"battery {st.battery_pct:.0f} % after {time.monotonic() - t0:.1f} s",
                          battery_pct=st.battery_pct)
        else:
            emitter.event(st, "battery_not_swapped",
                          f"battery {st.battery_pct:.0f} % < {need:.0f} % after {self.swap_timeout_s:.0f} s",
                          battery_pct=st.battery_pct)
