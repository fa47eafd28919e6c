"""initial schema: tickets, incidents, grids, departments, workers, events, tokens,
hash-chained append-only audit log (triggers refuse UPDATE/DELETE), live_events outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 21:30:24.817566
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import dispatch.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("grid_ids", sa.JSON(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", dispatch.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", dispatch.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", dispatch.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "departments",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("checklist", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "evidence",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=400), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("uploaded_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", dispatch.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evidence_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_evidence_ticket_id"), ["ticket_id"], unique=False)

    op.create_table(
        "grid_workers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "live_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", dispatch.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("topic", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("grid_id", sa.String(length=64), nullable=True),
        sa.Column("tier", sa.String(length=20), nullable=True),
        sa.Column("class_name", sa.String(length=40), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("live_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_live_events_grid_id"), ["grid_id"], unique=False)

    op.create_table(
        "grids",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("township", sa.String(length=200), nullable=True),
        sa.Column("village", sa.String(length=200), nullable=True),
        sa.Column("area_type", sa.String(length=20), nullable=False),
        sa.Column("worker_id", sa.String(length=64), nullable=True),
        sa.Column("polygon_wkt", sa.Text(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["grid_workers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("class_name", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("tier", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("error_m", sa.Float(), nullable=False),
        sa.Column("sum_w", sa.Float(), nullable=False),
        sa.Column("sum_wlat", sa.Float(), nullable=False),
        sa.Column("sum_wlon", sa.Float(), nullable=False),
        sa.Column("grid_id", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.String(length=64), nullable=True),
        sa.Column("area_type", sa.String(length=20), nullable=False),
        sa.Column("lead_department", sa.String(length=64), nullable=False),
        sa.Column("co_departments", sa.JSON(), nullable=False),
        sa.Column("checklist", sa.JSON(), nullable=False),
        sa.Column("incident_count", sa.Integer(), nullable=False),
        sa.Column("max_confidence", sa.Float(), nullable=False),
        sa.Column("first_seen_at", dispatch.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", dispatch.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", dispatch.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", dispatch.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stage_started_at", dispatch.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sla_stage", sa.String(length=20), nullable=True),
        sa.Column("sla_due_at", dispatch.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("duplicate_of", sa.Integer(), nullable=True),
        sa.Column("closed_at", dispatch.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("evidence_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["duplicate_of"],
            ["tickets.id"],
        ),
        sa.ForeignKeyConstraint(
            ["evidence_id"],
            ["evidence.id"],
        ),
        sa.ForeignKeyConstraint(
            ["grid_id"],
            ["grids.id"],
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["grid_workers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_created", ["created_at"], unique=False)
        batch_op.create_index("ix_tickets_due", ["sla_due_at"], unique=False)
        batch_op.create_index("ix_tickets_grid_status", ["grid_id", "status"], unique=False)
        batch_op.create_index("ix_tickets_group", ["class_name", "status", "lat"], unique=False)
        batch_op.create_index("ix_tickets_status", ["status"], unique=False)

    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("class_name", sa.String(length=40), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("error_m", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("observed_at", dispatch.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", dispatch.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("drone_id", sa.String(length=64), nullable=True),
        sa.Column("sortie_id", sa.String(length=64), nullable=True),
        sa.Column("frames_seen", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("evidence_id", sa.Integer(), nullable=True),
        sa.Column("reported_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["evidence_id"],
            ["evidence.id"],
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_id"),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incidents_ticket_id"), ["ticket_id"], unique=False)

    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("at", dispatch.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=True),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("actor_role", sa.String(length=20), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("stage", sa.String(length=20), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("on_time", sa.Boolean(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ticket_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_events_ticket_id"), ["ticket_id"], unique=False)

    op.bulk_insert(
        sa.table(
            "audit_head",
            sa.column("id", sa.Integer),
            sa.column("last_id", sa.Integer),
            sa.column("last_hash", sa.String),
        ),
        [{"id": 1, "last_id": 0, "last_hash": "0" * 64}],
    )
    _append_only_triggers()


def _append_only_triggers() -> None:
    """The audit log refuses UPDATE and DELETE at the database level."""
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )
    elif op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )


def _drop_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    elif op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")


def downgrade() -> None:
    _drop_triggers()
    with op.batch_alter_table("ticket_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_events_ticket_id"))

    op.drop_table("ticket_events")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidents_ticket_id"))

    op.drop_table("incidents")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_status")
        batch_op.drop_index("ix_tickets_group")
        batch_op.drop_index("ix_tickets_grid_status")
        batch_op.drop_index("ix_tickets_due")
        batch_op.drop_index("ix_tickets_created")

    op.drop_table("tickets")
    op.drop_table("grids")
    with op.batch_alter_table("live_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_live_events_grid_id"))

    op.drop_table("live_events")
    op.drop_table("grid_workers")
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evidence_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_evidence_sha256"))

    op.drop_table("evidence")
    op.drop_table("departments")
    op.drop_table("audit_log")
    op.drop_table("audit_head")
    op.drop_table("api_tokens")
