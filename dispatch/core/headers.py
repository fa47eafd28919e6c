"""Security headers on every HTTP response (pure ASGI, so streams are not buffered).

All responses: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
``Referrer-Policy: no-referrer``. All but the API docs (whose generated pages carry an
inline bootstrap script) also get the Content-Security-Policy of the pages: scripts and
styles only from this origin (the map library is vendored under ``/static/web/vendor``), no
inline script, no plugins, no framing; images from this origin, ``data:``/``blob:`` (photo
previews) and the configured tile server; connections (fetch, WebSocket, SSE) to this
origin only. Inline *style attributes* stay allowed ('unsafe-inline' in style-src): the
pages set colours per ticket, and a style cannot run script.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

#: paths served without the CSP (FastAPI's Swagger UI / ReDoc pages use an inline script)
NO_CSP_PREFIXES = ("/docs", "/redoc")


def content_security_policy(tile_url: str | None = None) -> str:
    """The pages' CSP; ``tile_url`` (an XYZ template) adds its origin to img-src."""
    img = ["'self'", "data:", "blob:"]
    if tile_url:
        parts = urlsplit(tile_url.replace("{s}", "a"))
        if parts.scheme in ("http", "https") and parts.netloc:
            host = parts.netloc.split("@")[-1]
            if tile_url.split("//", 1)[-1].startswith("{s}."):
                host = "*." + host.split(".", 1)[1]
            img.append(f"{parts.scheme}://{host}")
    return "; ".join([
        "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", f"img-src {' '.join(img)}",
        "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'",
        "frame-ancestors 'none'",
    ])


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP response."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.base = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                     (b"referrer-policy", b"no-referrer")]
        self.csp = (b"content-security-policy", csp.encode("ascii"))

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(self.base)
        if not scope.get("path", "").startswith(NO_CSP_PREFIXES):
            extra.append(self.csp)

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in extra if h[0] not in have]
            await send(message)

        await self.app(scope, receive, send_with_headers)
