"""Transactional outbox for live streams.

Every ticket change writes one ``live_events`` row in the same transaction as the change,
so a stream resumed from an event id never misses or invents a change. After commit the
caller invokes ``app.state.notify()`` (the live module replaces it to wake streams).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from dispatch.models import LiveEvent

TOPICS = ("ticket.created", "ticket.updated", "ticket.escalated", "ticket.comment", "ticket.photo")


def emit(
    session: Session,
    topic: str,
    payload: dict[str, Any],
    grid_id: str | None = None,
    tier: str | None = None,
    class_name: str | None = None,
    priority: int | None = None,
    at: datetime | None = None,
) -> LiveEvent:
    """Add one outbox row to ``session`` (flushed with the caller's commit)."""
    row = LiveEvent(
        at=at or datetime.now(UTC),
        topic=topic,
        payload=payload,
        grid_id=grid_id,
        tier=tier,
        class_name=class_name,
        priority=priority,
    )
    session.add(row)
    return row


def notify(app: Any) -> None:
    """Wake live streams after a commit, if the live module installed a notifier."""
    fn = getattr(getattr(app, "state", None), "notify", None)
    if callable(fn):
        fn()
