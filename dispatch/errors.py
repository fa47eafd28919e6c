"""API errors that name the offending field, and their JSON shape.

Body: ``{"detail": "<message>", "field": "body.lat", ...extra}``. FastAPI's own request
validation errors keep their standard shape (``detail[].loc`` names the field).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer: HTTP ``status``, a message, the field it is about and extra keys."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None, zh: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.extra = status, message, field, extra
        self.headers = headers
        #: the same message in Chinese for the pages (``detail_zh``), where it carries specifics
        #: (which grid, which coordinate) that a code plus a status text cannot
        self.zh = zh

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"detail": self.message}
        if self.zh:
            out["detail_zh"] = self.zh
        if self.field:
            out["field"] = self.field
        out.update(self.extra)
        return out
