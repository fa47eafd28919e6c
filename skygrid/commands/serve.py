"""`skygrid serve`: run the dispatch API (and command room) under uvicorn; manage tokens."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Run the dispatch server: incidents -> joint-inspection tickets (综合查一次) with SLA
timers and tiered escalation, the REST API (/docs), Open311 (/open311/v2) and the pages.
The store is a SQLite file in WAL mode by default (--db sqlite:///work/skygrid.db) or
PostgreSQL (--db postgresql+psycopg://user@host/db); migrations run at startup.
Settings not given here come from SKYGRID_* environment variables (see
dispatch.core.config.Settings).

Tokens:  skygrid serve token create --role dispatcher --name 值班长 --expires 90d
         skygrid serve token create --role grid_worker --name 朱红霞 --grid 330603-YXQ-001
         skygrid serve token rotate 7 --grace 1h      (new secret; the old one ends in 1 h)
         skygrid serve token login-link 7 --base http://host:8000 --page /worker
Tokens expire (90 days unless --expires says otherwise; 'never' only for service accounts).
A login link holds a one-time code, not the token: opening it sets an HttpOnly session
cookie and leads to the page's clean URL.
"""


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser("serve", help=help_text, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: %(default)s)")
    p.add_argument("--db", help="database URL (default: SKYGRID_DATABASE_URL or sqlite:///work/skygrid.db)")
    p.add_argument("--grids", help="grid polygons (GeoJSON/KML/Shapefile) with grid_worker, area_type properties")
    p.add_argument("--crs", choices=["wgs84", "gcj02", "bd09"],
                   help="CRS of the grid file: wgs84, gcj02 or bd09 (default: the file's own declaration, else "
                        "SKYGRID_GRIDS_CRS, the same setting `skygrid plan` uses; required when neither says)")
    p.add_argument("--routing", help="routing rules YAML (default: the packaged dispatch/defaults/routing.yaml)")
    p.add_argument("--evidence-dir", help="folder for evidence images (default: work/evidence)")
    p.add_argument("--log-level", default="info", help="uvicorn log level (default: %(default)s)")
    p.set_defaults(func=run)
    sub = p.add_subparsers(dest="serve_command", metavar="{token,migrate}")
    mg = sub.add_parser("migrate", help="bring the database schema to this version's head and exit (数据库迁移)",
                        description="Run the packaged Alembic migrations up to head and exit (also what every "
                                    "`skygrid serve` does at startup unless SKYGRID_RUN_MIGRATIONS=false). "
                                    "Run it once before starting upgraded replicas. Safe to repeat; concurrent "
                                    "runs on PostgreSQL are serialised by an advisory lock.")
    mg.add_argument("--db", dest="token_db", metavar="URL", help="database URL (default as for serve)")
    mg.add_argument("--check", action="store_true",
                    help="change nothing; exit 1 when the database is not at head (for deploy scripts)")
    tok = sub.add_parser("token", help="manage API tokens")
    tsub = tok.add_subparsers(dest="token_command", metavar="{create,list,revoke,rotate,login-link}", required=True)
    c = tsub.add_parser("create", help="create a token and print it (shown once; stored hashed)")
    c.add_argument("--role", required=True, choices=["operator", "dispatcher", "department", "grid_worker", "viewer"])
    c.add_argument("--name", required=True, help="who holds the token (person or system)")
    c.add_argument("--grid", action="append", dest="grids_", metavar="ID", help="grid id (grid_worker; repeatable)")
    c.add_argument("--expires", default="90d", help="lifetime: 90d, 12h, 30m, 2w or 'never' (default: %(default)s)")
    c.add_argument("--db", dest="token_db", help="database URL (default as for serve)")
    ro = tsub.add_parser("rotate", help="issue a successor of a token (same role/grids) and end the old one")
    ro.add_argument("id", type=int)
    ro.add_argument("--grace", default="1h", help="how long the old token keeps working (default: %(default)s)")
    ro.add_argument("--expires", default="90d", help="lifetime of the new token (default: %(default)s)")
    ro.add_argument("--db", dest="token_db")
    ll = tsub.add_parser("login-link", help="print a one-time login link (12 h) for a token's pages")
    ll.add_argument("id", type=int)
    ll.add_argument("--base", default="http://127.0.0.1:8000", help="server URL (default: %(default)s)")
    ll.add_argument("--page", default="/", help="page path: /, /worker, /operator, /stats, ... (default: %(default)s)")
    ll.add_argument("--valid", default="12h", help="how long the link may be used (default: %(default)s)")
    ll.add_argument("--db", dest="token_db")
    ls = tsub.add_parser("list", help="list tokens (never the secrets)")
    ls.add_argument("--db", dest="token_db")
    rv = tsub.add_parser("revoke", help="revoke a token by id")
    rv.add_argument("id", type=int)
    rv.add_argument("--db", dest="token_db")
    return p


