"""Benchmark: `skygrid fly` against real PX4 SITL (SIH quadrotor, headless), fresh PX4 per run.

Each run starts a fresh PX4 (``simulators.px4.Px4Sitl``, parameters wiped, home at the px4
suites' home, 10x) and flies a plan with the project's executor exactly as
``tests/flight/test_fly_px4.py`` does (``flight.fleet.Fleet``, one drone). The executor talks
to PX4 through a loopback UDP relay (:class:`UdpRelay`): PX4 sends to 14540+i as always, the
relay forwards to the executor's ``udpin://`` port and back. The relay also reads what PX4
sends (position, flight mode, armed, landed state, mission item) whether or not it forwards
it, so each run is judged from PX4's own account, also while the link is "down":

* ``two-sortie``: two grids, one sortie each (take-off, grid, RTL, land, turnaround, again).
  Pass: both sorties completed, every waypoint reported reached, and PX4 flew every waypoint
  in MISSION mode exactly once (within 10 m, +-5 m altitude).
* ``link-flew-on``: the relay drops everything from waypoint #2 until the executor reported
  the loss and PX4 (NAV_DLL_ACT=0, its default) had flown on past two more mission items.
* ``link-finished``: the link is dropped at waypoint #0 until PX4 finished the mission,
  returned and disarmed; the executor must not fly it again.
* ``link-dll-rtl``: PX4 with NAV_DLL_ACT=2 (data-link loss: Return) and COM_DL_LOSS_T=30 s
  (3 s wall at 10x, as MAVSDK heartbeats only once a wall second); dropped at waypoint #2
  until PX4 returned and landed; the executor must resume and cover the grid.

Link-loss pass: sortie completed, every waypoint reported reached, PX4 flew every waypoint in
MISSION mode at least once, and none after the resume point twice.

``PX4_DIR`` (source tree or build directory) and ``PX4_INSTANCE`` (default 2, to keep clear of
the px4 test suite's instance 0) say which PX4; without ``PX4_DIR`` the bench is skipped with a
message (``make bench`` keeps the section last measured). ``python -m bench.bench_px4 --runs 10
--link-loss 3`` writes its section into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## PX4 SITL: `skygrid fly` on fresh PX4 starts"
VARIANTS = ("link-flew-on", "link-finished", "link-dll-rtl")
#: PX4 custom_mode main/sub modes (px4_custom_mode.h) -> the executor's mode names
_AUTO_SUB = {1: "READY", 2: "TAKEOFF", 3: "HOLD", 4: "MISSION", 5: "RETURN_TO_LAUNCH", 6: "LAND", 8: "FOLLOW_ME",
             9: "PRECISION_LAND"}
_MAIN = {1: "MANUAL", 2: "ALTCTL", 3: "POSCTL", 5: "ACRO", 6: "OFFBOARD", 7: "STABILIZED"}
_LANDED_ON_GROUND = 1
#: a run fails early when PX4 disarmed on the ground (never airborne) this long ago (wall s)
STUCK_S = 30.0
NEAR_M = 10.0  # a waypoint counts as flown when PX4's position came this close (m), at its altitude +-5 m


def px4_mode(custom_mode: int) -> str:
    """PX4's flight mode name from HEARTBEAT.custom_mode (main mode byte 2, sub mode byte 3)."""
    main, sub = (custom_mode >> 16) & 0xFF, (custom_mode >> 24) & 0xFF
    if main == 4:
        return _AUTO_SUB.get(sub, f"AUTO.{sub}")
    return _MAIN.get(main, f"MODE.{main}")


