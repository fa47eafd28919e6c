"""Idempotency keys scoped by source, with a payload hash (issue 13 item 7).

``incidents.external_id`` was unique across every token: a grid worker could post a key
first and the drone's later report under that key was answered 200 "already stored" and
dropped. Now the key is unique per ``source_key`` (``"<role>:<token name>"`` of the poster)
and ``payload_hash`` (SHA-256 of the canonical payload) lets the API refuse, 409, the same
key with a different payload. Existing rows get their source from ``reported_by``
(``"<role>:<name>#<token id>"``); their hash stays NULL (an old key re-sent answers 200).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: SQLite keeps 0001's unique constraint unnamed; batch mode names it by this convention
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _old_unique_name(bind) -> str:
    if bind.dialect.name == "sqlite":
        return "uq_incidents_external_id"
    for uc in sa.inspect(bind).get_unique_constraints("incidents"):
        if uc["column_names"] == ["external_id"]:
            return uc["name"]
    return "incidents_external_id_key"  # PostgreSQL's default name


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("incidents") as b:
        b.add_column(sa.Column("source_key", sa.String(200), nullable=True))
        b.add_column(sa.Column("payload_hash", sa.String(64), nullable=True))
    incidents = sa.table("incidents", sa.column("reported_by", sa.String), sa.column("source_key", sa.String))
    for (who,) in bind.execute(sa.select(incidents.c.reported_by).distinct()).all():
        key = who.rsplit("#", 1)[0] if who else "system"
        cond = incidents.c.reported_by.is_(None) if who is None else incidents.c.reported_by == who
        bind.execute(sa.update(incidents).where(cond).values(source_key=key))
    name = _old_unique_name(bind)
    with op.batch_alter_table("incidents", naming_convention=_NAMING) as b:
        b.alter_column("source_key", existing_type=sa.String(200), nullable=False)
        b.drop_constraint(name, type_="unique")
        b.create_index("uq_incidents_source_external", ["source_key", "external_id"], unique=True)


def downgrade() -> None:
    """Back to global keys; fails (IntegrityError) if two sources now share a key."""
    with op.batch_alter_table("incidents", naming_convention=_NAMING) as b:
        b.drop_index("uq_incidents_source_external")
        b.create_unique_constraint("uq_incidents_external_id", ["external_id"])
        b.drop_column("payload_hash")
        b.drop_column("source_key")
