"""Alert latency: incident ingest -> live WebSocket receipt, at 100 clients.

The real dispatch app runs under uvicorn in child processes (their own interpreters, as in
a deployment) on loopback with a temporary SQLite file and the Keqiao sample grids. This
process opens ``CLIENTS`` WebSocket subscribers to ``/api/v1/live/ws?batch=1`` (what the
command-room page opens) and drives incidents through the real HTTP API, each at a
distinct position (merge radius 1 cm) and in the four classes in turn, so every incident
opens a ticket and emits ``ticket.created``:

* **HTTP batch ingest** at ``RATE`` (500/s): an edge box's flush loop on one keep-alive
  connection: one ``POST /api/v1/incidents/batch`` in flight, the next (at least
  ``BATCH_MS`` later) carrying every incident generated meanwhile, so a slower server gets
  bigger batches instead of a queue; latency from the POST being sent, and from each
  incident's generation (adds the client's own batching wait). Once with
  one process taking the POSTs and serving the streams, once with a second process of
  the same app on the same database serving the streams (it tails the outbox every
  ``STREAM_POLL_S``: the multi-process fan-out), so ingest and fan-out get a GIL each.
* **HTTP single POSTs**: one ``POST /api/v1/incidents`` per incident, ``SINGLE_CONC``
  concurrent keep-alive connections, offered at ``SINGLE_RATE``/s.
* **outbox emit** (fan-out layer alone): a bench-only route in the server child writes
  ``live_events`` rows at 500/s through the ticket store's ``write_transaction`` +
  ``outbox.emit`` + ``notify``, with ``?batch=1`` at 100 clients and one event per frame
  at 10.

The harness client is a minimal RFC 6455 reader (:class:`_WsClient`) that stamps every
frame with the wall clock when its last byte arrives, per client; ids are decoded after
the run. The server children also record the outbox row's time -> the hub publishing it,
their event-loop lag and the ingest transaction's wall and CPU time, so the output says
on which side the time goes. Clients and servers share this machine's cores with whatever
else runs: the 1-min load average is in every row. Env: BENCH_ALERTS_CLIENTS,
BENCH_ALERTS_RATE, BENCH_ALERTS_SECONDS, BENCH_ALERTS_BATCH_MS, BENCH_ALERTS_SINGLE_RATE,
BENCH_ALERTS_SINGLE_CONC, BENCH_ALERTS_STREAM_POLL_S, BENCH_ALERTS_DEFLATE (1: the server
negotiates permessage-deflate, as uvicorn does by default; the harness client never asks).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRIDS = ROOT / "examples" / "keqiao" / "grids.geojson"
CLIENTS = int(os.environ.get("BENCH_ALERTS_CLIENTS", "100"))
RATE = int(os.environ.get("BENCH_ALERTS_RATE", "500"))  # incidents/s (the target's rate)
SECONDS = float(os.environ.get("BENCH_ALERTS_SECONDS", "6"))  # seconds of ingest per phase
BATCH_MS = float(os.environ.get("BENCH_ALERTS_BATCH_MS", "20"))  # edge box: batch POSTs at least this far apart
SINGLE_RATE = int(os.environ.get("BENCH_ALERTS_SINGLE_RATE", "100"))  # single POSTs/s offered
SINGLE_CONC = int(os.environ.get("BENCH_ALERTS_SINGLE_CONC", "8"))  # keep-alive connections for single POSTs
TOKEN_OP, TOKEN_VIEW = "bench-operator", "bench-viewer"
TARGET_MS = 50.0
MAX_BATCH = 500  # items per POST /api/v1/incidents/batch (the endpoint's limit)
GROUP_WINDOW_S = 1.0  # the bench server's merge window (see run())
STREAM_POLL_S = float(os.environ.get("BENCH_ALERTS_STREAM_POLL_S", "0.01"))  # stream process's outbox poll


# ------------------------------------------------------------------ server child


def _serve(db: str, port: int) -> None:
    """Child process: the dispatch app on 127.0.0.1:port (plus the bench-only routes)."""
    import uvicorn

    from dispatch.app import SERVER_OPTIONS, create_app
    from dispatch.core.config import Settings

    settings = Settings(database_url=f"sqlite:///{db}", evidence_dir=str(Path(db).parent / "evidence"),
                        grids_file=str(GRIDS), group_radius_m=0.01, sla_check_interval_s=30.0,
                        group_window_s=GROUP_WINDOW_S,
                        bootstrap_tokens={TOKEN_OP: {"role": "operator", "name": "bench"},
                                          TOKEN_VIEW: {"role": "viewer", "name": "bench"}})
    app = create_app(settings)
    _add_emitter(app)
    _add_spans(app)
    options = dict(SERVER_OPTIONS)  # as `skygrid serve` serves it; BENCH_ALERTS_DEFLATE=1 to compare
    if os.environ.get("BENCH_ALERTS_DEFLATE") == "1":
        options["ws_per_message_deflate"] = True
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", **options)


def _fake_ticket(k: int, t: float) -> dict:
    """A payload the size and shape of a real ticket's public JSON (~1.3 kB)."""
    return {"id": 10_000_000 + k, "bench_t": t, "class_name": "straw_burning", "class_label": "秸秆焚烧",
            "status": "accepted", "status_label": "受理", "tier": "village", "priority": 1, "priority_label": "P1",
            "lat": 30.09, "lon": 120.32, "error_m": 5.0, "grid_id": "330603-YXQ-001", "grid_name": "杨汛村第1网格",
            "area_type": "countryside", "worker": {"id": "w1", "name": "朱红霞", "phone": "13851296185"},
            "lead_department": "ecology", "co_departments": ["agriculture", "township"],
            "departments": ["ecology", "agriculture", "township"],
            "checklist": [{"id": f"item{j}", "text": "现场拍照取证并核实位置与所属网格", "departments": ["ecology"]}
                          for j in range(7)],
            "incident_count": 1, "max_confidence": 0.9, "first_seen_at": "2026-11-23T21:00:00Z",
            "last_seen_at": "2026-11-23T21:00:00Z", "created_at": "2026-11-23T21:00:00Z",
            "updated_at": "2026-11-23T21:00:00Z",
            "sla": {"stage": "sign", "stage_started_at": "2026-11-23T21:00:00Z", "due_at": "2026-11-23T21:00:30Z"},
            "overdue": False, "escalations": 0, "allowed_actions": ["sign", "reject", "mark_duplicate"]}


