"""Live events: the one record every stream carries, and the subscriber filter.

A ticket event comes from the ``live_events`` outbox row written in the same transaction
as the ticket change (its integer ``id`` is the resume cursor). Drone events (telemetry,
flight events, commands) are not tickets: they carry ``id = None`` and are never
replayed; a reconnecting client gets the drones' current state in the ``hello`` message.
Everything here is pure (no I/O) so it is cheap to test.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("dispatch.live")

TICKET_PREFIX = "ticket."
DRONE_PREFIX = "drone."


class Utf8Text(str):
    """A frame's text that remembers its UTF-8 bytes.

    The WebSocket server encodes every text frame it sends (uvicorn:
    ``conn.send_text(text.encode())``); one event fanned out to N clients would be encoded
    N times (a ticket is ~1.3 kB, mostly CJK text). This subclass encodes once and hands
    the same bytes to every connection; any other encoding falls back to ``str.encode``.
    Still a ``str`` everywhere else (Starlette's ``send_text`` checks nothing more).
    """

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        if errors == "strict" and encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
            cached = self.__dict__.get("utf8")
            if cached is None:
                cached = self.__dict__["utf8"] = str.encode(self, "utf-8")
            return cached
        return str.encode(self, encoding, errors)


@dataclass(frozen=True)
class LiveEvent:
    """One event on the live streams.

    ``id`` is the outbox id (``None`` for drone events); ``at`` an ISO-8601 UTC string;
    ``data`` the ticket's public fields or the drone record. ``encoded`` is the JSON text
    sent to clients, built once per event whatever the number of subscribers.
    """

    id: int | None
    topic: str
    at: str
    data: dict[str, Any]
    grid_id: str | None = None
    tier: str | None = None
    class_name: str | None = None
    priority: int | None = None  # 0 = P0 (highest)
    encoded: str = field(default="", compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "topic": self.topic, "at": self.at, "grid_id": self.grid_id, "tier": self.tier,
            "class_name": self.class_name, "priority": self.priority, "data": self.data,
        }

    @classmethod
    def make(cls, **kw: Any) -> LiveEvent:
        """Build an event with its JSON text pre-encoded: always standard JSON. Data that
        cannot be (NaN/Infinity, unpaired surrogates, nesting past the encoder's limit; the
        API refuses these at the edge, so only a stored or internal record can carry them)
        is replaced by ``{"unencodable": "<why>"}`` and logged: one bad record must not
        break a frame, the ``hello`` snapshot or a read path."""
        ev = cls(**kw)
        try:
            text = encode_json(ev.to_dict())
        except (ValueError, TypeError, RecursionError) as e:
            log.warning("live event %s/%s: data not encodable as JSON (%s); sent without it", ev.topic, ev.id,
                        type(e).__name__)
            ev = cls(**{**kw, "data": {"unencodable": type(e).__name__}})
            text = encode_json(ev.to_dict())
        object.__setattr__(ev, "encoded", Utf8Text(text))
        return ev


def encode_json(value: Any) -> str:
    """Compact standard JSON (``allow_nan=False``; raises on NaN/Infinity, and UTF-8 checks
    catch unpaired surrogates)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False)
    if not text.isascii():
        text.encode("utf-8")  # raises UnicodeEncodeError (a ValueError) on a lone surrogate
    return text


def _as_text(value: Any) -> str | None:
    return None if value is None else str(value)


def event_from_outbox_row(row: Any) -> LiveEvent:
    """Outbox row (id, at|created_at, topic, grid_id, tier, class_name, priority, payload) -> event.

    ``payload`` may be a JSON string (SQLite) or an already-decoded dict (PostgreSQL JSON).
    """
    m = row._mapping if hasattr(row, "_mapping") else row
    payload = m["payload"]
    if isinstance(payload, str | bytes):
        try:
            payload = json.loads(payload)
        except ValueError:
            payload = {"raw": payload if isinstance(payload, str) else payload.decode("utf-8", "replace")}
    created = m["at"] if "at" in m else m["created_at"]
    at = created.isoformat() if hasattr(created, "isoformat") else _as_text(created) or ""
    return LiveEvent.make(
        id=int(m["id"]), topic=str(m["topic"]), at=at, data=payload or {},
        grid_id=_as_text(m["grid_id"]), tier=_as_text(m["tier"]),
        class_name=_as_text(m["class_name"]), priority=None if m["priority"] is None else int(m["priority"]),
    )


def _split(value: str | None) -> frozenset[str] | None:
    """'a,b, c' -> {'a','b','c'}; empty or None -> None (no restriction)."""
    if value is None:
        return None
    items = frozenset(v.strip() for v in value.split(",") if v.strip())
    return items or None


def parse_priorities(value: str | None) -> frozenset[int] | None:
    """'P0,1' -> {0, 1}. Raises ValueError naming the bad item."""
    items = _split(value)
    if items is None:
        return None
    out = set()
    for item in items:
        digits = item[1:] if item[:1] in ("P", "p") else item
        if not digits.isdigit():
            raise ValueError(f"priority: {item!r} is not a priority (expected P0, P1, ... or 0, 1, ...)")
        out.add(int(digits))
    return frozenset(out)


@dataclass(frozen=True)
class EventFilter:
    """What one subscriber wants. ``None`` fields do not restrict.

    ``grids``/``tiers``/``classes``/``priorities`` restrict ticket events only; drone events
    pass them (the map shows every drone). ``topics`` are prefixes ("ticket", "drone",
    "ticket.created"...). ``allowed_grids`` is the principal's scope (a grid worker's grids):
    ticket events outside it never pass, whatever the query asked.
    """

    grids: frozenset[str] | None = None
    tiers: frozenset[str] | None = None
    classes: frozenset[str] | None = None
    priorities: frozenset[int] | None = None
    topics: frozenset[str] | None = None
    allowed_grids: frozenset[str] | None = None

    @classmethod
    def from_query(cls, *, grid: str | None = None, tier: str | None = None, class_name: str | None = None,
                   priority: str | None = None, topic: str | None = None,
                   allowed_grids: list[str] | None = None) -> EventFilter:
        """Comma-separated query values -> filter (``allowed_grids`` None = unrestricted role)."""
        return cls(grids=_split(grid), tiers=_split(tier), classes=_split(class_name),
                   priorities=parse_priorities(priority), topics=_split(topic),
                   allowed_grids=None if allowed_grids is None else frozenset(allowed_grids))

    def matches(self, ev: LiveEvent) -> bool:
        if self.topics is not None and not any(ev.topic == t or ev.topic.startswith(t.rstrip(".") + ".")
                                               for t in self.topics):
            return False
        if not ev.topic.startswith(TICKET_PREFIX):
            return True
        if self.allowed_grids is not None and ev.grid_id not in self.allowed_grids:
            return False
        if self.grids is not None and ev.grid_id not in self.grids:
            return False
        if self.tiers is not None and ev.tier not in self.tiers:
            return False
        if self.classes is not None and ev.class_name not in self.classes:
            return False
        return self.priorities is None or ev.priority in self.priorities
