"""Live alerts for the command room: WebSocket/SSE streams of tickets and drones, drone
commands and the current plan. ``install(app)`` is called by ``dispatch.app.create_app``.

Wiring: ``install`` creates one :class:`~dispatch.live.hub.LiveHub` per app, sets
``app.state.notify`` (the ticket store calls it after each commit that wrote outbox rows)
and appends a lifespan hook that starts the hub's tailer. Several API processes on one
database each tail it (``SKYGRID_LIVE_POLL_S`` seconds between polls, default 1.0, at
least 0.01; a local commit wakes the tailer at once). A process that only serves streams
while another one takes the writes (an ingest process and a stream process on one
database) should poll at 0.01-0.02 s: an empty poll is one indexed read (~0.3 ms).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["install"]


def _engine_of(app: Any) -> Any:
    """The app's SQLAlchemy engine, from ``app.state`` (engine or a sessionmaker's bind)."""
    st = app.state
    for name in ("engine", "db_engine"):
        eng = getattr(st, name, None)
        if eng is not None:
            return eng
    for name in ("sessionmaker", "session_factory", "sm", "Session"):
        sm = getattr(st, name, None)
        if sm is not None and getattr(sm, "kw", {}).get("bind") is not None:
            return sm.kw["bind"]
    raise RuntimeError("dispatch.live: app.state has no 'engine' or 'sessionmaker' to read the outbox from")


def authenticate_token(app: Any, token: str) -> Any:
    """Token -> principal (None when unknown/revoked), for the streams (Authorization header)."""
    from sqlalchemy.orm import Session

    from dispatch.core.security import authenticate

    with Session(_engine_of(app)) as session:
        return authenticate(session, token)


_heap_frozen = False


def freeze_startup_heap() -> bool:
    """Move everything alive once the app has started (routes, models, the grid index,
    SQLAlchemy metadata: ~135 000 objects) out of the garbage collector's reach, once per
    process. A full collection otherwise walks them all and stalls the event loop, and
    with it every live stream, for ~200 ms at a time (measured under the alerts
    benchmark). Only the first app of a process freezes (a test suite building many apps
    keeps collecting the later ones); ``SKYGRID_GC_FREEZE=0`` turns it off. Returns
    whether this call froze."""
    global _heap_frozen
    if _heap_frozen or os.environ.get("SKYGRID_GC_FREEZE", "1") == "0":
        return False
    _heap_frozen = True
    gc.collect()
    gc.freeze()
    return True


GIL_SWITCH_S = 0.001  # seconds; CPython's default is 0.005


def shorten_gil_switch() -> float:
    """Let a thread waiting for the GIL get it after 1 ms instead of 5 ms (process-wide;
    ``SKYGRID_GIL_SWITCH_S`` overrides, ``0`` leaves the interpreter's value). Returns the
    interval now in force.

    Why: the event loop (fan-out, HTTP) and the ingest transactions (a worker thread,
    ~15 ms of CPU per 25-incident batch) share one GIL. Every socket write of the fan-out
    releases the GIL, and getting it back from a busy thread took up to the 5 ms default
    each time; the ingest thread in turn queued behind the loop. In the alerts benchmark
    (500 incidents/s, 100 clients, one process) the default let the ingest fall behind in
    3 of 5 runs (p99 0.97-1.45 s); at 1 ms it kept up in all 5 (median p99 125 ms on a
    loaded 2-core machine)."""
    raw = os.environ.get("SKYGRID_GIL_SWITCH_S")
    value = GIL_SWITCH_S if raw is None else float(raw)
    if value > 0:
        sys.setswitchinterval(min(value, sys.getswitchinterval()))
    return sys.getswitchinterval()


def _poll_s(settings: Any) -> float:
    value = getattr(settings, "live_poll_s", None) or os.environ.get("SKYGRID_LIVE_POLL_S") or 1.0
    return max(0.01, float(value))


def install(app: Any) -> None:
    """Add the live routes, the hub and its lifespan hook to ``app``."""
    from .api import build_router
    from .deps_shim import deps_module
    from .hub import LiveHub

    settings = getattr(app.state, "settings", None)
    recheck_s = float(getattr(settings, "live_auth_recheck_s", 10.0))
    hub = LiveHub(lambda: _engine_of(app), poll_s=_poll_s(settings), tick_s=min(5.0, recheck_s),
                  auth_recheck_s=recheck_s,
                  replay_max=int(getattr(settings, "live_replay_max_events", 10_000)),
                  retention_s=float(getattr(settings, "live_retention_s", 0.0)),
                  max_drones=int(getattr(settings, "live_max_drones", 500)),
                  drone_stale_s=float(getattr(settings, "live_drone_stale_s", 900.0)))
    app.state.live_hub = hub
    app.state.live_settings = settings
    app.state.notify = hub.notify

    @asynccontextmanager
    async def live_lifespan(app_: Any) -> AsyncIterator[None]:
        app_.state.live_settings = getattr(app_.state, "settings", settings)
        await hub.start()
        freeze_startup_heap()
        shorten_gil_switch()
        try:
            yield
        finally:
            await hub.stop()

    hooks = getattr(app.state, "lifespan_hooks", None)
    if hooks is None:
        hooks = []
        app.state.lifespan_hooks = hooks
    hooks.append(live_lifespan)
    app.include_router(build_router(deps_module(), authenticate_token))
