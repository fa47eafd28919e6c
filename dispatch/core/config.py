"""Dispatch settings: one typed record, read from ``SKYGRID_*`` environment variables.

pydantic-settings is not a dependency, so :meth:`Settings.from_env` maps each field to
``SKYGRID_<FIELD>`` by hand (JSON for dicts/lists). Units: seconds and metres.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import BaseModel, Field

ROLES: tuple[str, ...] = ("operator", "dispatcher", "department", "grid_worker", "viewer")


class BootstrapToken(BaseModel):
    """A token created at startup when missing (demo, CI): the token string is the dict key."""

    role: str
    name: str
    grid_ids: list[str] | None = None


class Settings(BaseModel):
    """Everything the dispatch app needs; defaults give an embedded SQLite server."""

    database_url: str = "sqlite:///work/skygrid.db"
    evidence_dir: str = "work/evidence"
    grids_file: str | None = None
    #: CRS of grids_file when the file does not declare one: SKYGRID_GRIDS_CRS, the same setting
    #: `skygrid plan` falls back to (None: the file must declare it; see geo.grids.resolve_crs)
    grids_crs: str | None = None
    routing_file: str | None = None  # None -> dispatch/defaults/routing.yaml
    sla_check_interval_s: float = Field(1.0, gt=0)
    group_radius_m: float = Field(50.0, gt=0)  # incidents of one class closer than this merge
    group_window_s: float = Field(24 * 3600.0, gt=0)  # ... and seen within this window
    max_evidence_bytes: int = Field(5 * 1024 * 1024, gt=0)
    # decoded pixels (width x height) an evidence image may have; read from its header
    # before decoding, so a small file that decodes huge is refused cheaply (24 MP: 6000x4000)
    max_evidence_pixels: int = Field(24_000_000, gt=0)
    # request bodies, bytes: JSON writes (actions, comments, an incident without image) ...
    max_body_bytes: int = Field(256 * 1024, gt=0)
    # ... telemetry batches and the plan (evidence routes get room for their images)
    max_bulk_body_bytes: int = Field(8 * 1024 * 1024, gt=0)
    # live streams: how many outbox events back a client may ask to replay (?after=,
    # Last-Event-ID); further back it gets a "resync" event and reloads from the REST API
    live_replay_max_events: int = Field(10_000, ge=0)
    # live_events (the stream outbox) rows older than this are deleted, seconds; ticket
    # history stays in ticket_events. 0 keeps everything.
    live_retention_s: float = Field(7 * 24 * 3600.0, ge=0)
    # live drone board (/api/v1/live/drones, the streams' hello): distinct drone ids one
    # telemetry post may carry, distinct drones shown at once, and seconds without a record
    # after which a drone drops off the board (one post once registered 10,000 drones forever)
    live_max_drones_per_post: int = Field(50, gt=0)
    live_max_drones: int = Field(500, gt=0)
    live_drone_stale_s: float = Field(15 * 60.0, gt=0)
    # open live streams (WebSocket, SSE) re-check their token at least this often, seconds:
    # a revoked or expired token's stream closes within about this plus one hub tick
    # (5 s, or this when shorter)
    live_auth_recheck_s: float = Field(10.0, gt=0)
    # observed_at may lie at most this far after the server's clock, seconds (a far-future
    # time made a ticket absorb every later report)
    max_clock_skew_s: float = Field(300.0, ge=0)
    bootstrap_tokens: dict[str, BootstrapToken] = Field(default_factory=dict)
    tile_url: str | None = None  # pages: XYZ tile template, None = no base map
    display_crs: str = "gcj02"  # pages: CRS of the base map
    auth_fail_limit: int = Field(20, gt=0)  # failed authentications per client address ...
    auth_fail_window_s: float = Field(60.0, gt=0)  # ... within this window, then 429
    run_migrations: bool = True
    sla_background: bool = True  # run the SLA checker task in the app lifespan

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``SKYGRID_<FIELD>`` variables, then apply ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            raw = env.get(f"SKYGRID_{name.upper()}")
            if raw is None:
                continue
            annotation = str(field.annotation)
            values[name] = json.loads(raw) if "dict" in annotation or "list" in annotation else raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)