def mavlink_frames(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(sysid, compid, msgid, payload) of each MAVLink 1/2 frame in a UDP datagram. MAVLink 2
    payloads come with their trailing zeros trimmed; callers pad before unpacking."""
    i, n = 0, len(data)
    while i + 8 <= n:
        stx = data[i]
        if stx == 0xFD:
            plen, incompat = data[i + 1], data[i + 2]
            end = i + 10 + plen + 2 + (13 if incompat & 1 else 0)
            if end > n:
                return
            msgid = data[i + 7] | data[i + 8] << 8 | data[i + 9] << 16
            yield data[i + 5], data[i + 6], msgid, data[i + 10:i + 10 + plen]
            i = end
        elif stx == 0xFE:
            plen = data[i + 1]
            end = i + 6 + plen + 2
            if end > n:
                return
            yield data[i + 3], data[i + 4], data[i + 5], data[i + 6:i + 6 + plen]
            i = end
        else:
            i += 1


def _pad(payload: bytes, size: int) -> bytes:
    return payload + b"\0" * (size - len(payload)) if len(payload) < size else payload[:size]


@dataclass
class Truth:
    """What PX4 itself reported (read by the relay, forwarded or not). Track times are wall
    clock (``time.time()``, as the executor's events), other times ``time.monotonic()``; positions degrees WGS-84 and metres above home. PX4 SITL instance i
    has MAVLink system id i + 1 (``sysid``); only its autopilot component (1) is read."""

    sysid: int = 1
    track: list[tuple[float, float, float, float, bool, str]] = field(default_factory=list)  # t, lat, lon, rel_alt, in_air, mode
    mode: str = ""
    armed: bool = False
    landed_state: int = 0
    mission_seq: int = -1
    mission_total: int = 0
    reached_seqs: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    modes_seen: list[str] = field(default_factory=list)
    ever_armed: bool = False
    ever_in_air: bool = False
    disarmed_at: float | None = None  # wall time of the last armed -> disarmed change
    params: dict[str, float] = field(default_factory=dict)  # PARAM_VALUE as sent (int32 bytewise)

    def feed(self, data: bytes) -> None:
        for sysid, compid, msgid, p in mavlink_frames(data):
            if sysid != self.sysid or compid != 1:
                continue
            if msgid == 0:  # HEARTBEAT
                custom_mode, _type, _ap, base_mode = struct.unpack_from("<IBBB", _pad(p, 9))
                self.mode = px4_mode(custom_mode)
                armed = bool(base_mode & 0x80)
                if self.armed and not armed:
                    self.disarmed_at = time.monotonic()
                self.armed = armed
                self.ever_armed |= self.armed
                if not self.modes_seen or self.modes_seen[-1] != self.mode:
                    self.modes_seen.append(self.mode)
            elif msgid == 33:  # GLOBAL_POSITION_INT
                _tb, lat, lon, _alt, rel = struct.unpack_from("<Iiiii", _pad(p, 28))
                in_air = self.armed and self.landed_state != _LANDED_ON_GROUND
                self.ever_in_air |= in_air and rel > 2000
                self.track.append((time.time(), lat / 1e7, lon / 1e7, rel / 1000.0, in_air, self.mode))
            elif msgid == 245:  # EXTENDED_SYS_STATE
                self.landed_state = _pad(p, 2)[1]
            elif msgid == 42:  # MISSION_CURRENT
                self.mission_seq, self.mission_total = struct.unpack_from("<HH", _pad(p, 4))
            elif msgid == 46:  # MISSION_ITEM_REACHED
                self.reached_seqs.append(struct.unpack_from("<H", _pad(p, 2))[0])
            elif msgid == 22:  # PARAM_VALUE
                value, _count, _index, pid, ptype = struct.unpack_from("<fHH16sB", _pad(p, 25))
                name = pid.split(b"\0", 1)[0].decode("ascii", "replace")
                self.params[name] = struct.unpack("<i", struct.pack("<f", value))[0] if ptype == 6 else value
            elif msgid == 253:  # STATUSTEXT
                self.texts.append(_pad(p, 51)[1:51].split(b"\0", 1)[0].decode("utf-8", "replace"))


class UdpRelay:
    """Loopback relay between PX4 (which sends to ``px4_side_port``) and a MAVSDK ``udpin://``
    at ``gcs_port``; :meth:`down` drops both directions until :meth:`up`. Everything PX4 sends
    is fed to :attr:`truth` first."""

    def __init__(self, px4_side_port: int, gcs_port: int, sysid: int = 1) -> None:
        self.truth = Truth(sysid=sysid)
        self.gcs_addr = ("127.0.0.1", gcs_port)
        self.px4_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.px4_sock.bind(("127.0.0.1", px4_side_port))
        self.gcs_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.gcs_sock.bind(("127.0.0.1", 0))
        self.px4_addr: tuple[str, int] | None = None
        self.is_down = False
        self.dropped = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._from_px4, daemon=True, name="relay-px4"),
                         threading.Thread(target=self._from_gcs, daemon=True, name="relay-gcs")]

    def start(self) -> UdpRelay:
        for t in self._threads:
            t.start()
        return self

    def down(self) -> None:
        self.is_down = True

    def up(self) -> None:
        self.is_down = False

    def set_int_param(self, name: str, value: int, timeout_s: float = 10.0) -> bool:
        """PARAM_SET an INT32 PX4 parameter (bytewise encoding, as PX4 expects) from a ground
        station id (255/190), repeated until PX4 echoes it in PARAM_VALUE; False on timeout."""
        from pymavlink.dialects.v20 import common as mav

        m = mav.MAVLink(None, srcSystem=255, srcComponent=190)
        raw = struct.unpack("<f", struct.pack("<i", value))[0]
        msg = mav.MAVLink_param_set_message(self.truth.sysid, 1, name.encode(), raw, mav.MAV_PARAM_TYPE_INT32)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.px4_addr is not None:
                self.px4_sock.sendto(bytes(msg.pack(m)), self.px4_addr)
            time.sleep(0.2)
            if self.truth.params.get(name) == value:
                return True
        return False

    def _from_px4(self) -> None:
        self.px4_sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data, addr = self.px4_sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            self.px4_addr = addr
            try:
                self.truth.feed(data)
            except struct.error:
                pass
            if self.is_down:
                self.dropped += 1
                continue
            try:
                self.gcs_sock.sendto(data, self.gcs_addr)
            except OSError:
                pass  # nobody listening yet

    def _from_gcs(self) -> None:
        self.gcs_sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data, _addr = self.gcs_sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            if self.is_down or self.px4_addr is None:
                self.dropped += 1
                continue
            self.px4_sock.sendto(data, self.px4_addr)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.px4_sock.close()
        self.gcs_sock.close()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunResult:
    """One run: ``ok`` and, when not, ``why`` (first failed check); wall seconds."""

    kind: str
    index: int
    ok: bool
    wall_s: float
    why: str = ""
    detail: str = ""


def _plan(kind: str):
    from tests.conftest import PX4_HOME
    from tests.flight.planfactory import make_plan

    home = PX4_HOME[:2]
    if kind == "two-sortie":
        return make_plan([[(40, 40), (200, 40)]], lines=2, alt=30, home=home, sorties_per_drone=[[1, 1]])
    if kind == "link-flew-on":
        return make_plan([[(40, 40)]], lines=10, size=160, alt=30, home=home)
    if kind == "link-finished":
        return make_plan([[(40, 40)]], lines=2, alt=30, home=home)
    if kind == "link-dll-rtl":
        return make_plan([[(40, 40)]], lines=4, alt=30, home=home)
    raise ValueError(f"unknown bench_px4 run kind {kind!r}: use two-sortie or one of {', '.join(VARIANTS)}")


def _px4_params(kind: str) -> dict[str, int]:
    """Parameters set once the executor is connected (NAV_DLL_ACT > 0 at boot would keep PX4
    from saying "Ready for takeoff": it refuses to arm without a ground-station link)."""
    if kind == "link-dll-rtl":
        return {"COM_DL_LOSS_T": 30, "NAV_DLL_ACT": 2}
    return {}


class Outage:
    """Drops the relay when ``begin`` is called, restores it once the executor reported
    ``link_lost`` and ``ready(truth)`` holds, or after ``timeout_s`` wall seconds."""

    def __init__(self, relay: UdpRelay, kinds: Callable[[], list[str]], ready: Callable[[Truth], bool],
                 timeout_s: float = 90.0) -> None:
        self.relay, self.kinds, self.ready, self.timeout_s = relay, kinds, ready, timeout_s
        self.started = threading.Event()
        self.restored_by_condition: bool | None = None
        self.seq_at_drop = -1
        self.down_s = 0.0

    def begin(self) -> None:
        if self.started.is_set():
            return
        self.started.set()
        self.seq_at_drop = self.relay.truth.mission_seq
        self.relay.down()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        t0 = time.monotonic()
        ok = False
        while time.monotonic() - t0 < self.timeout_s:
            if "link_lost" in self.kinds() and self.ready(self.relay.truth):
                ok = True
                break
            time.sleep(0.02)
        self.restored_by_condition = ok
        self.down_s = time.monotonic() - t0
        self.relay.up()


def fly_once(kind: str, index: int, px4_dir: Path, instance: int, speed: float, run_timeout_s: float,
             log_root: Path) -> RunResult:
    """Start a fresh PX4, fly ``kind`` through the relay, judge, stop PX4. Never raises for a
    failed flight: the result says why."""
    from flight.executor import FlightConfig
    from flight.fleet import Fleet
    from simulators.px4 import Px4Sitl, px4_ports
    from tests.conftest import PX4_HOME
    from tests.flight.simharness import Recorder, visits

    plan = _plan(kind)
    t0 = time.monotonic()
    sitl = Px4Sitl(px4_dir, instance=instance, home_lat=PX4_HOME[0], home_lon=PX4_HOME[1], home_alt=PX4_HOME[2],
                   speed_factor=speed)
    gcs_port = _free_udp_port()
    relay = UdpRelay(px4_ports(instance).api_remote, gcs_port, sysid=instance + 1).start()
    rec = Recorder()
    outage: Outage | None = None
    log_dir = log_root / f"{kind}-{index}"
    try:
        try:
            sitl.start()
        except RuntimeError as e:
            return RunResult(kind, index, False, time.monotonic() - t0, "PX4 did not start", str(e).splitlines()[0])
        truth = relay.truth
        if kind == "link-flew-on":
            outage = Outage(relay, rec.kinds, lambda tr: tr.mission_seq >= outage.seq_at_drop + 4
                            and tr.mode == "MISSION")
        elif kind == "link-finished":
            outage = Outage(relay, rec.kinds, lambda tr: "RETURN_TO_LAUNCH" in tr.modes_seen and not tr.armed)
        elif kind == "link-dll-rtl":
            outage = Outage(relay, rec.kinds, lambda tr: "RETURN_TO_LAUNCH" in tr.modes_seen[-3:] and not tr.armed)
        drop_at = 0 if kind == "link-finished" else 2

        params_ok: list[bool] = []
        params_started = threading.Event()

        def on_event(e) -> None:
            if e.kind == "connected" and _px4_params(kind) and not params_started.is_set():
                params_started.set()  # from a thread: listeners run on the executor's event loop

                def set_params() -> None:
                    params_ok.append(all(relay.set_int_param(k, v) for k, v in _px4_params(kind).items()))

                threading.Thread(target=set_params, daemon=True).start()
            if outage is not None and e.kind == "item_reached" and e.data.get("item") == drop_at:
                outage.begin()

        rec.hooks.append(on_event)
        fleet = Fleet(plan, [f"udpin://127.0.0.1:{gcs_port}"], listeners=[rec], log_dir=log_dir,
                      config=FlightConfig(telemetry_hz=5))

        async def go():
            task = asyncio.ensure_future(fleet.run())
            t_run = time.monotonic()
            while not task.done():
                await asyncio.wait([task], timeout=1.0)
                stuck = (truth.disarmed_at is not None and not truth.armed and not truth.ever_in_air
                         and time.monotonic() - truth.disarmed_at > STUCK_S)
                if stuck or time.monotonic() - t_run > run_timeout_s:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    raise TimeoutError("stuck" if stuck else "timeout")
            return task.result()

        try:
            res = asyncio.run(go())
        except TimeoutError as e:
            last = rec.events[-1] if rec.events else None
            if str(e) == "stuck":
                return RunResult(kind, index, False, time.monotonic() - t0,
                                 f"PX4 disarmed on the ground without taking off; executor still waiting {STUCK_S:g} s "
                                 "later", f"last event {last.kind if last else None}; PX4 modes "
                                 f"{truth.modes_seen[-8:]}; texts {[t.strip() for t in truth.texts[-6:]]}")
            last = rec.events[-1] if rec.events else None
            return RunResult(kind, index, False, time.monotonic() - t0, f"no result within {run_timeout_s:.0f} s",
                             f"last event {last.kind if last else None}: {last.message if last else ''}; "
                             f"PX4 now {truth.mode}, armed {truth.armed}, ever armed {truth.ever_armed}; "
                             f"PX4 modes {truth.modes_seen[-8:]}; texts {[t.strip() for t in truth.texts[-6:]]}")
        wall = time.monotonic() - t0
        d0 = res["d0"]
        kinds = rec.kinds()
        tail = f"events {kinds[-6:]}; PX4 modes {truth.modes_seen[-8:]}; texts {[t.strip() for t in truth.texts[-5:]]}"
        if d0.status != "done" or d0.completed != [s.id for s in plan.sorties]:
            return RunResult(kind, index, False, wall, f"drone {d0.status}, completed {d0.completed}",
                             f"{d0.error or ''}; {tail}")
        for s in plan.sorties:
            got = sorted({i for sid, i in rec.reached() if sid.startswith(s.id)})
            if got != list(range(len(s.waypoints))):
                return RunResult(kind, index, False, wall, f"{s.id}: reached {got}", tail)
        if params_ok and not params_ok[0]:
            return RunResult(kind, index, False, wall, f"PX4 did not confirm {_px4_params(kind)}", tail)
        if outage is not None and not outage.restored_by_condition:
            return RunResult(kind, index, False, wall, "PX4 never got to the outage's end condition", tail)
        resume = len(plan.sorties[0].waypoints)
        if kind == "link-flew-on":
            resume = drop_at
        elif kind == "link-dll-rtl":
            planned = [e.data.get("from_index") for e in rec.events if e.kind == "resume_planned"]
            if not planned:
                return RunResult(kind, index, False, wall, "no resume_planned after PX4's data-link RTL", tail)
            resume = planned[0]
        elif kind == "two-sortie":
            resume = -1  # exactly once everywhere
        elif kind == "link-finished" and "resume_planned" in kinds:
            return RunResult(kind, index, False, wall, "resume planned for a mission PX4 had finished", tail)
        for s in plan.sorties:
            # only this sortie's part of PX4's track: the next sortie's transit may pass a waypoint of this one
            times = [e.wall_time for e in rec.events if e.sortie_id == s.id]
            track = [x for x in truth.track if times and times[0] <= x[0] <= times[-1]]
            for i, w in enumerate(s.waypoints):
                n = visits(track, w.lat, w.lon, w.rel_alt_m, near_m=NEAR_M, modes=frozenset({"MISSION"}))
                if n < 1:
                    return RunResult(kind, index, False, wall, f"{s.id} waypoint {i} never flown by PX4", tail)
                if i > resume and n > 1:
                    return RunResult(kind, index, False, wall,
                                     f"{s.id} waypoint {i} after the resume point {resume} flown {n} times", tail)
        down = f", link down {outage.down_s:.1f} s ({relay.dropped} datagrams dropped)" if outage else ""
        return RunResult(kind, index, True, wall, detail=f"{len(truth.track)} PX4 positions{down}")
    except Exception as e:  # noqa: BLE001 - a bench run reports any crash as that run's failure
        return RunResult(kind, index, False, time.monotonic() - t0, f"{type(e).__name__}: {e}"[:200])
    finally:
        sitl.stop()
        relay.stop()


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def render(results: list[RunResult], speed: float, started: dt.datetime, planned: int | None = None) -> str:
    """The markdown section: per kind passes/N and wall times, then every failure with its cause."""
    head = _git("rev-parse", "--short", "HEAD")
    flight = _git("log", "-1", "--format=%h", "--", "flight/executor.py", "flight/link.py", "flight/fleet.py")
    lines = [
        SECTION, "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC by `python -m bench.bench_px4` on commit {head} (executor, link and fleet "
        f"last changed in {flight}), PX4 v1.16.0 SITL SIH quadrotor at {speed:g}x, a fresh PX4 start (parameters wiped) per run, "
        "`skygrid fly`'s executor (`flight.fleet.Fleet`, as tests/flight/test_fly_px4.py) through a loopback UDP relay "
        "that also reads PX4's own position/mode for the checks (a waypoint counts as flown by PX4 within "
        f"{NEAR_M:g} m in MISSION mode during its own sortie). Shared 2-core machine under CI load."
        + (f" Partial: {len(results)} of {planned} planned runs so far." if planned and planned > len(results) else ""),
        "",
        "| run kind | passed | wall per run (median / max, s) |", "|---|---|---|",
    ]
    kinds = [k for k in ("two-sortie", *VARIANTS) if any(r.kind == k for r in results)]
    for k in kinds:
        rs = [r for r in results if r.kind == k]
        walls = [r.wall_s for r in rs]
        lines.append(f"| {k} | {sum(r.ok for r in rs)} / {len(rs)} | {statistics.median(walls):.0f} / {max(walls):.0f} |")
    failed = [r for r in results if not r.ok]
    if failed:
        lines += ["", "Failures (run, first failed check, what PX4 and the executor last said):", ""]
        lines += [f"- {r.kind} #{r.index}: {r.why}. {r.detail}".replace("|", "/") for r in failed]
    return "\n".join(lines) + "\n"


def run() -> str:
    """For ``make bench`` (bench/run_all.py): skipped with a message without PX4_DIR (keeping
    the section last measured); with it, a short run (2 two-sortie, 1 per link-loss variant)."""
    from bench.sections import read_section

    if not os.environ.get("PX4_DIR"):
        print("bench_px4: skipped, PX4_DIR is not set (no PX4 SITL build); keeping the section last measured")
        return read_section(SECTION) or f"{SECTION}\n\nNot measured: PX4_DIR was not set (no PX4 SITL build).\n"
    started = dt.datetime.now(dt.UTC)
    return render(measure(runs=2, link_loss=1), 10.0, started)


def measure(runs: int, link_loss: int, variants: tuple[str, ...] = VARIANTS, speed: float = 10.0,
            instance: int | None = None, run_timeout_s: float = 300.0,
            on_result: Callable[[list[RunResult], int], None] | None = None) -> list[RunResult]:
    """Fly ``runs`` two-sortie runs and ``link_loss`` runs of each variant (two-sortie and the
    variants interleaved, so a run cut short still has some of each); ``on_result(results,
    planned)`` after every run."""
    from simulators.px4 import px4_dir_from_env, px4_instance_from_env

    px4_dir = px4_dir_from_env()
    instance = px4_instance_from_env(default=2) if instance is None else instance
    queues = [[("two-sortie", i) for i in range(runs)]] + [[(v, i) for i in range(link_loss)] for v in variants]
    order = []
    while any(queues):
        for q in queues:
            if q:
                order.append(q.pop(0))
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="bench_px4_") as logs:
        for kind, i in order:
            results.append(fly_once(kind, i, px4_dir, instance, speed, run_timeout_s, Path(logs)))
            if on_result is not None:
                on_result(results, len(order))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_px4", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10, help="two-sortie runs (default 10)")
    p.add_argument("--link-loss", type=int, default=3, help="runs of each link-loss variant (default 3)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"link-loss variants (default {','.join(VARIANTS)})")
    p.add_argument("--speed", type=float, default=10.0, help="PX4 sim speed factor (default 10)")
    p.add_argument("--instance", type=int, default=None, help="PX4 instance (default $PX4_INSTANCE or 2)")
    p.add_argument("--run-timeout", type=float, default=300.0, help="wall seconds per run before it counts as failed")
    p.add_argument("--no-docs", action="store_true", help="print the section, leave docs/benchmarks.md alone")
    args = p.parse_args(argv)
    if not os.environ.get("PX4_DIR"):
        print("bench_px4: PX4_DIR is not set (the PX4-Autopilot source tree or its build/px4_sitl_default); "
              "nothing measured", file=sys.stderr)
        return 2
    variants = tuple(v for v in args.variants.split(",") if v)
    for v in variants:
        if v not in VARIANTS:
            p.error(f"--variants: unknown {v!r} (known: {', '.join(VARIANTS)})")

    from bench.sections import write_section

    started = dt.datetime.now(dt.UTC)

    def show(results: list[RunResult], planned: int) -> None:
        r = results[-1]
        print(f"{r.kind} #{r.index}: {'ok' if r.ok else 'FAILED'} {r.wall_s:.0f} s {r.why} {r.detail}", flush=True)
        if not args.no_docs:  # after every run: a bench stopped early still leaves its figures
            write_section(render(results, args.speed, started, planned))

    results = measure(args.runs, args.link_loss, variants, args.speed, args.instance, args.run_timeout, show)
    section = render(results, args.speed, started)
    print(section)
    if not args.no_docs:
        write_section(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
