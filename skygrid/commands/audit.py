"""`skygrid audit verify`: check the dispatch audit log's hash chain for tampering."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Every mutating call to the dispatch API appends an entry to an append-only audit log in
which each entry carries the hash of the previous one. `verify` recomputes the chain and
reports edited, deleted, inserted or truncated entries. Exit status 0 = intact, 1 = broken.
"""


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser("audit", help=help_text, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="audit_command", metavar="{verify}", required=True)
    v = sub.add_parser("verify", help="recompute the hash chain and report breaks")
    v.add_argument("--db", help="database URL (default: SKYGRID_DATABASE_URL or sqlite:///work/skygrid.db)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from sqlalchemy import inspect

    from dispatch.audit import verify
    from dispatch.core.config import Settings
    from dispatch.core.db import make_engine, make_sessionmaker

    console = Console()
    url = args.db or Settings.from_env().database_url
    engine = make_engine(url)
    if "audit_log" not in inspect(engine).get_table_names():
        console.print(f"[red]no audit log in {engine.url.render_as_string(hide_password=True)}[/]")
        return 1
    with console.status("verifying the audit chain…"), make_sessionmaker(engine)() as s:
        result = verify(s)
    if result.ok:
        console.print(f"[green]audit chain intact[/]: {result.entries} entries")
        return 0
    console.print(f"[red]audit chain BROKEN[/] ({result.entries} entries read):")
    for p in result.problems:
        console.print(f"  - {p}")
    return 1
