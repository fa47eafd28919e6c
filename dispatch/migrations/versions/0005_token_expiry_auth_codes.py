"""Token lifetimes and one-time codes: ``api_tokens.expires_at`` (NULL = no expiry, only
for bootstrap/CI tokens) and ``auth_codes``, the short-lived single-use codes that stand
in for a token where a URL must carry something (live-stream tickets, login links).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dispatch.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as b:
        b.add_column(sa.Column("expires_at", UTCDateTime(), nullable=True))
    op.create_table(
        "auth_codes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("token_id", sa.Integer(), sa.ForeignKey("api_tokens.id"), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_auth_codes_expires", "auth_codes", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_auth_codes_expires", "auth_codes")
    op.drop_table("auth_codes")
    with op.batch_alter_table("api_tokens") as b:
        b.drop_column("expires_at")
