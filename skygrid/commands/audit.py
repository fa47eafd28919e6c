"""`skygrid audit verify`: check the dispatch audit log's hash chain for tampering."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Every mutating call to the dispatch API appends an entry to an append-only audit log in
which each entry carries the hash of the previous one. `verify` recomputes the chain and
reports edited, deleted, inserted or truncated entries. Exit status 0 = intact, 1 = broken.

Someone with write access to the database could rewrite the tail and recompute every
hash. Against that, sign checkpoints with a key kept outside the database and store them
elsewhere (append-only), e.g. from cron every 5 minutes:
    SKYGRID_AUDIT_KEY_FILE=/etc/skygrid/audit.key skygrid audit checkpoint --out /mnt/worm/audit.jsonl
    SKYGRID_AUDIT_KEY_FILE=/etc/skygrid/audit.key skygrid audit verify --checkpoints /mnt/worm/audit.jsonl
What this proves and does not: see docs/operations.md (audit anchoring).
"""


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser("audit", help=help_text, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="audit_command", metavar="{verify,checkpoint}", required=True)
    v = sub.add_parser("verify", help="recompute the hash chain and report breaks")
    v.add_argument("--db", help="database URL (default: SKYGRID_DATABASE_URL or sqlite:///work/skygrid.db)")
    v.add_argument("--checkpoints", help="signed checkpoint file to check too (needs SKYGRID_AUDIT_KEY[_FILE])")
    c = sub.add_parser("checkpoint", help="append a signed checkpoint of the chain head to a file")
    c.add_argument("--db", help="database URL (default as for verify)")
    c.add_argument("--out", required=True, help="checkpoint file (JSON lines), kept outside the database host")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from rich.console import Console
    from sqlalchemy import inspect

    from dispatch.audit import checkpoint, load_key, verify, verify_checkpoints
    from dispatch.core.config import Settings
    from dispatch.core.db import make_engine, make_sessionmaker

    console = Console()
    url = args.db or Settings.from_env().database_url
    engine = make_engine(url)
    if "audit_log" not in inspect(engine).get_table_names():
        console.print(f"[red]no audit log in {engine.url.render_as_string(hide_password=True)}[/]")
        return 1
    try:
        key = load_key()
    except ValueError as e:
        console.print(f"[red]error:[/] {e}")
        return 2
    if (args.audit_command == "checkpoint" or getattr(args, "checkpoints", None)) and key is None:
        console.print("[red]error:[/] set SKYGRID_AUDIT_KEY or SKYGRID_AUDIT_KEY_FILE (the key lives outside the DB)")
        return 2
    if args.audit_command == "checkpoint":
        with make_sessionmaker(engine)() as s:
            cp = checkpoint(s, key)
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(cp) + "\n")
        console.print(f"checkpoint: entry {cp['id']} -> {args.out}")
        return 0
    with console.status("verifying the audit chain…"), make_sessionmaker(engine)() as s:
        result = verify(s)
        if args.checkpoints:
            try:
                lines = Path(args.checkpoints).read_text(encoding="utf-8").splitlines()
            except OSError as e:
                console.print(f"[red]error:[/] --checkpoints: cannot read {args.checkpoints}: {e.strerror}")
                return 2
            more = verify_checkpoints(s, lines, key, args.checkpoints)
            result.problems += more
            result.ok = result.ok and not more
            if not more:
                console.print(f"checkpoints: {sum(1 for x in lines if x.strip())} signed checkpoints hold")
    if result.ok:
        console.print(f"[green]audit chain intact[/]: {result.entries} entries")
        return 0
    console.print(f"[red]audit chain BROKEN[/] ({result.entries} entries read):")
    for p in result.problems:
        console.print(f"  - {p}")
    return 1
