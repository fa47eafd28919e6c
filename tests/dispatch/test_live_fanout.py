"""Live fan-out costs that the alerts benchmark depends on: frames UTF-8 encoded once for
every client, bursts of commits coalesced into few outbox reads, the drone feed read on
the poll cadence, shared chunks handed out as they are, and a batch ingest reaching a
WebSocket client as ``ticket.created`` events (the app's real lifespan and hub)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from fastapi.testclient import TestClient

import dispatch.live as live
from dispatch.core.db import make_engine, write_transaction
from dispatch.core.db import make_sessionmaker as make_sm
from dispatch.live.api import _batches
from dispatch.live.events import EventFilter, LiveEvent, Utf8Text
from dispatch.live.hub import Chunk, LiveHub
from dispatch.outbox import emit

from .conftest import auth, make_env


def _ev(i: int | None, topic: str = "ticket.created") -> LiveEvent:
    return LiveEvent.make(id=i, topic=topic, at="2026-11-24T00:00:00Z", data={"id": i, "name": "秸秆焚烧"},
                          grid_id="g1", tier="village", class_name="straw_burning", priority=1)


def test_frames_are_utf8_encoded_once_and_stay_plain_strings():
    ev = _ev(1)
    assert isinstance(ev.encoded, Utf8Text) and json.loads(ev.encoded)["data"]["name"] == "秸秆焚烧"
    first = ev.encoded.encode()
    assert first == str.encode(ev.encoded, "utf-8") and ev.encoded.encode("utf-8") is first
    assert ev.encoded.encode("UTF8") is first  # spelled otherwise, same codec: the cached bytes
    assert ev.encoded.encode("utf-16") == str.encode(ev.encoded, "utf-16")  # other codecs: computed
    with pytest.raises(UnicodeEncodeError):
        ev.encoded.encode("ascii")
    chunk = Chunk([_ev(5), _ev(3), _ev(None, "drone.telemetry")])
    assert chunk.min_id == 3 and chunk.frame is chunk.frame and isinstance(chunk.frame, Utf8Text)
    assert [e["id"] for e in json.loads(chunk.frame)] == [5, 3, None]
    assert Chunk([_ev(None, "drone.event")]).min_id is None


def test_batches_hand_out_the_shared_chunk_and_filter_what_the_replay_sent():
    async def run() -> None:
        hub = LiveHub(lambda: None)  # type: ignore[arg-type, return-value]

        async def no_replay(sub):  # noqa: ANN001, ANN202 - nothing stored
            return
            yield

        hub.replay_pages = no_replay  # type: ignore[method-assign]
        sub_a = hub.subscribe(EventFilter(), after=0)
        sub_b = hub.subscribe(EventFilter(), after=2)  # ids up to 2 came with its replay
        hub.publish_many([_ev(1), _ev(2), _ev(3)])
        it_a, it_b = _batches(hub, sub_a), _batches(hub, sub_b)
        events_a, frame_a = await it_a.__anext__()
        events_b, frame_b = await it_b.__anext__()
        assert [e.id for e in events_a] == [1, 2, 3] and frame_a is not None
        assert [e.id for e in events_b] == [3] and frame_b is None  # its own frame, built by the sender
        hub.publish_many([_ev(4)])
        _, frame_a2 = await it_a.__anext__()
        _, frame_b2 = await it_b.__anext__()
        assert frame_a2 is frame_b2  # one frame object (and one UTF-8 encoding) for both
        assert sub_a.pending == sub_b.pending == 0

    asyncio.run(run())


def test_idle_streams_get_keepalives_from_the_hub_tick_busy_ones_do_not(monkeypatch):
    """The keep-alive decision runs on an injected clock: the test ticks the hub (TICK into
    every queue, as ``LiveHub._tick`` does) and advances the clock 62.5 ms per step (exact in
binary floating point: 4 steps are exactly ``KEEPALIVE_S``), so a
    loaded machine cannot stretch a gap past ``KEEPALIVE_S``. The real ticker is checked
    last: it puts a TICK in every live subscriber's queue."""
    import types

    import dispatch.live.api as live_api
    from dispatch.live.hub import TICK

    now = {"t": 1000.0}
    monkeypatch.setattr(live_api, "KEEPALIVE_S", 0.25)
    monkeypatch.setattr(live_api, "time", types.SimpleNamespace(monotonic=lambda: now["t"]))

    async def run() -> None:
        hub = LiveHub(lambda: None, tick_s=0.05)  # type: ignore[arg-type, return-value]

        async def no_replay(sub):  # noqa: ANN001, ANN202
            return
            yield

        hub.replay_pages = no_replay  # type: ignore[method-assign]
        idle = hub.subscribe(EventFilter(), after=0)
        busy = hub.subscribe(EventFilter(), after=0)
        assert idle.filter is busy.filter  # equal filters share one object (one chunk per publish)
        got: dict[str, list] = {"idle": [], "busy": []}

        async def consume(name: str, sub) -> None:  # noqa: ANN001
            async for events, _frame in _batches(hub, sub):
                if events is not None:  # None: an idle tick (the sender re-checks its token)
                    got[name].append([e.id for e in events])

        async def settle() -> None:  # let both consumers take everything queued
            for _ in range(1000):
                await asyncio.sleep(0)
                if idle.queue.empty() and busy.queue.empty():
                    await asyncio.sleep(0)
                    return
            raise AssertionError("consumers did not drain their queues")

        tasks = [asyncio.create_task(consume("idle", idle)), asyncio.create_task(consume("busy", busy))]
        await settle()
        hub.publish_many([_ev(1)])
        await settle()
        for k in range(2, 22):  # 1.25 s of clock: the busy stream gets an event every step, both get ticks
            now["t"] += 0.0625
            busy.offer(Chunk([_ev(k)]))
            for sub in (idle, busy):
                sub.queue.put_nowait(TICK)
            await settle()
        assert got["busy"] == [[k] for k in range(1, 22)]  # no keep-alive between events
        assert got["idle"] == [[1]] + [[]] * 5  # a keep-alive every 0.25 s of idleness (4 ticks)
        for t in tasks:
            t.cancel()
        hub._ticker = asyncio.create_task(hub._tick())
        try:
            deadline = time.monotonic() + 30  # hang guard only
            while (idle.queue.empty() or busy.queue.empty()) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert idle.queue.get_nowait() is TICK and busy.queue.get_nowait() is TICK
        finally:
            hub._ticker.cancel()
        hub.unsubscribe(idle)
        assert list(hub._filters.values())[0][1] == 1
        hub.unsubscribe(busy)
        hub.unsubscribe(busy)  # twice: harmless
        assert hub._filters == {}

    asyncio.run(run())