def _add_emitter(app) -> None:  # noqa: ANN001 - FastAPI
    """Bench-only route (this process only): write outbox rows at a rate, each commit
    followed by notify, exactly as the ticket store does after a change."""
    import threading

    from dispatch.core.db import write_transaction
    from dispatch.outbox import emit, notify

    state = {"done": 0, "elapsed_s": 0.0, "transactions": 0}

    def emitter(rate: float, n: int) -> None:
        """Every row due by now goes into one transaction (a batching ingest at 500/s writes a
        few rows per commit); each row carries the wall time taken just before its commit."""
        start = time.monotonic()
        k = 0
        while k < n:
            due = min(n, int((time.monotonic() - start) * rate) + 1)
            if due <= k:
                time.sleep(max(0.0, start + k / rate - time.monotonic()))
                continue
            t = time.time()
            with write_transaction(app.state.sessionmaker) as s:
                for j in range(k, due):
                    emit(s, "ticket.created", _fake_ticket(j, t), grid_id="330603-YXQ-001", tier="village",
                         class_name="straw_burning", priority=1)
            notify(app)
            state["transactions"] += 1
            k = due
            state["done"] = k
        state["elapsed_s"] = time.monotonic() - start

    @app.post("/bench/emit")
    def bench_emit(rate: float, n: int) -> dict:
        state.update(done=0, elapsed_s=0.0, transactions=0)
        threading.Thread(target=emitter, args=(rate, n), daemon=True).start()
        return {"started": n}

    @app.get("/bench/emit")
    def bench_emit_state() -> dict:
        return dict(state)


