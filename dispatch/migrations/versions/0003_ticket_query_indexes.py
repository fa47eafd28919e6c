"""Indexes for the ticket queries measured at 100k tickets: class + time range, tier +
overdue, and latitude/longitude for bounding boxes.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_tickets_class_created": ["class_name", "created_at"],
    "ix_tickets_tier_overdue": ["tier", "overdue"],
    "ix_tickets_latlon": ["lat", "lon"],
}


def upgrade() -> None:
    for name, cols in INDEXES.items():
        op.create_index(name, "tickets", cols)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="tickets")
