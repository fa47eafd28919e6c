"""HTTP/WebSocket endpoints of the live module.

* ``GET  /api/v1/live/ws``   WebSocket; one JSON object per frame (see :class:`LiveEvent`), or
  with ``?batch=1`` one JSON array per frame of the events ready at that moment (far fewer
  frames under a burst: what a busy command-room wall or a relay should use).
* ``GET  /api/v1/live/sse``  Server-Sent Events; ``id:`` is the outbox id of ticket events.
* ``GET  /api/v1/live/drones`` the drones' last positions, tracks and recent events.
* ``GET  /api/v1/live/config`` what the pages need: tile URL and display CRS (no secrets).
* ``POST /api/v1/telemetry`` flight records -> live streams (not stored as tickets).
* ``POST /api/v1/drones/{drone_id}/commands``, ``GET /api/v1/drones/commands``.
* ``PUT/GET /api/v1/plan`` the current patrol plan JSON.

Streams take filters as comma-separated query values: ``grid``, ``tier``, ``class_name``
(or ``class``), ``priority`` (``P0`` or ``0``), ``topic`` (prefix: ``ticket``, ``drone``).
Resume: ``?after=<id>`` (WS and SSE) or the ``Last-Event-ID`` header (SSE, what
EventSource sends by itself on reconnect). Auth: ``Authorization: Bearer`` or a
single-use ``?ticket=`` from ``POST /api/v1/live/tickets`` (browsers cannot set headers on
WebSocket/EventSource; a token never goes into a URL). An open stream re-checks its token
every ``STREAM_AUTH_RECHECK_S`` seconds and ends (WebSocket close 4401, SSE ``event:
revoked``) once the token is revoked or expired. The first message is ``hello``
with ``last_id`` (the outbox head) and the drones' snapshot.

Replay is paged (one page of outbox rows in memory at a time) and capped: a client asking
for more than ``live_replay_max_events`` back, or for events the retention deleted
(``live_retention_s``), gets a ``resync`` event (``data``: ``reason``, ``detail``,
``last_id``) right after ``hello`` and live events from the head on: it reloads the
tickets from ``GET /api/v1/tickets`` and resumes from ``last_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.websockets import WebSocketState

from dispatch.errors import ApiError

from . import store
from .events import EventFilter, LiveEvent
from .hub import TICK, LiveHub

log = logging.getLogger("dispatch.live")

KEEPALIVE_S = 15.0  # seconds between SSE comments / WS pings so proxies keep the stream open
#: seconds between an open stream's checks that its token is still valid (revocation, expiry)
STREAM_AUTH_RECHECK_S = 10.0


# -- request bodies --------------------------------------------------------------------
#: free-form ``data`` of a flight event: nesting depth and JSON size (bytes) at most. A
#: telemetry event nested ~255 levels deep once made /api/v1/live/drones answer 500 forever.
EVENT_DATA_MAX_DEPTH = 6
EVENT_DATA_MAX_BYTES = 8 * 1024


class TelemetryIn(BaseModel):
    """flight.records.Telemetry as JSON (positions WGS-84 degrees, altitudes metres).
    Numbers must be finite: NaN on the live stream is invalid JSON to a browser."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    drone_id: str = Field(min_length=1, max_length=64)
    time_s: float
    wall_time: float
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    abs_alt_m: float
    rel_alt_m: float
    roll_deg: float = 0.0
    pitch_deg: float = 0.0
    yaw_deg: float = 0.0
    ground_speed_m_s: float = 0.0
    battery_pct: float = 0.0
    flight_mode: str = Field("", max_length=64)
    armed: bool = False
    in_air: bool = False
    sortie_id: str | None = Field(None, max_length=64)
    mission_item: int | None = None
    mission_total: int | None = None