def _add_spans(app) -> None:  # noqa: ANN001 - FastAPI
    """Server-side split of the latency: outbox row time -> the hub publishing it (commit,
    notify, tail read), and the event loop's lag (a 5 ms sleep's overshoot)."""
    import dispatch.api.incidents as incidents_api

    hub = app.state.live_hub
    spans: dict[str, list[float]] = {"publish_ms": [], "loop_lag_ms": [], "ingest_wall_ms": [], "ingest_cpu_ms": []}
    ingest_many = incidents_api.ingest_many

    def timed_ingest(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        t, c = time.perf_counter(), time.thread_time()
        try:
            return ingest_many(*a, **kw)
        finally:
            spans["ingest_wall_ms"].append((time.perf_counter() - t) * 1000)
            spans["ingest_cpu_ms"].append((time.thread_time() - c) * 1000)

    incidents_api.ingest_many = timed_ingest
    import gc

    spans["gc_ms"] = []
    gc_t = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_t[0] = time.perf_counter()
        else:
            spans["gc_ms"].append((time.perf_counter() - gc_t[0]) * 1000 + 1000 * info["generation"])

    gc.callbacks.append(on_gc)
    publish = hub.publish_many

    def timed_publish(evs: list) -> None:
        now = time.time()
        for ev in evs:
            if ev.id is None:
                continue
            t = ev.data.get("bench_t") if isinstance(ev.data, dict) else None
            if t is None:
                t = datetime.fromisoformat(ev.at.replace("Z", "+00:00")).timestamp()
            spans["publish_ms"].append((now - t) * 1000)
        publish(evs)

    hub.publish_many = timed_publish

    async def lag_monitor() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            spans["loop_lag_ms"].append((time.perf_counter() - t - 0.005) * 1000)

    @asynccontextmanager
    async def lifespan(_app):  # noqa: ANN001, ANN202
        task = asyncio.create_task(lag_monitor())
        yield
        task.cancel()

    app.state.lifespan_hooks.append(lifespan)

    @app.post("/bench/spans")
    def spans_reset() -> dict:
        for v in spans.values():
            v.clear()
        return {}

    @app.get("/bench/spans")
    def spans_get() -> dict:
        return {k: {"p50": _pct(v, 50), "p99": _pct(v, 99), "max": max(v, default=0), "n": len(v)} for k, v in spans.items()}


# ------------------------------------------------------------------ helpers


def _points(n: int, seed: int = 8) -> list[tuple[float, float]]:
    """n WGS-84 (lat, lon) points inside the sample grids (the file is GCJ-02)."""
    from shapely import contains_xy
    from shapely.geometry import shape
    from shapely.ops import unary_union

    from geo.crs import gcj02_to_wgs84

    gj = json.loads(GRIDS.read_text(encoding="utf-8"))
    area = unary_union([shape(f["geometry"]) for f in gj["features"]]).buffer(-1e-5)
    minx, miny, maxx, maxy = area.bounds
    rng = random.Random(seed)
    out: list[tuple[float, float]] = []
    while len(out) < n:
        xs = [rng.uniform(minx, maxx) for _ in range(2 * n)]
        ys = [rng.uniform(miny, maxy) for _ in range(2 * n)]
        for x, y, ok in zip(xs, ys, contains_xy(area, xs, ys), strict=True):
            if ok and len(out) < n:
                lon, lat = gcj02_to_wgs84(x, y)
                out.append((lat, lon))
    return out


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def _stats(values: list[float]) -> dict[str, float]:
    return {"p50": _pct(values, 50), "p95": _pct(values, 95), "p99": _pct(values, 99),
            "max": max(values, default=float("nan"))}


TOPIC_CREATED = b'"topic":"ticket.created"'
DATA_ID = b'"data":{"id":'


def created_ids(raw: bytes) -> list[int]:
    """Ticket ids of the ``ticket.created`` events in one frame (an object or, with
    ``?batch=1``, an array of them): a byte scan, no JSON decode. Event objects put
    ``topic`` before ``data`` and a ticket's ``data`` starts with its ``id``."""
    out = []
    i = raw.find(TOPIC_CREATED)
    while i >= 0:
        j = raw.index(DATA_ID, i) + len(DATA_ID)
        k = j
        while 48 <= raw[k] <= 57:
            k += 1
        out.append(int(raw[j:k]))
        i = raw.find(TOPIC_CREATED, k)
    return out


BENCH_T = b'"bench_t":'


def bench_times(raw: bytes) -> list[float]:
    """The ``bench_t`` stamps (unix s) of the emitter's events in one frame (byte scan)."""
    out = []
    i = raw.find(BENCH_T)
    while i >= 0:
        i += len(BENCH_T)
        j = raw.index(b",", i)
        out.append(float(raw[i:j]))
        i = raw.find(BENCH_T, j)
    return out


class _WsClient(asyncio.Protocol):
    """A minimal WebSocket client (RFC 6455) for the harness: HTTP upgrade without
    extensions, then unmasked server frames cut out of the byte stream. Each complete data
    frame is stamped with ``time.time()`` in ``data_received``, i.e. when its last byte
    reached this process; pings are answered. A general-purpose client (``websockets``)
    costs ~100 us of Python per 30 kB frame here, 100 clients x every fan-out: on a
    2-core machine that would load the server's cores with the harness's own overhead."""

    def __init__(self, host: str, path: str, marker: bytes) -> None:
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                        f"Authorization: Bearer {TOKEN_VIEW}\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        self.marker = marker
        self.buf = bytearray()
        self.upgraded = False
        self.frames: list[tuple[float, bytes]] = []
        self.events = 0
        self.partial = bytearray()
        self.transport: asyncio.Transport | None = None
        self.hello = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.hello.set_exception(RuntimeError(bytes(buf[:200]).decode("latin-1")))
                return
            self.upgraded = True
            del buf[:end + 4]
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, off = b1 & 0x7F, pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length, off = int.from_bytes(buf[pos + 2:pos + 4], "big"), pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, off = int.from_bytes(buf[pos + 2:pos + 10], "big"), pos + 10
            if n - off < length:
                break
            payload = bytes(buf[off:off + length])
            pos = off + length
            opcode = b0 & 0x0F
            if opcode in (0, 1, 2):
                if not b0 & 0x80:  # fragment: wait for the final one
                    self.partial += payload
                    continue
                if self.partial:
                    payload, self.partial = bytes(self.partial) + payload, bytearray()
                self.frames.append((now, payload))
                self.events += payload.count(self.marker)
                if not self.hello.done():
                    self.hello.set_result(None)
            elif opcode == 9:  # ping -> pong (client frames are masked)
                mask = os.urandom(4)
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + mask  # type: ignore[union-attr]
                                     + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))
            elif opcode == 8:
                self.transport.close()  # type: ignore[union-attr]
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.hello.done():
            self.hello.set_exception(ConnectionError("closed before hello"))


