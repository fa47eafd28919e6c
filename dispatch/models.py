"""SQLAlchemy 2 models of the dispatch store.

Times are timezone-aware UTC (:class:`UTCDateTime` re-attaches UTC where the backend,
like SQLite, forgets it). Positions are WGS-84 degrees, distances metres, durations
seconds. The schema itself is owned by the Alembic migrations in ``dispatch/migrations``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Department(Base):
    """A department that leads or co-operates on joint inspections (from routing.yaml)."""

    __tablename__ = "departments"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    checklist: Mapped[list[Any]] = mapped_column(default=list)  # [{"id", "text"}]


class GridWorker(Base):
    """A grid worker (网格员); id derived from the phone number, else from the grid."""

    __tablename__ = "grid_workers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))


class Grid(Base):
    """A grid (网格): polygon in WGS-84 (WKT) plus the properties the county supplied."""

    __tablename__ = "grids"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    township: Mapped[str | None] = mapped_column(String(200))
    village: Mapped[str | None] = mapped_column(String(200))
    area_type: Mapped[str] = mapped_column(String(20), default="countryside")
    worker_id: Mapped[str | None] = mapped_column(ForeignKey("grid_workers.id"))
    polygon_wkt: Mapped[str] = mapped_column(Text)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Ticket(Base):
    """One joint inspection (综合查一次) grouping the incidents of one place and time window."""

    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    class_name: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    tier: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(Integer)  # 0 = P0 highest
    lat: Mapped[float] = mapped_column(Float)  # inverse-variance mean of its incidents
    cell: Mapped[int | None] = mapped_column(BigInteger)  # ~100 m grid cell of (lat, lon), for grouping
    lon: Mapped[float] = mapped_column(Float)
    error_m: Mapped[float] = mapped_column(Float)
    sum_w: Mapped[float] = mapped_column(Float)  # running sums for the weighted mean
    sum_wlat: Mapped[float] = mapped_column(Float)
    sum_wlon: Mapped[float] = mapped_column(Float)
    grid_id: Mapped[str] = mapped_column(ForeignKey("grids.id"))
    worker_id: Mapped[str | None] = mapped_column(ForeignKey("grid_workers.id"))
    area_type: Mapped[str] = mapped_column(String(20))
    lead_department: Mapped[str] = mapped_column(String(64))
    co_departments: Mapped[list[Any]] = mapped_column(default=list)
    checklist: Mapped[list[Any]] = mapped_column(default=list)  # [{"id","text","departments"}]
    incident_count: Mapped[int] = mapped_column(Integer, default=1)
    max_confidence: Mapped[float] = mapped_column(Float, default=0.0)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    stage_started_at: Mapped[datetime]
    sla_stage: Mapped[str | None] = mapped_column(String(20))
    sla_due_at: Mapped[datetime | None]
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    closed_at: Mapped[datetime | None]
    evidence_id: Mapped[int | None] = mapped_column(ForeignKey("evidence.id"))
    # 派单: who handles it, by when, with what instructions (migration 0004)
    assigned_department: Mapped[str | None] = mapped_column(String(64))
    assignee: Mapped[str | None] = mapped_column(String(200))
    assigned_due_at: Mapped[datetime | None]
    instructions: Mapped[str | None] = mapped_column(Text)
    score: Mapped[int | None] = mapped_column(Integer)  # 考核 score 0-100, set by assess

    __table_args__ = (
        Index("ix_tickets_group", "class_name", "status", "lat"),
        Index("ix_tickets_cell", "class_name", "cell"),
        Index("ix_tickets_grid_status", "grid_id", "status"),
        Index("ix_tickets_status", "status"),
        Index("ix_tickets_created", "created_at"),
        Index("ix_tickets_due", "sla_due_at"),
        Index("ix_tickets_class_created", "class_name", "created_at"),
        Index("ix_tickets_tier_overdue", "tier", "overdue"),
        Index("ix_tickets_latlon", "lat", "lon"),
    )


class Incident(Base):
    """One observation (a drone's confirmed detection or a grid worker's report)."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(200))
    # whose key it is: "<role>:<token name>" of the poster (migration 0006); external_id is
    # unique per source, so one source can neither claim nor drop another's keys
    source_key: Mapped[str] = mapped_column(String(200))
    # SHA-256 of the canonical payload (dispatch.service.payload_hash); None for rows stored
    # before migration 0006. The same key with another hash is refused (409)
    payload_hash: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(10))
    class_name: Mapped[str] = mapped_column(String(40))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    error_m: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    observed_at: Mapped[datetime]
    received_at: Mapped[datetime]
    drone_id: Mapped[str | None] = mapped_column(String(64))
    sortie_id: Mapped[str | None] = mapped_column(String(64))
    frames_seen: Mapped[int] = mapped_column(Integer, default=1)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    evidence_id: Mapped[int | None] = mapped_column(ForeignKey("evidence.id"))
    reported_by: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("uq_incidents_source_external", "source_key", "external_id", unique=True),)


class Evidence(Base):
    """An evidence image on disk (content-addressed by SHA-256)."""

    __tablename__ = "evidence"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_type: Mapped[str] = mapped_column(String(40))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(400))  # relative to settings.evidence_dir
    ticket_id: Mapped[int | None] = mapped_column(Integer, index=True)  # no FK: avoids a cycle
    kind: Mapped[str] = mapped_column(String(20), default="incident")  # incident | photo
    uploaded_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class TicketEvent(Base):
    """The ticket's history: every transition, escalation, merge, comment and photo."""

    __tablename__ = "ticket_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(30))
    action: Mapped[str | None] = mapped_column(String(30))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str | None] = mapped_column(String(20))
    comment: Mapped[str | None] = mapped_column(Text)
    stage: Mapped[str | None] = mapped_column(String(20))  # SLA stage the event closed
    duration_s: Mapped[float | None] = mapped_column(Float)  # time spent in that stage
    on_time: Mapped[bool | None] = mapped_column(Boolean)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ApiToken(Base):
    """An API token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    grid_ids: Mapped[list[Any] | None] = mapped_column(JSON)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # None: no expiry (bootstrap/CI tokens only)


class AuthCode(Base):
    """A short-lived, single-use code standing in for a token in a URL (SHA-256 stored):
    ``kind`` "stream" (a live-stream ticket, seconds) or "login" (a login link, minutes-hours)."""

    __tablename__ = "auth_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=False)
    used_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Append-only, hash-chained audit log of every mutating call."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the chain's last id and hash; locking it serialises writers across replicas."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class LiveEvent(Base):
    """Transactional outbox for live streams; the id is the resume cursor."""

    __tablename__ = "live_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    topic: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    grid_id: Mapped[str | None] = mapped_column(String(64), index=True)
    tier: Mapped[str | None] = mapped_column(String(20))
    class_name: Mapped[str | None] = mapped_column(String(40))
    priority: Mapped[int | None] = mapped_column(Integer)