class FlightEventIn(BaseModel):
    """flight.records.FlightEvent as JSON."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    drone_id: str = Field(min_length=1, max_length=64)
    wall_time: float
    kind: str = Field(min_length=1, max_length=64)
    message: str = Field("", max_length=2000)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    sortie_id: str | None = Field(None, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, description=(
        f"free-form, at most {EVENT_DATA_MAX_DEPTH} levels deep and {EVENT_DATA_MAX_BYTES} bytes as JSON"))

    @field_validator("data")
    @classmethod
    def _bounded(cls, v: dict[str, Any]) -> dict[str, Any]:
        from dispatch.guard import JsonRejected, check_tree

        try:
            check_tree(v, "data", EVENT_DATA_MAX_DEPTH)
            size = len(json.dumps(v, ensure_ascii=False, allow_nan=False).encode("utf-8"))
        except JsonRejected as e:
            raise ValueError(str(e)) from None
        except (ValueError, TypeError, RecursionError) as e:
            raise ValueError(f"data: not encodable as JSON ({type(e).__name__})") from None
        if size > EVENT_DATA_MAX_BYTES:
            raise ValueError(f"data: {size} bytes as JSON, more than {EVENT_DATA_MAX_BYTES}")
        return v


class TelemetryBatch(BaseModel):
    records: list[TelemetryIn] = Field(default_factory=list, max_length=10000)
    events: list[FlightEventIn] = Field(default_factory=list, max_length=10000)


class CommandIn(BaseModel):
    action: Literal["rtl", "hold", "resume"]
    note: str | None = Field(default=None, max_length=500)


# -- helpers ---------------------------------------------------------------------------
def _iso_from_unix(t: float) -> str:
    try:
        return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def drone_event(topic: str, data: dict[str, Any], wall_time: float | None = None) -> LiveEvent:
    at = _iso_from_unix(wall_time) if wall_time else datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return LiveEvent.make(id=None, topic=topic, at=at, data=data)


def _hub(request_or_ws: Request | WebSocket) -> LiveHub:
    return request_or_ws.app.state.live_hub


def _bearer(headers: Any) -> str | None:
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return None


def _stream_auth(app: Any, client: Any, headers: Any, query: Any) -> tuple[Any, int]:
    """(principal or None, HTTP-ish status): bearer header or single-use ``?ticket=``;
    429 while the client address is throttled for failed attempts."""
    from dispatch.core.db import write_transaction
    from dispatch.core.security import authenticate, redeem_code
    from dispatch.core.throttle import client_key

    throttle = app.state.auth_throttle
    key = client_key(client)
    if throttle.retry_after(key) > 0:
        return None, 429
    token, ticket = _bearer(headers), query.get("ticket")
    if not token and not ticket:
        return None, 401
    if token:
        with app.state.sessionmaker() as s:
            principal = authenticate(s, token)
    else:
        with write_transaction(app.state.sessionmaker) as s:
            principal = redeem_code(s, ticket, "stream")
    if principal is None:
        throttle.fail(key)
        return None, 401
    return principal, 200


class _AuthWatch:
    """Re-checks a stream's token every ``live_auth_recheck_s`` seconds (the hub's
    ``auth_recheck_s``; :data:`STREAM_AUTH_RECHECK_S` without a hub). The senders ask on
    every batch and every hub tick, idle or not, so a revoked token's stream ends within
    about the recheck interval plus one tick."""

    def __init__(self, app: Any, principal: Any) -> None:
        self.app, self.token_id = app, getattr(principal, "token_id", None)
        hub = getattr(app.state, "live_hub", None)
        self.interval = float(getattr(hub, "auth_recheck_s", STREAM_AUTH_RECHECK_S))
        self.next_check = time.monotonic() + self.interval

    def _valid(self) -> bool:
        from dispatch.core.security import token_active

        with self.app.state.sessionmaker() as s:
            return token_active(s, self.token_id)

    async def still_valid(self) -> bool:
        if self.token_id is None or time.monotonic() < self.next_check:
            return True
        self.next_check = time.monotonic() + self.interval
        return await asyncio.to_thread(self._valid)


def _build_filter(principal: Any, q: Any) -> EventFilter:
    """Query values -> filter; a grid worker is confined to their grids. ValueError on bad input."""
    allowed = None
    if getattr(principal, "role", None) == "grid_worker":
        allowed = list(getattr(principal, "grid_ids", None) or ())
    return EventFilter.from_query(grid=q.get("grid"), tier=q.get("tier"),
                                  class_name=q.get("class_name") or q.get("class"),
                                  priority=q.get("priority"), topic=q.get("topic"), allowed_grids=allowed)


#: ids are 64-bit signed integers in SQLite and PostgreSQL
MAX_EVENT_ID = 2**63 - 1


def _after(value: str | None, field: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not an event id (an integer)") from None
    if not 0 <= n <= MAX_EVENT_ID:
        raise ValueError(f"{field}: event id must be within 0..{MAX_EVENT_ID}, got {n}")
    return n


def _principal_info(p: Any) -> dict[str, Any]:
    grids = getattr(p, "grid_ids", None)
    return {"name": getattr(p, "name", None), "role": getattr(p, "role", None),
            "grid_ids": list(grids) if grids else None}


def _hello(hub: LiveHub, principal: Any, sub_after: int) -> LiveEvent:
    return drone_event("hello", {"last_id": hub.cursor, "after": sub_after, "drones": hub.drones.snapshot(),
                                 "principal": _principal_info(principal)})


async def _batches(hub: LiveHub, sub: Any, max_batch: int = 200
                   ) -> AsyncIterator[tuple[list[LiveEvent] | None, str | None]]:
    """Replay then live events for one subscriber, as (events, shared array frame or None):
    whatever is ready now, so a burst costs one wake-up; ``([], None)`` is a keep-alive (the
    hub's TICK found the stream idle for ``KEEPALIVE_S`` or more); ``(None, None)`` an idle
    tick (send nothing; the sender re-checks its token then, so revocation does not wait
    for traffic).

    The usual case (one chunk queued since the last send, nothing in it replayed) hands out
    the chunk's own list and frame, shared with every subscriber of an equal filter: no
    per-subscriber copy, JSON or UTF-8 work. Ends when the subscriber lagged too far behind
    (the client reconnects and replays).
    """
    async for replayed in hub.replay_pages(sub):
        for k in range(0, len(replayed), max_batch):
            yield replayed[k:k + max_batch], None
    q = sub.queue
    last_out = time.monotonic()
    while True:
        first = q.get_nowait() if not q.empty() else await q.get()
        if first is TICK:
            if time.monotonic() - last_out >= KEEPALIVE_S:
                last_out = time.monotonic()
                yield [], None
            else:
                yield None, None
            continue
        if first is None:  # lagged or server stopping
            return
        chunks = [first]
        n = len(first.events)
        while n < max_batch and not q.empty():
            nxt = q.get_nowait()
            if nxt is None:
                return
            if nxt is not TICK:
                chunks.append(nxt)
                n += len(nxt.events)
        sub.pending -= n
        last_out = time.monotonic()
        if len(chunks) == 1 and sub.all_fresh(first):
            yield first.events, first.frame
            continue
        events = [ev for c in chunks for ev in c.events]
        fresh = [ev for ev in events if sub.fresh(ev)]
        if fresh:
            yield fresh, None


def _sse_chunk(batch: list[LiveEvent]) -> str:
    return "".join(f"data: {ev.encoded}\n\n" if ev.id is None else f"id: {ev.id}\ndata: {ev.encoded}\n\n"
                   for ev in batch)


def _check_drone_count(batch: TelemetryBatch, hub: LiveHub, settings: Any) -> None:
    """422 naming the field when one post names more distinct drones than
    ``live_max_drones_per_post``, or new drones the board (``live_max_drones``, stale ones
    expired first) has no room for. Nothing of the post is published then."""
    per_post = int(getattr(settings, "live_max_drones_per_post", 50))
    ids: dict[str, str] = {}
    for name, items in (("records", batch.records), ("events", batch.events)):
        for i, r in enumerate(items):
            if r.drone_id not in ids:
                ids[r.drone_id] = f"body.{name}[{i}].drone_id"
                if len(ids) > per_post:
                    raise ApiError(422, f"drone_id: more than {per_post} distinct drones in one post "
                                        "(SKYGRID_LIVE_MAX_DRONES_PER_POST)", ids[r.drone_id])
    over = hub.drones.room_for(set(ids))
    if over:
        first_new = next(f for d, f in ids.items() if d not in hub.drones.seen)
        raise ApiError(422, f"drone_id: the live board already shows {len(hub.drones.seen)} drones, the most "
                            f"SKYGRID_LIVE_MAX_DRONES={hub.drones.max_drones} allows; {over} new drone(s) refused "
                            f"until others go {hub.drones.stale_s:.0f} s without a record", first_new)


def locate_plan_error(body: dict[str, Any]) -> str:
    """' (at sorties[3], id 's3': ...)' naming the first sortie/grid that does not parse, or ''."""
    from geo.plan_schema import PlannedGrid, Sortie, Waypoint

    for key, build in (("sorties", lambda s: Sortie(**{**s, "waypoints": [Waypoint(**w) for w in s["waypoints"]]})),
                       ("grids", lambda g: PlannedGrid(**g))):
        items = body.get(key)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            try:
                build(item)
            except (KeyError, TypeError, AttributeError) as e:
                ident = item.get("id") if isinstance(item, dict) else None
                return f" (at {key}[{i}]{f', id {ident!r}' if ident else ''}: {type(e).__name__} {e})"
    return ""


# -- router ----------------------------------------------------------------------------
def build_router(deps: Any, authenticate_token: Any) -> APIRouter:
    """The live router; ``deps`` is dispatch.deps (roles), ``authenticate_token(app, token)``
    resolves a token to a principal (or None) for the streams."""
    router = APIRouter(tags=["live"])
    any_role = deps.require_roles("operator", "dispatcher", "department", "grid_worker", "viewer")
    operator = deps.require_roles("operator")
    commander = deps.require_roles("operator", "dispatcher")

    @router.get("/api/v1/live/config", summary="Map settings for the pages (tile URL, display CRS)")
    async def live_config(request: Request) -> dict[str, Any]:
        s = request.app.state.live_settings
        return {"tile_url": getattr(s, "tile_url", None), "display_crs": getattr(s, "display_crs", "wgs84"),
                "tile_attribution": getattr(s, "tile_attribution", None)}

    @router.get("/api/v1/live/drones", summary="Last position, short track and recent events per drone")
    async def live_drones(request: Request, _p: Any = Depends(any_role)) -> dict[str, Any]:
        hub = _hub(request)
        return {"drones": hub.drones.snapshot(), "last_id": hub.cursor}

    @router.websocket("/api/v1/live/ws")
    async def live_ws(websocket: WebSocket) -> None:
        hub = _hub(websocket)
        principal, status = await asyncio.to_thread(_stream_auth, websocket.app, websocket.client,
                                                    websocket.headers, websocket.query_params)
        if principal is None:
            await websocket.close(code=1008 if status == 401 else 1013,
                                  reason="missing or invalid token or ticket" if status == 401 else "too many failures")
            return
        try:
            flt = _build_filter(principal, websocket.query_params)
            after = _after(websocket.query_params.get("after"), "after")
            batched = websocket.query_params.get("batch", "0") not in ("0", "", "false")
        except ValueError as e:
            await websocket.accept()
            await websocket.send_text(json.dumps({"id": None, "topic": "error", "data": {"detail": str(e)}},
                                                 ensure_ascii=False))
            await websocket.close(code=4400, reason=str(e)[:120])
            return
        await websocket.accept()
        refusal = await hub.replay_refusal(after)
        sub = hub.subscribe(flt, None if refusal else after)
        watch = _AuthWatch(websocket.app, principal)
        revoked = False
        try:
            await websocket.send_text(_hello(hub, principal, sub.skip_upto).encoded)
            if refusal:
                await websocket.send_text(drone_event("resync", refusal).encoded)

            async def send_loop() -> None:
                nonlocal revoked
                async for batch, frame in _batches(hub, sub):
                    if not await watch.still_valid():
                        revoked = True
                        return
                    if batch is None:
                        continue
                    if not batch:
                        await websocket.send_text('{"id":null,"topic":"ping","data":{}}')
                    elif batched:  # ?batch=1: one frame, a JSON array of the events ready now
                        await websocket.send_text(frame or "[" + ",".join(ev.encoded for ev in batch) + "]")
                    else:
                        for ev in batch:
                            await websocket.send_text(ev.encoded)

            async def recv_loop() -> None:
                while True:
                    msg = await websocket.receive()
                    if msg["type"] == "websocket.disconnect":
                        return

            tasks = [asyncio.create_task(send_loop()), asyncio.create_task(recv_loop())]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            for t in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            for t in done:
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    t.result()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            hub.unsubscribe(sub)
            if websocket.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    # 1013 "try again later": the client fell behind; reconnect with ?after=
                    # 4401: the token was revoked or expired (do not reconnect with it)
                    await websocket.close(code=4401 if revoked else 1013 if sub.lagged else 1000)

    @router.get("/api/v1/live/sse", summary="Server-Sent Events stream of tickets and drones",
                response_class=StreamingResponse)
    async def live_sse(request: Request) -> Any:
        hub = _hub(request)
        principal, status = await asyncio.to_thread(_stream_auth, request.app, request.client,
                                                    request.headers, request.query_params)
        if principal is None:
            return JSONResponse({"detail": "missing or invalid token or ticket" if status == 401
                                 else "too many failed attempts from this address"}, status_code=status)
        try:
            flt = _build_filter(principal, request.query_params)
            after = _after(request.headers.get("last-event-id"), "Last-Event-ID")
            if after is None:
                after = _after(request.query_params.get("after"), "after")
        except ValueError as e:
            return JSONResponse({"detail": str(e)}, status_code=422)
        refusal = await hub.replay_refusal(after)
        sub = hub.subscribe(flt, None if refusal else after)
        watch = _AuthWatch(request.app, principal)

        async def body() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                yield f"event: hello\ndata: {_hello(hub, principal, sub.skip_upto).encoded}\n\n"
                if refusal:  # a plain message (onmessage); id: the head, where a reconnect resumes
                    yield f"id: {sub.skip_upto}\ndata: {drone_event('resync', refusal).encoded}\n\n"
                async for batch, _frame in _batches(hub, sub):
                    if not await watch.still_valid():
                        yield 'event: revoked\ndata: {"detail": "token revoked or expired"}\n\n'
                        return
                    if batch is not None:
                        yield _sse_chunk(batch) if batch else ": ping\n\n"
            finally:
                hub.unsubscribe(sub)

        return StreamingResponse(body(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.post("/api/v1/telemetry", status_code=202, summary="Drone telemetry and flight events -> live streams")
    async def post_telemetry(batch: TelemetryBatch, request: Request, _p: Any = Depends(operator)) -> dict[str, Any]:
        hub = _hub(request)
        _check_drone_count(batch, hub, request.app.state.live_settings)
        evs = [drone_event("drone.telemetry", r.model_dump(), r.wall_time) for r in batch.records]
        evs += [drone_event("drone.event", e.model_dump(), e.wall_time) for e in batch.events]
        if evs:
            await hub.publish_drone("drone.batch", evs)
        return {"records": len(batch.records), "events": len(batch.events)}

    @router.post("/api/v1/drones/{drone_id}/commands", status_code=201, summary="Command a drone (rtl, hold, resume)")
    async def post_command(drone_id: str, body: CommandIn, request: Request,
                           principal: Any = Depends(commander)) -> dict[str, Any]:
        if not drone_id or len(drone_id) > 64:
            raise HTTPException(422, "drone_id: must be 1..64 characters")
        hub = _hub(request)
        cmd = await asyncio.to_thread(store.command_add, hub.engine, drone_id, body.action,
                                      getattr(principal, "name", "?"), body.note)
        await hub.publish_drone("drone.command", [drone_event("drone.command", cmd)])
        return cmd

    @router.get("/api/v1/drones/commands", summary="Drone commands after an id (the flight reporter polls this)")
    async def get_commands(request: Request, drone_id: str | None = Query(None, max_length=64),
                           after: int = Query(0, ge=0, le=MAX_EVENT_ID), limit: int = Query(200, ge=1, le=1000),
                           _p: Any = Depends(commander)) -> dict[str, Any]:
        cmds = await asyncio.to_thread(store.commands_after, _hub(request).engine, drone_id, after, limit)
        return {"commands": cmds}

    @router.put("/api/v1/plan", summary="Store the current patrol plan (skygrid.plan/1 JSON)")
    async def put_plan(request: Request, principal: Any = Depends(operator)) -> dict[str, Any]:
        from geo.plan_schema import Plan, PlanFormatError

        try:
            body = await request.json()
        except ValueError as e:
            raise HTTPException(422, f"body: invalid JSON: {e}") from None
        if not isinstance(body, dict):
            raise HTTPException(422, "body: the plan must be a JSON object")
        try:
            plan = Plan.from_dict(body, source="plan")
        except PlanFormatError as e:
            raise HTTPException(422, f"{e}{locate_plan_error(body)}") from None
        hub = _hub(request)
        updated_at = await asyncio.to_thread(store.plan_put, hub.engine, plan.to_dict(),
                                             getattr(principal, "name", "?"))
        info = {"updated_at": updated_at, "grids": len(plan.grids), "sorties": len(plan.sorties),
                "drones": plan.drones}
        await hub.publish_drone("plan.updated", [drone_event("plan.updated", info)])
        return info

    @router.get("/api/v1/plan", summary="The current patrol plan (404 when none was uploaded)")
    async def get_plan(request: Request, _p: Any = Depends(any_role)) -> Any:
        got = await asyncio.to_thread(store.plan_get, _hub(request).engine)
        if got is None:
            raise HTTPException(404, "no plan uploaded yet (PUT /api/v1/plan)")
        plan, updated_at, updated_by = got
        return JSONResponse(plan, headers={"X-Plan-Updated-At": updated_at,
                                                  "X-Plan-Updated-By": quote(updated_by)})

    return router