@pytest.mark.timeout(60)
def test_a_burst_of_commits_is_read_in_few_outbox_reads_and_the_feed_on_the_poll_cadence(tmp_path, template_db):
    import shutil

    db = tmp_path / "d.db"
    shutil.copy(template_db, db)
    engine = make_engine(f"sqlite:///{db}")
    sm = make_sm(engine)

    async def run() -> None:
        hub = LiveHub(lambda: engine, poll_s=0.3, coalesce_s=0.05)
        reads: list[bool] = []
        read = hub._read

        def counting_read(eng, feed=True):  # noqa: ANN001, ANN202
            reads.append(feed)
            return read(eng, feed)

        hub._read = counting_read  # type: ignore[method-assign]
        await hub.start()
        sub = hub.subscribe(EventFilter(), after=None)
        try:
            await asyncio.sleep(0.35)  # one poll: reads the feed
            reads.clear()
            t0 = time.monotonic()
            for k in range(40):  # 40 commits, each notifying, within ~the coalescing window
                await asyncio.to_thread(_commit, sm, k)
                hub.notify()
            got: list[int] = []
            while len(got) < 40 and time.monotonic() - t0 < 30:  # hang guard only
                chunk = await asyncio.wait_for(sub.queue.get(), 30)
                got += [ev.data["k"] for ev in chunk.events]
            assert got == list(range(40))  # every event once, in commit order
            # at most one outbox read per coalescing window (+ the first and a poll), however
            # fast or slow the commits came: a machine-speed-free bound (a read per notify
            # would exceed it whenever 2+ commits land in one 50 ms window)
            elapsed = time.monotonic() - t0
            assert len(reads) <= max(3, int(elapsed / 0.05) + 2), (len(reads), elapsed)
            assert reads.count(True) <= 1 + int(elapsed / 0.27)  # feed: poll cadence only
        finally:
            await hub.stop()

    try:
        asyncio.run(run())
    finally:
        engine.dispose()