def _settings(args: argparse.Namespace, db: str | None = None):
    from dispatch.core.config import Settings

    return Settings.from_env(database_url=db or getattr(args, "db", None), grids_file=getattr(args, "grids", None),
                             grids_crs=getattr(args, "crs", None), routing_file=getattr(args, "routing", None),
                             evidence_dir=getattr(args, "evidence_dir", None))


def _token(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta
    from urllib.parse import urlencode

    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import select

    from dispatch import audit
    from dispatch.core.db import make_engine, make_sessionmaker, upgrade, write_transaction
    from dispatch.core.security import (
        LOGIN_CODE_TTL,
        issue_code,
        issue_token,
        parse_duration,
        rotate_token,
        token_active,
    )
    from dispatch.models import ApiToken

    st = _settings(args, args.token_db)
    engine = make_engine(st.database_url)
    upgrade(engine)
    sm = make_sessionmaker(engine)
    err = Console(stderr=True)
    try:
        if args.token_command == "create":
            ttl = parse_duration(args.expires)
            with write_transaction(sm) as s:
                token = issue_token(s, args.role, args.name, args.grids_,
                                    datetime.now(UTC) + ttl if ttl else None)
            print(token)
            return 0
        if args.token_command == "rotate":
            grace, ttl = parse_duration(args.grace) or timedelta(0), parse_duration(args.expires)
            with write_transaction(sm) as s:
                token, row = rotate_token(s, args.id, grace, datetime.now(UTC) + ttl if ttl else None)
            err.print(f"token {args.id} -> new token {row.id}; the old one ends in {args.grace}")
            print(token)
            return 0
        if args.token_command == "login-link":
            ttl = parse_duration(args.valid) or LOGIN_CODE_TTL
            with write_transaction(sm) as s:
                row = s.get(ApiToken, args.id)
                if row is None or not token_active(s, args.id):
                    raise ValueError(f"id: no active token {args.id}")
                code = issue_code(s, args.id, "login", ttl)
            print(f"{args.base.rstrip('/')}/login?{urlencode({'code': code, 'next': args.page})}")
            return 0
    except ValueError as e:
        err.print(f"[red]error:[/] {e}")
        return 2
    if args.token_command == "revoke":
        with write_transaction(sm) as s:
            row = s.get(ApiToken, args.id)
            if row is None:
                Console(stderr=True).print(f"[red]error:[/] id: no token {args.id}")
                return 2
            row.revoked_at = datetime.now(UTC)
            audit.append(s, row.revoked_at, "cli", "token.revoke", f"token:{row.id}", {"name": row.name})
        return 0
    table = Table("id", "name", "role", "grids", "created", "expires", "revoked")
    with sm() as s:
        for t in s.scalars(select(ApiToken).order_by(ApiToken.id)):
            table.add_row(str(t.id), t.name, t.role, ",".join(t.grid_ids or []), t.created_at.isoformat(),
                          t.expires_at.isoformat() if t.expires_at else "never",
                          t.revoked_at.isoformat() if t.revoked_at else "")
    Console().print(table)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    """`skygrid serve migrate`: print ``from -> to`` revisions; with --check, 1 when behind head."""
    from sqlalchemy.exc import SQLAlchemyError

    from dispatch.core.db import current_revision, head_revision, make_engine, upgrade

    st = _settings(args, args.token_db)
    engine = make_engine(st.database_url)
    try:
        before, head = current_revision(engine), head_revision()
        if args.check:
            print(f"数据库版本 database revision: {before or '(empty)'}; head: {head}")
            return 0 if before == head else 1
        upgrade(engine)
        print(f"数据库已迁移 migrated: {before or '(empty)'} -> {current_revision(engine)}")
        return 0
    except SQLAlchemyError as e:
        print(f"错误 error: database {engine.url.render_as_string(hide_password=True)}: {e}")
        return 2
    finally:
        engine.dispose()


def run(args: argparse.Namespace) -> int:
    if getattr(args, "serve_command", None) == "token":
        return _token(args)
    if getattr(args, "serve_command", None) == "migrate":
        return _migrate(args)
    import uvicorn
    from rich.console import Console

    from dispatch.app import SERVER_OPTIONS, create_app
    from dispatch.routing import RoutingError

    console = Console(stderr=True)
    try:
        app = create_app(_settings(args))
    except (RoutingError, ValueError, OSError) as e:
        console.print(f"[red]error:[/] {e}")
        return 2
    console.print(f"dispatch on http://{args.host}:{args.port}  (API docs: /docs)")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, **SERVER_OPTIONS)
    return 0
