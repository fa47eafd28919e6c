"""The live hub: one per API process. It tails the database and fans events out.

Ticket events: every process tails the ``live_events`` outbox by id. A local commit calls
``notify()`` which wakes the tailer at once; commits made by *other* processes sharing the
database are picked up by the periodic poll (``poll_s``, seconds). So one process gets
near-zero latency and N processes on one SQLite file or PostgreSQL all see every event.

Drone events (telemetry, flight events, commands) are published locally the moment they
arrive and appended to ``live_drone_feed``; other processes tail that table the same way
(rows from their own origin are skipped). The hub keeps the last position and a short
track per drone in memory for the map's first paint.

Subscribers get a bounded queue; a subscriber that falls ``queue_max`` events behind is
cut off (``lagged``) and reconnects with its last id to replay from the outbox, so a slow
browser never grows the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from . import store
from .events import DRONE_PREFIX, EventFilter, LiveEvent, Utf8Text, encode_json

log = logging.getLogger("dispatch.live")

GAP_WAIT_S = 5.0  # how long a missing outbox id is awaited (a transaction committing late)
#: Shortest time between two outbox reads, seconds. Under a burst (500 incidents/s arrive
#: as hundreds of small commits a second) every read wakes every subscriber's sender and
#: costs one WebSocket frame per client; reading at most every 10 ms caps that at 100
#: frames/s per client whatever the ingest rate, for at most 10 ms of added latency. An
#: idle hub still reads at once on the first notify.
COALESCE_S = 0.010


class Chunk:
    """Events published together that one filter let through; shared by every subscriber
    with an equal filter, so the JSON-array frame is built (and UTF-8 encoded) once for all
    of them. ``min_id``: the smallest outbox id in it (None: drone events only), so a
    subscriber decides "all fresh" with one comparison instead of one per event."""

    __slots__ = ("events", "min_id", "_frame")

    def __init__(self, events: list[LiveEvent]) -> None:
        self.events = events
        ids = [ev.id for ev in events if ev.id is not None]
        self.min_id: int | None = min(ids) if ids else None
        self._frame: Utf8Text | None = None

    @property
    def frame(self) -> Utf8Text:
        if self._frame is None:
            self._frame = Utf8Text("[" + ",".join(ev.encoded for ev in self.events) + "]")
        return self._frame


#: Queued to every subscriber every ``LiveHub.tick_s`` seconds: its sender then sends a
#: keep-alive if the stream has been idle long enough. One timer for all streams instead of
#: a timeout armed and cancelled around every queue read (100 clients x every fan-out).
TICK = Chunk([])


@dataclass(eq=False)
class Subscriber:
    """One connected stream.

    ``skip_upto``: outbox ids up to this were delivered by the replay (or predate a fresh
    connection), so the same ids arriving live are skipped. A gap filled by a late commit
    (id above it) still gets through.
    """

    filter: EventFilter
    skip_upto: int
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue())
    queue_max: int = 5000
    lagged: bool = False

    pending: int = 0  # events queued, not yet taken by the sender

    def offer(self, chunk: Chunk) -> None:
        """Queue a chunk (already filtered for this subscriber's filter)."""
        if self.lagged:
            return
        if self.pending + len(chunk.events) > self.queue_max:
            self.lagged = True
            self.queue.put_nowait(None)  # wake the sender so it closes the stream
            return
        self.pending += len(chunk.events)
        self.queue.put_nowait(chunk)

    def fresh(self, ev: LiveEvent) -> bool:
        """True unless this ticket event was already delivered by the replay."""
        return ev.id is None or ev.id > self.skip_upto

    def all_fresh(self, chunk: Chunk) -> bool:
        """True when no event of ``chunk`` was delivered by the replay (the usual case)."""
        return chunk.min_id is None or chunk.min_id > self.skip_upto


class DroneBoard:
    """Last telemetry, the track (thinned to steps of >= ~2 m, at most ``track_len`` points)
    and recent flight events per drone (memory only)."""

    #: a pose closer than this to the track's last point (degrees, ~2 m) is not added: a
    #: hovering drone does not push its route out of the kept track
    TRACK_MIN_STEP_DEG = 2e-5

    def __init__(self, track_len: int = 6000, events_len: int = 20, max_drones: int = 500,
                 stale_s: float = 900.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.track_len, self.events_len = track_len, events_len
        self.max_drones, self.stale_s, self.clock = max_drones, stale_s, clock
        self.last: dict[str, dict[str, Any]] = {}
        self.tracks: dict[str, deque] = {}
        self.events: dict[str, deque] = {}
        self.seen: dict[str, float] = {}  # drone -> clock() of its latest record (this server's time)
        self.refused = 0  # records of new drones dropped because the board was full

    def expire(self) -> int:
        """Drop drones without a record for ``stale_s`` seconds; returns how many."""
        cutoff = self.clock() - self.stale_s
        gone = [d for d, t in self.seen.items() if t < cutoff]
        for d in gone:
            for table in (self.seen, self.last, self.tracks, self.events):
                table.pop(d, None)
        return len(gone)

    def room_for(self, drones: set[str]) -> int:
        """How many of ``drones`` are new and would not fit on the board (after expiry)."""
        self.expire()
        new = len(drones - self.seen.keys())
        return max(0, len(self.seen) + new - self.max_drones)

    def apply(self, ev: LiveEvent) -> None:
        """Take one drone event into the board; a record that is not a well-formed drone
        record (a stored row from elsewhere) is skipped and logged, so the snapshot every
        page starts from always encodes."""
        try:
            self._apply(ev)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            log.warning("drone board: %s record skipped (%s: %s)", ev.topic, type(e).__name__, e)

    def _apply(self, ev: LiveEvent) -> None:
        d = ev.data
        if not isinstance(d, dict):
            return
        drone = d.get("drone_id")
        if not drone or not isinstance(drone, str) or "unencodable" in d:
            return
        if drone not in self.seen and len(self.seen) >= self.max_drones:
            self.expire()
            if len(self.seen) >= self.max_drones:
                self.refused += 1  # the API refuses such posts; this guards records from the feed
                return
        if ev.topic == "drone.telemetry":
            prev = self.last.get(drone)
            if prev is not None and prev.get("wall_time", 0) > d.get("wall_time", 0):
                return  # an older record arriving late (another process)
            point = [round(float(d["lat"]), 7), round(float(d["lon"]), 7)]
            if not (math.isfinite(point[0]) and math.isfinite(point[1])):
                raise ValueError("position not finite")
            self.last[drone] = d
            self.seen[drone] = self.clock()
            track = self.tracks.setdefault(drone, deque(maxlen=self.track_len))
            if not track or max(abs(track[-1][0] - point[0]), abs(track[-1][1] - point[1])) >= self.TRACK_MIN_STEP_DEG:
                track.append(point)  # the whole sortie's route (6000 points of >= 2 m), for the room's map
        elif ev.topic in ("drone.event", "drone.command"):
            self.events.setdefault(drone, deque(maxlen=self.events_len)).append({"topic": ev.topic, **d})
            self.seen[drone] = self.clock()

    def snapshot(self) -> dict[str, Any]:
        """Per drone: last telemetry, track, recent events. A drone whose entry does not
        encode as standard JSON is left out (and logged): the snapshot is what every page
        starts from (``/api/v1/live/drones``, the streams' ``hello``), one bad record must
        not break it for everyone."""
        out: dict[str, Any] = {}
        self.expire()
        for drone in sorted(set(self.last) | set(self.events)):
            entry = {"telemetry": self.last.get(drone), "track": list(self.tracks.get(drone, ())),
                     "events": list(self.events.get(drone, ()))}
            try:
                encode_json(entry)
            except (ValueError, TypeError, RecursionError) as e:
                log.warning("drone board: drone %r left out of the snapshot (%s)", drone[:64], type(e).__name__)
                continue
            out[drone] = entry
        return out


class LiveHub:
    """Tails the outbox and the drone feed, fans events out to the local subscribers."""

    def __init__(self, engine_getter: Callable[[], Engine], *, poll_s: float = 1.0, queue_max: int = 5000,
                 coalesce_s: float = COALESCE_S, tick_s: float = 5.0, replay_max: int = 10_000,
                 retention_s: float = 0.0, max_drones: int = 500, drone_stale_s: float = 900.0,
                 auth_recheck_s: float = 10.0) -> None:
        self._engine_getter = engine_getter
        self.auth_recheck_s = auth_recheck_s  # open streams re-check their token this often
        self.replay_max = replay_max  # outbox events a reconnecting client may replay
        self.retention_s = retention_s  # outbox rows older than this are pruned (0: kept)
        self.poll_s = poll_s
        self.coalesce_s = coalesce_s
        self.tick_s = tick_s
        self._ticker: asyncio.Task | None = None
        # equal filters share one object (and one filtered chunk per publish): filter -> (itself, users)
        self._filters: dict[EventFilter, list] = {}
        self._last_pump = 0.0
        self.queue_max = queue_max
        self.origin = uuid.uuid4().hex
        self.subscribers: set[Subscriber] = set()
        self.drones = DroneBoard(max_drones=max_drones, stale_s=drone_stale_s)
        self.cursor = 0  # last outbox id fanned out
        self.feed_cursor = 0
        self._missing: dict[int, float] = {}  # outbox id -> monotonic time first missed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._last_prune = 0.0
        self.published = 0

    @property
    def engine(self) -> Engine:
        return self._engine_getter()

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await asyncio.to_thread(store.create_tables, self.engine)
        self.cursor = await asyncio.to_thread(store.outbox_head, self.engine)
        self.feed_cursor = await asyncio.to_thread(store.feed_head, self.engine)
        self._task = asyncio.create_task(self._run(), name="live-hub-tailer")
        self._ticker = asyncio.create_task(self._tick(), name="live-hub-keepalive")

    async def stop(self) -> None:
        for task in (self._task, self._ticker):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for sub in list(self.subscribers):
            sub.lagged = True
            sub.queue.put_nowait(None)

    def notify(self) -> None:
        """Wake the tailer (safe from any thread; a no-op before start)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    # -- subscribers ---------------------------------------------------------------------
    def subscribe(self, flt: EventFilter, after: int | None) -> Subscriber:
        shared = self._filters.setdefault(flt, [flt, 0])
        shared[1] += 1
        sub = Subscriber(filter=shared[0], skip_upto=self.cursor if after is None else after,
                         queue_max=self.queue_max)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub not in self.subscribers:
            return
        self.subscribers.discard(sub)
        shared = self._filters.get(sub.filter)
        if shared is not None:
            shared[1] -= 1
            if shared[1] <= 0:
                del self._filters[sub.filter]

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            for sub in list(self.subscribers):
                if not sub.lagged:
                    sub.queue.put_nowait(TICK)

    async def replay_pages(self, sub: Subscriber, page: int = 500) -> AsyncIterator[list[LiveEvent]]:
        """Outbox events after ``sub.skip_upto`` matching its filter, one page (``page``
        rows read) at a time, advancing ``skip_upto``: memory stays one page whatever the
        table holds, and the first events go out after one read. How far back a client
        may start is checked before (:meth:`replay_refusal`)."""
        while True:
            evs = await asyncio.to_thread(store.outbox_after, self.engine, sub.skip_upto, page)
            if evs:
                sub.skip_upto = evs[-1].id
            matched = [ev for ev in evs if sub.filter.matches(ev)]
            if matched:
                yield matched
            if len(evs) < page:
                return

    async def replay_refusal(self, after: int | None) -> dict[str, Any] | None:
        """None when a replay from ``after`` is allowed, else the ``resync`` event's data:
        the client asked for more than ``replay_max`` events back, or for events the
        retention already deleted. It then gets live events from now on and reloads the
        rest from the REST API (``GET /api/v1/tickets``)."""
        if after is None:
            return None
        head = max(self.cursor, after)
        if head - after > self.replay_max:
            reason = "too_far_back"
            detail = (f"after={after} is {head - after} events behind the head ({head}); at most "
                      f"{self.replay_max} are replayed: reload the tickets from GET /api/v1/tickets")
        else:
            oldest = await asyncio.to_thread(store.outbox_oldest, self.engine)
            if oldest == 0:  # everything pruned: nothing after the head is missing
                oldest = self.cursor + 1
            if after >= oldest - 1:
                return None
            reason = "pruned"
            detail = (f"events after {after} up to {oldest - 1} were deleted by the retention "
                      f"({self.retention_s:.0f} s): reload the tickets from GET /api/v1/tickets")
        return {"reason": reason, "detail": detail, "last_id": self.cursor, "max_replay": self.replay_max}

    # -- publishing ----------------------------------------------------------------------
    def publish(self, ev: LiveEvent) -> None:
        """Fan one event out to the local subscribers (event-loop thread only)."""
        self.publish_many([ev])

    def publish_many(self, evs: list[LiveEvent]) -> None:
        """Fan events out: filtered once per distinct filter, one queue entry per subscriber."""
        if not evs:
            return
        for ev in evs:
            if ev.topic.startswith(DRONE_PREFIX):
                self.drones.apply(ev)
        self.published += len(evs)
        chunks: dict[int, Chunk | None] = {}  # by id(filter): equal filters are one object (subscribe)
        for sub in self.subscribers:
            flt = sub.filter
            key = id(flt)
            if key not in chunks:
                matched = [ev for ev in evs if flt.matches(ev)]
                chunks[key] = Chunk(matched) if matched else None
            chunk = chunks[key]
            if chunk is not None:
                sub.offer(chunk)

    async def publish_drone(self, topic: str, events: list[LiveEvent]) -> None:
        """Publish drone events locally now, then store them for the other processes."""
        self.publish_many(events)
        await asyncio.to_thread(store.feed_append, self.engine, self.origin, topic, [e.to_dict() for e in events])

    # -- tailing -------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wake is not None
        last_feed = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
            early = self._last_pump + self.coalesce_s - time.monotonic()
            if early > 0:  # read again too soon: let the burst's next commits join this read
                await asyncio.sleep(early)
            self._wake.clear()
            self._last_pump = now = time.monotonic()
            # the drone feed only carries other processes' drone events (local ones are
            # published on arrival) and no one notifies us of those: read it on the poll
            # cadence, not on every local ticket commit
            feed = now - last_feed >= self.poll_s * 0.9
            if feed:
                last_feed = now
            try:
                await self.pump(feed=feed)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a DB hiccup must not kill the streams
                log.exception("live tailer: reading the outbox failed; retrying")
                await asyncio.sleep(min(self.poll_s, 1.0))

    async def pump(self, feed: bool = True) -> int:
        """Read and publish everything new (outbox, and the drone feed when ``feed``);
        returns events published."""
        engine = self.engine
        n = 0
        while True:
            evs, late, feed_rows = await asyncio.to_thread(self._read, engine, feed)
            for ev in late:
                self._missing.pop(ev.id, None)
            self.publish_many(late)
            for ev in evs:
                self._note_gap(ev.id)
                self.cursor = max(self.cursor, ev.id)
            self.publish_many(evs)
            remote: list[LiveEvent] = []
            for row_id, origin, items in feed_rows:
                self.feed_cursor = row_id
                if origin == self.origin:
                    continue
                remote += [LiveEvent.make(**{k: item.get(k) for k in ("id", "topic", "at", "data", "grid_id", "tier",
                                                                       "class_name", "priority")}) for item in items]
            self.publish_many(remote)
            n += len(evs) + len(late) + len(feed_rows)
            if len(evs) < 1000 and len(feed_rows) < 500:
                break
        now = time.monotonic()
        if now - self._last_prune > 60.0:
            self._last_prune = now
            await asyncio.to_thread(store.feed_prune, engine)
            if self.retention_s > 0:
                cutoff = datetime.now(UTC) - timedelta(seconds=self.retention_s)
                pruned = await asyncio.to_thread(store.outbox_prune, engine, cutoff)
                if pruned:
                    log.info("live outbox: %d events older than %.0f s pruned", pruned, self.retention_s)
                pruned = await asyncio.to_thread(store.commands_prune, engine, cutoff)
                if pruned:
                    log.info("drone commands: %d older than %.0f s pruned", pruned, self.retention_s)
        return n

    def _read(self, engine: Engine, feed: bool = True) -> tuple[list[LiveEvent], list[LiveEvent], list]:
        evs = store.outbox_after(engine, self.cursor, 1000)
        now = time.monotonic()
        for mid, since in list(self._missing.items()):
            if now - since > GAP_WAIT_S:
                del self._missing[mid]
        late = store.outbox_ids(engine, sorted(self._missing)) if self._missing else []
        return evs, late, store.feed_after(engine, self.feed_cursor, 500) if feed else []

    def _note_gap(self, new_id: int) -> None:
        """Remember ids skipped over (a concurrent transaction may commit them later)."""
        if new_id > self.cursor + 1 and self.cursor > 0 and new_id - self.cursor < 1000:
            now = time.monotonic()
            for mid in range(self.cursor + 1, new_id):
                self._missing.setdefault(mid, now)
