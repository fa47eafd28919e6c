"""POST /api/v1/incidents: ingest one incident (idempotent by external_id); and
POST /api/v1/incidents/batch: many incidents in one request and one transaction.

The batch is for an edge box (a drone's ground station, a vision worker) that posts
incidents in bursts: one request and one commit for up to ``MAX_BATCH`` items instead of
one each (the single POST costs ~10 ms of server time, mostly the transaction; a batch of
50 costs little more than one). Every item gets its own answer, in order: the single
POST's status (201 created, 200 already stored, 409 same key with another payload) with its ids, or that item's error
(status, detail, field named ``items[i].<field>``). A bad item never rejects the others,
and nothing is written for it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, ValidationError

from dispatch.api.common import AUTH_ERRORS, write
from dispatch.core.security import Principal
from dispatch.deps import get_runtime, require_roles
from dispatch.errors import ApiError
from dispatch.evidence import check_image, decode_b64
from dispatch.schemas import ErrorOut, IncidentIn, IncidentOut
from dispatch.service import IncidentData, IngestResult, Runtime, ingest, ingest_many

router = APIRouter(prefix="/api/v1", tags=["incidents"])

MAX_BATCH = 500  # items per batch request
EVIDENCE_BUDGET = 4  # a batch carries at most this many max-size evidence images in all (decoded bytes)


def to_data(body: IncidentIn, rt: Runtime, principal: Principal, field: str = "body") -> IncidentData:
    """Check who may report it and the evidence image, and build the service record (errors
    name ``field``.source / ``field``.evidence...). Grid workers report with source ``worker``."""
    if principal.role == "grid_worker" and body.source != "worker":
        raise ApiError(403, "source: grid workers report with source 'worker'", f"{field}.source")
    latest = rt.clock.now() + timedelta(seconds=rt.settings.max_clock_skew_s)
    if body.observed_at > latest:
        raise ApiError(422, f"observed_at: {body.observed_at.isoformat()} is later than the server's clock allows "
                            f"({latest.isoformat()}: now + SKYGRID_MAX_CLOCK_SKEW_S="
                            f"{rt.settings.max_clock_skew_s:g} s); check the reporting device's clock",
                       f"{field}.observed_at")
    img = None
    if body.evidence is not None:
        limit = rt.settings.max_evidence_bytes
        where = f"{field}.evidence.data_b64"
        if len(body.evidence.data_b64) > (limit * 4) // 3 + 8:
            raise ApiError(413, f"evidence.data_b64: image larger than {limit} bytes", where)
        data = decode_b64(body.evidence.data_b64, where)
        img = check_image(data, body.evidence.content_type, where, limit, rt.settings.max_evidence_pixels)
    return IncidentData(
        external_id=body.external_id, source=body.source, class_name=body.class_name, lat=body.lat,
        lon=body.lon, error_m=body.error_m, confidence=body.confidence, observed_at=body.observed_at,
        drone_id=body.drone_id, sortie_id=body.sortie_id, frames_seen=body.frames_seen, evidence=img,
        evidence_box=tuple(body.evidence.box) if img is not None and body.evidence.box else None,
    )


@router.post(
    "/incidents", status_code=201, response_model=IncidentOut,
    responses={200: {"model": IncidentOut, "description": "already stored (same external_id and payload)"},
               409: {"model": ErrorOut, "description": "external_id already stored from this source with a "
                                                        "different payload (field body.external_id)"},
               413: {"model": ErrorOut}, 415: {"model": ErrorOut}, 422: {"model": ErrorOut}, **AUTH_ERRORS},
    summary="Report an incident (drone detection or grid worker)",
)
def create_incident(
    body: IncidentIn,
    request: Request,
    response: Response,
    principal: Principal = Depends(require_roles("operator", "dispatcher", "grid_worker")),
    rt: Runtime = Depends(get_runtime),
) -> IncidentOut:
    """Store the incident and attach it to a ticket: an open ticket of the same class within
    ``group_radius_m`` and ``group_window_s``, else a new one routed by the rules.
    ``external_id`` is unique per source (the token's role and name): resending the same
    key with the same payload answers 200 with the same ids and ``created: false``; the
    same key with a different payload answers 409 (nothing stored). Grid
    workers may report (source ``worker``) only inside their grids."""
    data = to_data(body, rt, principal)
    res = write(request, lambda s: ingest(s, rt, data, principal))
    if not res.created:
        response.status_code = 200
    return IncidentOut(incident_id=res.incident_id, ticket_id=res.ticket_id, created=res.created)


# ------------------------------------------------------------------------ batch


class IncidentBatchIn(BaseModel):
    """Up to ``MAX_BATCH`` incidents, each exactly the single POST's body. Items are checked
    one by one (a bad item gets its own error), so the list is typed loosely here and
    documented as ``IncidentIn``."""

    items: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_BATCH, description="incidents, each as in POST /api/v1/incidents",
        json_schema_extra={"items": {"$ref": "#/components/schemas/IncidentIn"}})


class IncidentBatchItemOut(BaseModel):
    """One item's answer: ``status`` 201/200 with ids (as the single POST), or an error."""

    index: int = Field(description="position of the item in the request")
    status: int = Field(description="201 created, 200 already stored, else the item's error status")
    incident_id: int | None = None
    ticket_id: int | None = None
    created: bool | None = None
    detail: str | None = Field(None, description="what is wrong with this item")
    field: str | None = Field(None, description="the offending field, e.g. items[3].lat")


class IncidentBatchOut(BaseModel):
    results: list[IncidentBatchItemOut]
    created: int = Field(description="items stored now")
    existing: int = Field(description="items already stored (same external_id)")
    errors: int = Field(description="items refused (nothing stored for them)")


def _pydantic_error(index: int, e: ValidationError) -> IncidentBatchItemOut:
    err = e.errors()[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.get("loc", ()))
    field = f"items[{index}]{loc}"
    return IncidentBatchItemOut(index=index, status=422, detail=f"{field}: {err.get('msg', 'invalid')}", field=field)


def _api_error(index: int, e: ApiError) -> IncidentBatchItemOut:
    field = e.field or ""
    if not field.startswith("items["):  # service errors name the single POST's body fields
        for prefix in ("body.", "body"):
            if field.startswith(prefix):
                field = field[len(prefix):]
                break
        field = f"items[{index}]" + (f".{field}" if field else "")
    return IncidentBatchItemOut(index=index, status=e.status, detail=e.message, field=field)


def parse_batch(items: list[dict[str, Any]], rt: Runtime, principal: Principal
                ) -> tuple[list[IncidentBatchItemOut | None], list[tuple[int, IncidentData]]]:
    """Validate each item: (answers so far, None where still to ingest; the valid items)."""
    answers: list[IncidentBatchItemOut | None] = [None] * len(items)
    valid: list[tuple[int, IncidentData]] = []
    budget = EVIDENCE_BUDGET * rt.settings.max_evidence_bytes
    for i, raw in enumerate(items):
        try:
            body = IncidentIn.model_validate(raw)
        except ValidationError as e:
            answers[i] = _pydantic_error(i, e)
            continue
        try:
            data = to_data(body, rt, principal, f"items[{i}]")
            if data.evidence is not None:
                budget -= data.evidence.received_bytes or len(data.evidence.data)
                if budget < 0:
                    raise ApiError(413, f"evidence: the batch carries more than {EVIDENCE_BUDGET} images' worth "
                                        "of evidence; post this item again (alone or in a later batch)",
                                   f"items[{i}].evidence.data_b64")
        except ApiError as e:
            answers[i] = _api_error(i, e)
            continue
        valid.append((i, data))
    return answers, valid


@router.post(
    "/incidents/batch", status_code=200, response_model=IncidentBatchOut,
    responses={422: {"model": ErrorOut, "description": "the body is not {items: [...]} of 1..500 objects"},
               **AUTH_ERRORS},
    summary="Report many incidents at once (one transaction, one answer per item)",
)
def create_incidents_batch(
    body: IncidentBatchIn,
    request: Request,
    principal: Principal = Depends(require_roles("operator", "dispatcher", "grid_worker")),
    rt: Runtime = Depends(get_runtime),
) -> IncidentBatchOut:
    """Each item is handled as ``POST /api/v1/incidents`` would handle it alone (validation,
    grouping, idempotency by ``external_id``, grid workers inside their grids), in order and
    in one transaction: items of one batch group with each other as if posted one after the
    other. The answer lists every item: ``status`` 201 or 200 with its ids, or its error
    (``detail``, ``field`` as ``items[i].<field>``); refused items store nothing. Evidence
    images count against a budget of four maximum-size images per batch (413 for the item
    that exceeds it: post it again alone)."""
    answers, valid = parse_batch(body.items, rt, principal)
    if valid:
        results = write(request, lambda s: ingest_many(s, rt, [d for _, d in valid], principal))
        for (i, _), res in zip(valid, results, strict=True):
            if isinstance(res, IngestResult):
                answers[i] = IncidentBatchItemOut(index=i, status=201 if res.created else 200,
                                                  incident_id=res.incident_id, ticket_id=res.ticket_id,
                                                  created=res.created)
            else:
                answers[i] = _api_error(i, res)
    out = [a for a in answers if a is not None]
    created = sum(1 for a in out if a.status == 201)
    existing = sum(1 for a in out if a.status == 200)
    return IncidentBatchOut(results=out, created=created, existing=existing, errors=len(out) - created - existing)
