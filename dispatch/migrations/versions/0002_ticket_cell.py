"""tickets.cell: a ~100 m cell key of the ticket position so that grouping a batch of
incidents looks up nearby open tickets with one indexed query (see dispatch.service.cell_of).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from dispatch.service import cell_of

    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("cell", sa.BigInteger(), nullable=True))
    op.create_index("ix_tickets_cell", "tickets", ["class_name", "cell"])
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, lat, lon FROM tickets")).all()
    if rows:
        conn.execute(sa.text("UPDATE tickets SET cell = :cell WHERE id = :id"),
                     [{"id": r[0], "cell": cell_of(r[1], r[2])} for r in rows])


def downgrade() -> None:
    op.drop_index("ix_tickets_cell", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("cell")