def _commit(sm, k: int) -> None:  # noqa: ANN001
    with write_transaction(sm) as s:
        emit(s, "ticket.created", {"k": k}, grid_id="g1", tier="village", class_name="straw_burning", priority=1)


def test_startup_heap_is_frozen_once_per_process(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(live.gc, "collect", lambda: calls.append("collect"))
    monkeypatch.setattr(live.gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(live, "_heap_frozen", False)
    monkeypatch.setenv("SKYGRID_GC_FREEZE", "0")
    assert live.freeze_startup_heap() is False and calls == []
    monkeypatch.delenv("SKYGRID_GC_FREEZE")
    assert live.freeze_startup_heap() is True and calls == ["collect", "freeze"]
    assert live.freeze_startup_heap() is False and calls == ["collect", "freeze"]


def test_gil_switch_interval_is_shortened_never_lengthened(monkeypatch):
    now = [0.005]
    monkeypatch.setattr(live.sys, "getswitchinterval", lambda: now[0])
    monkeypatch.setattr(live.sys, "setswitchinterval", lambda v: now.__setitem__(0, v))
    monkeypatch.delenv("SKYGRID_GIL_SWITCH_S", raising=False)
    assert live.shorten_gil_switch() == 0.001
    monkeypatch.setenv("SKYGRID_GIL_SWITCH_S", "0.002")
    assert live.shorten_gil_switch() == 0.001  # never longer than what is in force
    now[0] = 0.005
    monkeypatch.setenv("SKYGRID_GIL_SWITCH_S", "0")
    assert live.shorten_gil_switch() == 0.005  # 0: leave the interpreter's value


@pytest.mark.timeout(60)
def test_a_batch_reaches_a_websocket_client_as_ticket_events(tmp_path, template_db, monkeypatch):
    monkeypatch.setattr(live, "_heap_frozen", True)  # not this test process's heap
    env = make_env(tmp_path, template_db)
    try:
        with TestClient(env.app) as client, \
                client.websocket_connect("/api/v1/live/ws?batch=1&topic=ticket.created",
                                         headers={"Authorization": "Bearer tok-viewer"}) as ws:
            assert json.loads(ws.receive_text())["topic"] == "hello"
            items = [env.incident(f"ws-{k}", spot=k) for k in range(6)]
            r = client.post("/api/v1/incidents/batch", json={"items": items}, headers=auth("operator"))
            assert r.status_code == 200 and r.json()["created"] == 6
            want = {a["ticket_id"] for a in r.json()["results"]}
            got: list[dict] = []
            while len(got) < 6:
                frame = json.loads(ws.receive_text())
                assert isinstance(frame, list)  # ?batch=1: arrays of events
                got += frame
            assert {e["data"]["id"] for e in got} == want and {e["topic"] for e in got} == {"ticket.created"}
            assert [e["id"] for e in got] == sorted(e["id"] for e in got)
    finally:
        env.app.state.engine.dispose()