class Clients:
    """``n`` WebSocket subscribers in this process (see :class:`_WsClient`); each keeps
    (receipt time, frame bytes) of every frame and counts the events in it (a C-speed
    ``bytes.count``); ids are decoded after the run."""

    def __init__(self, base: str, n: int, batched: bool = True, marker: bytes = TOPIC_CREATED) -> None:
        self.host, port = base.removeprefix("http://").split(":")
        self.port = int(port)
        self.path = "/api/v1/live/ws?topic=ticket" + ("&batch=1" if batched else "")
        self.n, self.marker = n, marker
        self.clients: list[_WsClient] = []
        self.lags: list[float] = []
        self.tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> Clients:
        loop = asyncio.get_running_loop()
        for _ in range(self.n):
            _, c = await loop.create_connection(lambda: _WsClient(f"{self.host}:{self.port}", self.path, self.marker),
                                                self.host, self.port)
            self.clients.append(c)
        await asyncio.wait_for(asyncio.gather(*(c.hello for c in self.clients)), 30)
        gc.collect()  # the harness's own full collections must not stall 100 readers (see freeze_startup_heap)
        gc.freeze()
        self.tasks.append(asyncio.create_task(self._lag()))
        return self

    async def _lag(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            self.lags.append((time.perf_counter() - t - 0.005) * 1000)

    @property
    def frames(self) -> list[list[tuple[float, bytes]]]:
        return [c.frames for c in self.clients]

    async def drain(self, want: int, timeout_s: float = 5.0) -> None:
        """Wait until every client has received ``want`` events, or ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and min((c.events for c in self.clients), default=want) < want:
            await asyncio.sleep(0.05)

    async def __aexit__(self, *_exc: object) -> None:
        for t in self.tasks:
            t.cancel()
        for c in self.clients:
            if c.transport is not None:
                c.transport.close()
        gc.unfreeze()

    def n_frames(self) -> int:
        return sum(len(c.frames) for c in self.clients)


async def _spans(base: str, reset: bool = False) -> dict:
    """The server's latency split (see ``_add_spans``); ``reset`` clears it first."""
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        if reset:
            await http.post("/bench/spans")
            return {}
        return (await http.get("/bench/spans")).json()


CLASSES = ("illegal_structure", "straw_burning", "illegal_dumping", "hazmat_fire")


def _incident(tag: str, i: int, lat: float, lon: float) -> dict:
    """Incident ``i``: its own position, the four patrol classes in turn."""
    return {"external_id": f"{tag}-{i}", "source": "drone", "class_name": CLASSES[i % 4], "lat": lat, "lon": lon,
            "error_m": 5.0, "confidence": 0.9, "observed_at": datetime.now(UTC).isoformat(), "drone_id": "d0",
            "sortie_id": "s0", "frames_seen": 2, "evidence": None}


# ------------------------------------------------------------------ phases


async def _http_phase(post_base: str, ws_base: str, points: list[tuple[float, float]], tag: str, *, batch: bool,
                      rate: int, seconds: float) -> dict:
    """Incidents at ``rate``/s POSTed to ``post_base`` (batch POSTs every BATCH_MS, or single
    POSTs on SINGLE_CONC connections), clients on ``ws_base``; latency per (client, ticket)
    from the POST and from the incident's generation."""
    import httpx

    n = int(rate * seconds)
    sent: dict[int, tuple[float, float]] = {}  # ticket id -> (POST sent, incident generated), unix s
    errors = 0
    async with Clients(ws_base, CLIENTS) as clients, httpx.AsyncClient(
            base_url=post_base, headers={"Authorization": f"Bearer {TOKEN_OP}"}, timeout=30,
            limits=httpx.Limits(max_connections=SINGLE_CONC if not batch else 1)) as http:
        for b in {post_base, ws_base}:
            await _spans(b, reset=True)
        cpu0 = _cpu_now()
        t_start = time.time()
        m_start = time.monotonic()

        async def post_batch(lo: int, hi: int) -> None:
            nonlocal errors
            items = [_incident(tag, i, *points[i]) for i in range(lo, hi)]
            t0 = time.time()
            try:
                r = await http.post("/api/v1/incidents/batch", json={"items": items})
                r.raise_for_status()
                for i, res in zip(range(lo, hi), r.json()["results"], strict=True):
                    if res["status"] == 201:
                        sent[res["ticket_id"]] = (t0, t_start + i / rate)
                    else:
                        errors += 1
            except httpx.HTTPError:
                errors += hi - lo

        sem = asyncio.Semaphore(SINGLE_CONC)

        async def post_one(i: int) -> None:
            nonlocal errors
            async with sem:
                t0 = time.time()
                try:
                    r = await http.post("/api/v1/incidents", json=_incident(tag, i, *points[i]))
                    if r.status_code == 201:
                        sent[r.json()["ticket_id"]] = (t0, t_start + i / rate)
                    else:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1

        tasks: list[asyncio.Task] = []
        done = 0
        last_send = -1.0
        while done < n:
            now = time.monotonic()
            due = min(n, int((now - m_start) * rate) + 1)
            if not batch:
                tasks += [asyncio.create_task(post_one(i)) for i in range(done, due)]
                done = due
                await asyncio.sleep(max(0.0, m_start + done / rate - time.monotonic()))
                continue
            # an edge box's flush loop: one POST in flight; the next carries everything generated
            # meanwhile (at least BATCH_MS apart), so a slow server gets bigger batches, not a queue
            if tasks and not tasks[-1].done():
                await asyncio.wait({tasks[-1]})
            elif now - last_send < BATCH_MS / 1000:
                await asyncio.sleep(last_send + BATCH_MS / 1000 - now)
            elif due > done:
                hi = min(due, done + MAX_BATCH)
                tasks.append(asyncio.create_task(post_batch(done, hi)))
                done, last_send = hi, now
            else:
                await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
        send_s = time.monotonic() - m_start
        await clients.drain(len(sent))
        cpu = _cpu_now(cpu0)
        server = await _spans(ws_base)
        if post_base != ws_base:
            server.update({k: v for k, v in (await _spans(post_base)).items() if k.startswith("ingest")})
    from_post: list[float] = []
    from_gen: list[float] = []
    missing = 0
    for frames in clients.frames:
        got: dict[int, float] = {}
        for t_recv, raw in frames:
            for tid in created_ids(raw):
                got.setdefault(tid, t_recv)
        for tid, (t0, tg) in sent.items():
            t_recv = got.get(tid)
            if t_recv is None:
                missing += 1
                continue
            from_post.append((t_recv - t0) * 1000)
            from_gen.append((t_recv - tg) * 1000)
    return {"cpu": cpu, "client_lag": _stats(clients.lags), "incidents": len(sent), "errors": errors,
            "achieved": len(sent) / send_s, "frames": clients.n_frames(), "posts": len(tasks),
            "deliveries": len(from_post), "missing": missing, **_stats(from_post),
            "gen_p99": _pct(from_gen, 99), "server": server}


async def _emit_phase(base: str, rate: int, seconds: float, batched: bool, n_clients: int) -> dict:
    """Outbox-emit layer: the server writes outbox rows at ``rate``; latency = receipt - the
    emitter's clock just before the transaction (commit, notify, tail, fan-out, WebSocket)."""
    import httpx

    n = int(rate * seconds)
    async with Clients(base, n_clients, batched, BENCH_T) as clients, httpx.AsyncClient(base_url=base, timeout=30) as http:
        await _spans(base, reset=True)
        cpu0 = _cpu_now()
        (await http.post("/bench/emit", params={"rate": rate, "n": n})).raise_for_status()
        deadline = time.monotonic() + 4 * seconds + 10.0
        while time.monotonic() < deadline:
            st = (await http.get("/bench/emit")).json()
            if st["done"] >= n:
                break
            await asyncio.sleep(0.2)
        await clients.drain(n)
        cpu = _cpu_now(cpu0)
        server = await _spans(base)
    lat = [(t_recv - t) * 1000 for frames in clients.frames for t_recv, raw in frames for t in bench_times(raw)]
    return {"cpu": cpu, "client_lag": _stats(clients.lags), "incidents": n,
            "achieved": n / max(st["elapsed_s"], 1e-9) if st["elapsed_s"] else 0.0,
            "frames": clients.n_frames(), "deliveries": len(lat), "missing": n * n_clients - len(lat),
            **_stats(lat), "server": server, "clients": n_clients}


def _fmt(r: dict) -> str:
    s = r["server"]
    return (f"p50 {r['p50']:.1f} p95 {r['p95']:.1f} p99 {r['p99']:.1f} max {r['max']:.1f} ms, {r['frames']} frames, "
            f"{r['deliveries']} deliveries, {r['missing']} missing; server: row -> fan-out p50 "
            f"{s['publish_ms']['p50']:.1f} p99 {s['publish_ms']['p99']:.1f} ms, loop lag p99 "
            f"{s['loop_lag_ms']['p99']:.1f} ms" + (f", ingest txn p50 {s['ingest_wall_ms']['p50']:.1f} ms wall / "
                                                   f"{s['ingest_cpu_ms']['p50']:.1f} ms CPU" if s['ingest_wall_ms']['n']
                                                   else "")
            + f"; client loop lag p99 {r['client_lag']['p99']:.1f} ms; CPU s: servers {r['cpu'][0]:.1f}, clients "
            f"{r['cpu'][1]:.1f}; load {r['load']:.1f}")


def _verdict(r: dict) -> str:
    ok = r["p99"] <= TARGET_MS and r["missing"] == 0 and r.get("errors", 0) == 0
    return f"p99 <= {TARGET_MS:.0f} ms: {'met' if ok else 'NOT met'}"


def _start_server(db: Path, poll_s: float) -> tuple[subprocess.Popen, str]:
    import httpx

    from tests.conftest import free_tcp_port

    port = free_tcp_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.bench_alerts", "--serve", str(db), str(port)], cwd=ROOT,
                            env={**os.environ, "SKYGRID_LIVE_POLL_S": str(poll_s)})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("dispatch server did not start")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


