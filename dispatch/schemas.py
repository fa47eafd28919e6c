"""Request and response models of the HTTP API (they also document it in OpenAPI).

Positions WGS-84 degrees, errors metres, times ISO-8601 (naive times are taken as UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from vision.classes import PATROL_CLASSES

ClassName = Literal[PATROL_CLASSES]  # type: ignore[valid-type]
MAX_ID = 2_147_483_647
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="numeric id")]


#: times a query may name (``since``, ``until``, Open311 dates): wide, but inside what
#: every backend and ``datetime`` arithmetic handle (year 1 and 9999 answered 500)
QUERY_TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
QUERY_TIME_MAX = datetime(2200, 1, 1, tzinfo=UTC)
#: when an observation may have been made (a drone clock reset to year 1 answered 500)
OBSERVED_MIN = datetime(2000, 1, 1, tzinfo=UTC)
OBSERVED_MAX = datetime(2100, 1, 1, tzinfo=UTC)


def query_time(d: datetime | None, field: str) -> datetime | None:
    """A query time as aware UTC (naive = UTC); ApiError 422 naming ``field`` outside
    :data:`QUERY_TIME_MIN`..:data:`QUERY_TIME_MAX`."""
    from dispatch.errors import ApiError

    if d is None:
        return None
    d = d.replace(tzinfo=UTC) if d.tzinfo is None else d
    if not QUERY_TIME_MIN <= d <= QUERY_TIME_MAX:
        raise ApiError(422, f"{field.split('.')[-1]}: {d.isoformat()} is outside {QUERY_TIME_MIN:%Y-%m-%d}.."
                            f"{QUERY_TIME_MAX:%Y-%m-%d}", field)
    return d


class EvidenceIn(BaseModel):
    content_type: Literal["image/jpeg", "image/png"] = Field(description="MIME type; must match the bytes")
    data_b64: str = Field(description="the image, base64 (at most settings.max_evidence_bytes decoded)")
    box: list[float] | None = Field(default=None, min_length=4, max_length=4,
                                    description="the detection's [x1, y1, x2, y2] in image pixels (drone evidence)")


class IncidentIn(BaseModel):
    """An incident from a drone (vision stage) or a grid worker."""

    model_config = ConfigDict(extra="ignore")
    external_id: str = Field(min_length=1, max_length=200, description="client idempotency key")
    source: Literal["drone", "worker"]
    class_name: ClassName
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description="WGS-84 latitude, degrees")
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description="WGS-84 longitude, degrees")
    error_m: float = Field(0.0, ge=0, le=100_000, allow_inf_nan=False, description="1-sigma position error, m")
    confidence: float = Field(1.0, ge=0, le=1, allow_inf_nan=False)
    observed_at: datetime = Field(description="ISO-8601 UTC")
    drone_id: str | None = Field(None, max_length=64)
    sortie_id: str | None = Field(None, max_length=64)
    frames_seen: int = Field(1, ge=0, le=1_000_000)
    evidence: EvidenceIn | None = None

    @field_validator("observed_at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        v = v.replace(tzinfo=UTC) if v.tzinfo is None else v
        if not OBSERVED_MIN <= v <= OBSERVED_MAX:
            raise ValueError(f"observed_at must be within {OBSERVED_MIN:%Y-%m-%d}..{OBSERVED_MAX:%Y-%m-%d}")
        return v.astimezone(UTC)


class IncidentOut(BaseModel):
    incident_id: int
    ticket_id: int
    created: bool


class ActionIn(BaseModel):
    action: str = Field(min_length=1, max_length=40, description="a workflow action, see GET /api/v1/workflow")
    comment: str | None = Field(None, max_length=4000, description="why (recorded with the transition)")
    duplicate_of: int | None = Field(None, ge=1, le=MAX_ID, description="for mark_duplicate: the ticket this one repeats")
    department: str | None = Field(None, max_length=64, description="for route (派单): handling department id "
                                   "(default: the rule's lead department)")
    assignee: str | None = Field(None, max_length=200, description="for route: the person who handles it")
    deadline: datetime | None = Field(None, description="for route: handle by (ISO-8601; naive = UTC)")
    instructions: str | None = Field(None, max_length=4000, description="for route: 处置要求 for the handler")
    score: int | None = Field(None, ge=0, le=100, description="for assess (考核): score 0-100")

    @field_validator("deadline")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else (v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC))


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class VerdictIn(BaseModel):
    """The command room's verdict on a ticket's evidence (确认 / 标记误报): labelled data for
    ``skygrid vision harvest``. ``box``: the detection's [x1, y1, x2, y2] in evidence-image pixels,
    when the room knows it."""

    verdict: Literal["confirmed", "false_alarm"]
    box: list[float] | None = Field(default=None, min_length=4, max_length=4)
    comment: str | None = Field(default=None, max_length=4000)


class WorkerOut(BaseModel):
    id: str | None
    name: str | None
    phone: str | None


class SlaOut(BaseModel):
    stage: str | None
    stage_started_at: str | None
    due_at: str | None


class TicketOut(BaseModel):
    """A joint-inspection ticket (综合查一次)."""

    id: int
    class_name: str
    class_label: str
    status: str
    status_label: str
    tier: str
    priority: int = Field(description="0 = P0, highest")
    priority_label: str
    lat: float
    lon: float
    error_m: float
    grid_id: str
    grid_name: str | None
    area_type: str
    worker: WorkerOut
    lead_department: str
    co_departments: list[str]
    departments: list[str]
    checklist: list[dict[str, Any]]
    incident_count: int
    max_confidence: float
    first_seen_at: str
    last_seen_at: str
    created_at: str
    updated_at: str
    sla: SlaOut
    overdue: bool
    escalations: int
    duplicate_of: int | None
    closed_at: str | None
    evidence_url: str | None
    allowed_actions: list[str]
    assignment: dict[str, Any] | None = None
    score: int | None = None


class TicketPage(BaseModel):
    items: list[TicketOut]
    total: int
    limit: int
    offset: int


class EventOut(BaseModel):
    id: int
    at: str
    kind: str
    action: str | None
    from_status: str | None
    to_status: str | None
    actor: str
    actor_role: str | None
    comment: str | None
    stage: str | None
    duration_s: float | None
    on_time: bool | None
    data: dict[str, Any]


class TicketDetail(TicketOut):
    events: list[EventOut]
    incidents: list[dict[str, Any]]


class ErrorOut(BaseModel):
    detail: Any
    field: str | None = None
