"""Engine, sessions and migrations.

SQLite (default, embedded) runs in WAL mode with ``synchronous=NORMAL``: a commit survives
a process crash (the WAL is written before COMMIT returns) and only an OS crash could lose
the last transactions. PostgreSQL by URL (``postgresql+psycopg://...``) for several API
replicas. The schema is created by the Alembic migrations in ``dispatch/migrations``,
run programmatically at startup (no ``alembic`` CLI needed).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
_SQLITE_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def is_sqlite(url_or_engine: str | Engine) -> bool:
    url = str(url_or_engine.url) if isinstance(url_or_engine, Engine) else url_or_engine
    return url.startswith("sqlite")


def make_engine(url: str) -> Engine:
    """Create an engine; for SQLite files make the folder, set WAL, NORMAL sync, FKs, busy wait."""
    if is_sqlite(url):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def writer_lock(engine: Engine) -> threading.RLock:
    """In-process lock serialising writers on one SQLite file (the embedded store is one
    process; PostgreSQL replicas serialise on the audit head row lock instead)."""
    key = str(engine.url)
    with _LOCKS_GUARD:
        return _SQLITE_LOCKS.setdefault(key, threading.RLock())


@contextmanager
def write_transaction(sm: sessionmaker[Session]) -> Iterator[Session]:
    """One mutating unit of work: serialised, committed on success, rolled back on error.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE``: it takes the file's write
    lock before its first read, so a writer in another process (``skygrid serve token
    create`` beside a running server) waits for it (``busy_timeout``, 30 s) instead of both
    reading the same audit head / next id and one failing on commit (the 500s of issue 13
    item 11). Within one process the writer lock keeps threads from queuing in SQLite."""
    engine = sm.kw["bind"]
    sqlite = is_sqlite(engine)
    lock = writer_lock(engine) if sqlite else None
    if lock:
        lock.acquire()
    try:
        with sm() as session, session.begin():
            if sqlite:
                # pysqlite (legacy transaction control) begins only before DML and never
                # before a SELECT; an explicit BEGIN makes it treat the transaction as open
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield session
    finally:
        if lock:
            lock.release()


#: pg_advisory_xact_lock key held while migrating ("SkyG" as an int)
MIGRATION_LOCK_KEY = 0x536B7947


def alembic_config(url: str):
    """An Alembic Config pointing at the packaged migrations (import alembic lazily)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent)."""
    from alembic import command

    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as conn:
        if not is_sqlite(engine):
            # replicas starting at once on an empty PostgreSQL would race to create the same
            # tables (3 of 12 paired starts failed); the transaction-scoped advisory lock
            # serialises them and the second one finds the schema at head
            from sqlalchemy import text

            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    from alembic import command

    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def head_revision() -> str:
    """The newest migration shipped with this copy (what ``upgrade`` brings a database to)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "no migrations packaged"
    return head


def current_revision(engine: Engine) -> str | None:
    from sqlalchemy import inspect, text

    if "alembic_version" not in inspect(engine).get_table_names():
        return None
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


__all__ = [
    "make_engine",
    "make_sessionmaker",
    "write_transaction",
    "upgrade",
    "head_revision",
    "downgrade",
    "current_revision",
    "is_sqlite",
    "select",
]