_SERVERS: list[subprocess.Popen] = []  # the running server children, for _cpu_now


def _cpu_now(since: tuple[float, float] | None = None) -> tuple[float, float]:
    """(CPU seconds of the server children, of this process) now, or spent ``since``."""
    now = (sum(_cpu_s(p.pid) for p in _SERVERS), time.process_time())
    return now if since is None else (now[0] - since[0], now[1] - since[1])


def _timed(procs: list[subprocess.Popen], coro_fn) -> dict:  # noqa: ANN001
    """Run one phase with ``procs`` as the servers whose CPU it counts; add the load."""
    _SERVERS[:] = procs
    r = asyncio.run(coro_fn())
    r["load"] = os.getloadavg()[0]
    return r


def run() -> str:
    n_batch, n_single = int(RATE * SECONDS), int(SINGLE_RATE * SECONDS)
    points = _points(2 * n_batch + n_single + 10)
    rows: list[tuple[str, int, str, dict, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        db = Path(tmp) / "d.db"
        one, base = _start_server(db, 1.0)
        procs = [one]
        try:
            # 1. one process takes the POSTs and serves the streams
            r = _timed(procs, lambda: _http_phase(base, base, points[:n_batch], "one", batch=True, rate=RATE,
                                                  seconds=SECONDS))
            print(f"HTTP batch ingest, one process: POSTs >= {BATCH_MS:.0f} ms apart (mean "
                  f"{r['incidents'] / max(r['posts'], 1):.0f} items), offered {RATE}/s, achieved {r['achieved']:.0f}/s ({r['errors']} errors), {CLIENTS} clients: POST->receipt {_fmt(r)}; "
                  f"generation->receipt p99 {r['gen_p99']:.1f} ms", flush=True)
            rows.append((f"HTTP batch ingest, one process (mean {r['incidents'] / max(r['posts'], 1):.0f} per POST)",
                         CLIENTS, f"{RATE}/s", r, _verdict(r)))
            # 2. the same POSTs to that process, the clients on a second (stream) process tailing the database
            stream, stream_base = _start_server(db, STREAM_POLL_S)
            procs.append(stream)
            r = _timed(procs, lambda: _http_phase(base, stream_base, points[n_batch:2 * n_batch], "split", batch=True,
                                                  rate=RATE, seconds=SECONDS))
            print(f"HTTP batch ingest, ingest process + stream process (poll {STREAM_POLL_S * 1000:.0f} ms): offered "
                  f"{RATE}/s, achieved {r['achieved']:.0f}/s ({r['errors']} errors), {CLIENTS} clients: POST->receipt "
                  f"{_fmt(r)}; generation->receipt p99 {r['gen_p99']:.1f} ms", flush=True)
            rows.append((f"HTTP batch ingest, ingest process + stream process (polls every "
                         f"{STREAM_POLL_S * 1000:.0f} ms; mean {r['incidents'] / max(r['posts'], 1):.0f} per POST)",
                         CLIENTS, f"{RATE}/s", r, _verdict(r)))
            _stop(stream)
            procs.remove(stream)
            # 3. one POST per incident
            r = _timed(procs, lambda: _http_phase(base, base, points[2 * n_batch:], "single", batch=False,
                                                  rate=SINGLE_RATE, seconds=SECONDS))
            print(f"HTTP single POSTs ({SINGLE_CONC} connections), one process: offered {SINGLE_RATE}/s, achieved "
                  f"{r['achieved']:.0f}/s ({r['errors']} errors), {CLIENTS} clients: POST->receipt {_fmt(r)}",
                  flush=True)
            rows.append((f"HTTP single POSTs ({SINGLE_CONC} keep-alive connections), one process", CLIENTS,
                         f"{SINGLE_RATE}/s", r, "(rate below target)" if SINGLE_RATE < RATE else _verdict(r)))
            # 4. the fan-out layer alone
            for clients, batched in ((CLIENTS, True), (10, False)):
                r = _timed(procs, lambda c=clients, b=batched: _emit_phase(base, RATE, SECONDS, b, c))
                print(f"outbox emit {RATE}/s (achieved {r['achieved']:.0f}/s), {clients} clients, "
                      f"{'batched' if batched else 'one event per'} frames: emit->receipt {_fmt(r)}", flush=True)
                rows.append((f"outbox emit only, {'batched frames' if batched else 'one event per frame'}", clients,
                             f"{RATE}/s", r, _verdict(r)))
        finally:
            for p in procs:
                _stop(p)
    table = [
        "| path | clients | offered | achieved | frames | p50 ms | p95 ms | p99 ms | max ms | missing | "
        "server: row -> fan-out p99 ms | CPU s servers / clients | load (1 min) | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, clients, offered, r, verdict in rows:
        table.append(f"| {name} | {clients} | {offered} | {r['achieved']:.0f}/s | {r['frames']} | {r['p50']:.1f} | "
                     f"{r['p95']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['missing']} | "
                     f"{r['server']['publish_ms']['p99']:.1f} | {r['cpu'][0]:.1f} / {r['cpu'][1]:.1f} | "
                     f"{r['load']:.1f} | {verdict} |")
    gens = ", ".join(f"{r['gen_p99']:.1f}" for _, _, _, r, _ in rows[:2])

    def split(r: dict) -> str:
        s = r["server"]
        return (f"ingest transaction p50 {s['ingest_wall_ms']['p50']:.0f} ms wall / {s['ingest_cpu_ms']['p50']:.0f} ms "
                f"CPU (p99 {s['ingest_wall_ms']['p99']:.0f} ms wall), row -> fan-out p50 {s['publish_ms']['p50']:.0f} "
                f"ms, stream server loop lag p99 {s['loop_lag_ms']['p99']:.0f} ms, client loop lag p99 "
                f"{r['client_lag']['p99']:.0f} ms")

    where = [f"* where the time goes, {name.split(' (')[0].removeprefix('HTTP batch ingest, ')}: {split(r)}."
             for name, _, _, r, _ in rows[:2]]
    return "\n".join([
        "## Live alerts: ingest -> WebSocket receipt at 100 clients",
        "",
        f"The dispatch app (uvicorn, SQLite WAL) in child processes and {CLIENTS} WebSocket clients "
        "(`?batch=1`, what the command-room page opens; one asyncio process) on loopback, sharing this machine's "
        "2 cores with each other and with whatever else runs: the 1-min load average is in each row, and figures "
        "taken under load (> 1) are pessimistic. Every incident is at its own position, in the four classes in "
        "turn, so each opens a ticket and emits `ticket.created` (merge radius 1 cm; merge window "
        f"{GROUP_WINDOW_S:.0f} s so that the grouping scan meets a county's density of open tickets, not the "
        "3,000 a run piles into the 3.2 km² sample). Latency per (client, ticket), the receipt time taken by "
        "each client on each frame as it arrives.",
        "",
        f"* **HTTP batch ingest**: {RATE} incidents/s through the real API by an edge box's flush loop: one "
        f"`POST /api/v1/incidents/batch` (one transaction) in flight, the next at least {BATCH_MS:.0f} ms later "
        "carrying every incident generated meanwhile (a slower server gets bigger batches, not a queue); latency "
        "from the POST being sent (from the incident's generation, adding the box's own batching wait, p99: "
        f"{gens} ms). *One process*: that process also serves the 100 streams. *Ingest process + stream "
        "process*: a second process of the same app on the same database serves the streams, tailing the outbox "
        f"every {STREAM_POLL_S * 1000:.0f} ms (the multi-process fan-out), so ingest and fan-out get a GIL each.",
        "* **HTTP single POSTs**: one `POST /api/v1/incidents` per incident (one transaction each) on "
        f"{SINGLE_CONC} keep-alive connections, offered {SINGLE_RATE}/s.",
        f"* **outbox emit only**: the server writes ticket-sized `live_events` rows at {RATE}/s (+ `notify()`), no "
        "HTTP: the fan-out layer alone; and one event per frame (no `?batch=1`) at 10 clients.",
        "* row -> fan-out: the outbox row's time (the start of the ingest transaction) to the hub publishing it.",
        "",
        *table,
        "",
        *where,
        "",
    ])


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        _serve(sys.argv[2], int(sys.argv[3]))
    else:
        print(run())
