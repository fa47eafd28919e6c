"""The dispatch app factory: ``create_app(settings, clock) -> FastAPI``.

Creating the app prepares the store synchronously (Alembic migrations, departments from
the routing rules, grids and workers from the grid file, bootstrap tokens), so a bad file
fails before a server starts. The lifespan enters the hooks other modules registered in
``app.state.lifespan_hooks`` (live streams...) and runs the SLA checker task.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from dispatch.core.clock import Clock, SystemClock
from dispatch.core.config import Settings
from dispatch.core.db import make_engine, make_sessionmaker, upgrade, write_transaction
from dispatch.core.headers import SecurityHeaders, content_security_policy
from dispatch.core.logs import install_redaction
from dispatch.core.security import store_token
from dispatch.core.throttle import FailureThrottle
from dispatch.deps import authenticate_scope
from dispatch.errors import ApiError
from dispatch.grids import load_grid_index, sync_grids
from dispatch.guard import EdgeGuard, sanitize, validation_error_handler
from dispatch.models import Department, Ticket
from dispatch.outbox import notify
from dispatch.routing import load_routing
from dispatch.service import Runtime, check_sla
from dispatch.workflow import default_workflow

log = logging.getLogger("skygrid.dispatch")

DESCRIPTION = """\
SkyGrid dispatch: incidents from drones and grid workers become joint-inspection tickets
(综合查一次) that run the closed loop 受理 → 分析 → 流转 → 处置 → 督办 → 考核 with SLA
clocks and tiered escalation (village → town → district).

Authenticate with `Authorization: Bearer <token>` (`skygrid serve token create`); the pages
use an HttpOnly session cookie (`POST /api/v1/session`) and live streams a one-use `?ticket=`.
Errors name the field: `{"detail": "...", "field": "body.lat"}`.
"""


def prepare_store(app: FastAPI) -> None:
    """Migrate, then sync departments, grids, workers and bootstrap tokens (idempotent)."""
    st: Settings = app.state.settings
    rt: Runtime = app.state.runtime
    if st.run_migrations:
        upgrade(app.state.engine)
    with write_transaction(app.state.sessionmaker) as s:
        for d in rt.routing.spec.departments:
            row = s.get(Department, d.id) or Department(id=d.id)
            row.name, row.checklist = d.name, [i.model_dump() for i in d.checklist]
            s.add(row)
        sync_grids(s, rt.grids)
        for token, spec in st.bootstrap_tokens.items():
            store_token(s, token, spec.role, spec.name, spec.grid_ids)


def run_sla_check(app: FastAPI, now: datetime | None = None) -> list[int]:
    """Escalate every ticket whose stage clock has run out (at ``now`` or the app clock)."""
    rt: Runtime = app.state.runtime
    done: list[int] = []
    when = now or rt.clock.now()
    with app.state.sessionmaker() as s:  # cheap read first: most checks find nothing due
        if s.scalar(select(Ticket.id).where(Ticket.sla_due_at <= when).limit(1)) is None:
            return done
    while True:
        with write_transaction(app.state.sessionmaker) as s:
            ids = check_sla(s, rt, now)
        done += ids
        if ids:
            notify(app)
        if len(ids) < 500:
            return done


async def _sla_loop(app: FastAPI) -> None:
    interval = app.state.settings.sla_check_interval_s
    while True:
        try:
            await run_in_threadpool(run_sla_check, app)
        except Exception:  # keep checking: a transient DB error must not stop the timers
            log.exception("SLA check failed")
        await asyncio.sleep(interval)


@asynccontextmanager
async def lifespan(app: FastAPI):
    async with AsyncExitStack() as stack:
        for hook in list(app.state.lifespan_hooks):
            await stack.enter_async_context(hook(app))
        task = asyncio.create_task(_sla_loop(app)) if app.state.settings.sla_background else None
        try:
            yield
        finally:
            if task:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
    app.state.engine.dispose()


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(sanitize(exc.body()), status_code=exc.status, headers=exc.headers)


def install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` with their scripts served from here, not a CDN
    (a command room offline still gets its API docs). The assets are the ones the
    ``fastapi-offline`` package ships; nothing is downloaded at run time."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from fastapi_offline.core import _STATIC_PATH

    app.mount("/static/docs", StaticFiles(directory=_STATIC_PATH), name="docs-static")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{title} - Swagger UI",
                                   oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
                                   swagger_js_url=f"{root}/static/docs/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}/static/docs/swagger-ui.css",
                                   swagger_favicon_url=f"{root}/static/docs/favicon.png")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{title} - ReDoc",
                              redoc_js_url=f"{root}/static/docs/redoc.standalone.js",
                              redoc_favicon_url=f"{root}/static/docs/favicon.png", with_google_fonts=False)


#: uvicorn options for serving the dispatch app (``uvicorn.run(app, **SERVER_OPTIONS, ...)``):
#: no WebSocket permessage-deflate, since every client would get each live frame compressed
#: separately (measured 304 vs 66 us of server CPU per 30 kB frame at 100 clients;
#: bench/bench_alerts.py). Used by ``skygrid serve``, the patrol's in-process server and the
#: browser tests, so all serve the live streams the same way. ``ws_max_size``: the streams
#: take nothing from clients, so an incoming WebSocket message over 64 KiB closes the
#: connection (uvicorn's default would buffer up to 16 MiB per message).
SERVER_OPTIONS: dict[str, object] = {"ws_per_message_deflate": False, "ws_max_size": 64 * 1024}


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """Build the dispatch app (see module doc). ``clock`` defaults to the system clock."""
    settings = settings or Settings.from_env()
    clock = clock or SystemClock()
    routing = load_routing(settings.routing_file)
    grids = load_grid_index(settings.grids_file, settings.grids_crs)
    engine = make_engine(settings.database_url)
    app = FastAPI(title="SkyGrid dispatch", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.clock = clock
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.runtime = Runtime(settings=settings, routing=routing, workflow=default_workflow(), grids=grids,
                                clock=clock)
    app.state.lifespan_hooks = []
    app.state.notify = lambda: None
    app.state.run_sla_check = lambda now=None: run_sla_check(app, now)
    app.state.auth_throttle = FailureThrottle(settings.auth_fail_limit, settings.auth_fail_window_s)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    # limits, token and JSON checks before any body is read or parsed (dispatch/guard.py)
    app.add_middleware(EdgeGuard, settings=settings, authenticate=authenticate_scope)
    # outermost: every answer, the guard's refusals included, carries the security headers
    app.add_middleware(SecurityHeaders, csp=content_security_policy(settings.tile_url))
    install_redaction()
    install_docs(app)

    from dispatch.api import (
        directory,
        evidence,
        export,
        incidents,
        open311,
        planner,
        replay,
        session,
        stats,
        tickets,
    )

    for mod in (incidents, tickets, directory, stats, evidence, open311, export, replay, planner, session):
        app.include_router(mod.router)

    @app.get("/healthz", tags=["meta"], responses={503: {"description": "database unreachable"}})
    def healthz() -> JSONResponse:
        """Liveness for load balancers, compose and systemd: 200 only when the database answers
        (a process up with its database gone must not count as healthy), else 503."""
        try:
            with app.state.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as e:
            log.warning("healthz: database unreachable: %s", type(e).__name__)
            return JSONResponse({"ok": False, "database": "unreachable"}, status_code=503)
        return JSONResponse({"ok": True, "grids": len(grids), "database": "ok"})

    prepare_store(app)
    for name in ("dispatch.live", "dispatch.web"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        install = getattr(module, "install", None)
        if callable(install):  # a folder without __init__ (static files only) has none
            install(app)
    return app
