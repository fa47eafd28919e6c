"""tickets: the 派单 assignment (department, person, deadline, instructions) and the 考核
score, so the command room can route like a county office and assess every closed case.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dispatch.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = (
    ("assigned_department", lambda: sa.String(64)),
    ("assignee", lambda: sa.String(200)),
    ("assigned_due_at", UTCDateTime),
    ("instructions", sa.Text),
    ("score", sa.Integer),
)


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        for name, typ in COLUMNS:
            batch.add_column(sa.Column(name, typ(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
