"""The API's edge against hostile and careless clients: one pure ASGI middleware, and the
validation-error handler that must never fail itself.

:class:`EdgeGuard` runs before routing, body parsing and FastAPI's dependencies:

1. **Size before anything.** Each write route has a body limit (bytes): evidence routes
   (an incident with a base64 image, a batch, a multipart photo) get room for their images,
   telemetry and the plan a bulk limit, every other JSON body ``max_body_bytes``. A
   ``Content-Length`` above the limit is answered 413 without reading a byte; a chunked
   body is counted while it streams and cut off (413) the moment it passes the limit.
2. **Token before body.** A write (POST/PUT/PATCH/DELETE) is authenticated from its
   headers before one byte of its body is read: a 300 MiB body with no token costs the
   server nothing but a 401. (:data:`PUBLIC_WRITES` lists write paths that take no token.)
3. **JSON at the edge.** A JSON body (it is bounded by 1.) is parsed once here and refused
   with 422, naming the field (``body.items[3].lat``), when it holds what no route accepts
   and what broke read paths or the live stream before: NaN/Infinity or numbers that
   overflow to infinity (``1e400``), unpaired UTF-16 surrogates, NUL characters
   (PostgreSQL text cannot hold them), nesting deeper than :data:`MAX_JSON_DEPTH`.
4. NUL in the path or the query string is refused the same way (``query.<name>``).

Then the request goes on with the same bytes (replayed to the app). Answers have the API's
error shape ``{"detail", "field"}``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from anyio import to_thread

log = logging.getLogger("skygrid.dispatch.guard")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: deepest JSON nesting any route accepts (the plan, the deepest document, needs 5)
MAX_JSON_DEPTH = 32
#: JSON bodies larger than this (bytes) are checked in a worker thread, not on the event loop
THREAD_CHECK_BYTES = 64 * 1024
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: write paths that take no token: the session exchange (login checks the token in its body,
#: logout ends whatever session the cookie names)
PUBLIC_WRITES: set[str] = {"/api/v1/session"}


class JsonRejected(ValueError):
    """A JSON document holds something no route accepts; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class _NonFinite:
    """Stand-in for the NaN/Infinity literals the stdlib parser would turn into floats."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _field(path: list[Any], root: str) -> str:
    return root + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _bad_text(s: str) -> str | None:
    """Why a string cannot be stored (None when it can)."""
    if s.isascii():
        return "contains a NUL character" if "\x00" in s else None
    if "\x00" in s:
        return "contains a NUL character"
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired UTF-16 surrogate (not valid Unicode text)"
    return None


def check_tree(value: Any, root: str = "body", max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`JsonRejected` for the first non-finite number, bad string (surrogate,
    NUL) or nesting deeper than ``max_depth`` in a decoded JSON value. Iterative: a hostile
    depth cannot exhaust the stack here."""
    stack: list[tuple[Any, list[Any]]] = [(value, [])]
    while stack:
        v, path = stack.pop()
        if isinstance(v, str):
            why = _bad_text(v)
            if why:
                raise JsonRejected(_field(path, root), why)
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise JsonRejected(_field(path, root), f"number {v!r} is not finite (NaN, Infinity and values "
                                                       "beyond ±1.8e308 are not accepted)")
        elif isinstance(v, _NonFinite):
            raise JsonRejected(_field(path, root), f"{v.literal} is not a JSON number")
        elif isinstance(v, dict | list):
            if len(path) >= max_depth:
                raise JsonRejected(_field(path, root), f"nested deeper than {max_depth} levels")
            if isinstance(v, dict):
                for k, item in v.items():
                    why = _bad_text(k)
                    if why:
                        raise JsonRejected(_field(path, root), f"a key {why}")
                    stack.append((item, [*path, k]))
            else:
                stack.extend((item, [*path, i]) for i, item in enumerate(v))


def parse_json_strict(raw: bytes | str, root: str = "body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode JSON, then :func:`check_tree`. Raises :class:`json.JSONDecodeError` for
    malformed JSON and :class:`JsonRejected` for valid-but-refused documents (including
    bytes that are not UTF-8 and nesting too deep for the parser itself)."""
    try:
        doc = json.loads(raw, parse_constant=_NonFinite)
    except RecursionError:
        raise JsonRejected(root, f"nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError as e:
        raise JsonRejected(root, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError:
        raise
    except ValueError as e:  # e.g. an integer literal of more than 4300 digits
        raise JsonRejected(root, f"invalid JSON ({e})") from None
    check_tree(doc, root, max_depth)
    return doc


def sanitize(value: Any) -> Any:
    """``value`` made encodable as standard JSON: non-finite floats become their repr,
    strings with unpaired surrogates get them escaped. For echoing client input in errors."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return value if _bad_text(value) is None else value.encode("utf-8", "backslashreplace").decode(
            "utf-8").replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {sanitize(k): sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitize(v) for v in value]
    return value


# -- per-route body limits -------------------------------------------------------------
def body_limits(settings: Any) -> list[tuple[re.Pattern[str], int]]:
    """(path pattern, limit in bytes) for write routes, first match wins; the fallback is
    ``settings.max_body_bytes``. Evidence travels base64 (4/3 of its bytes) in JSON."""
    from dispatch.api.incidents import EVIDENCE_BUDGET, MAX_BATCH
    from dispatch.api.replay import MAX_LOG_BYTES as REPLAY_MAX_LOG_BYTES

    img = int(settings.max_evidence_bytes)
    b64 = img * 4 // 3 + 16
    small = int(settings.max_body_bytes)
    bulk = int(settings.max_bulk_body_bytes)
    return [
        (re.compile(r"^/api/v1/incidents/batch$"), EVIDENCE_BUDGET * b64 + MAX_BATCH * 2048 + small),
        (re.compile(r"^/api/v1/incidents$"), b64 + small),
        (re.compile(r"^/api/v1/tickets/[^/]+/photos$"), img + small),
        (re.compile(r"^/api/v1/(telemetry|plan)$"), bulk),
        (re.compile(r"^/api/v1/replay$"), max(bulk, REPLAY_MAX_LOG_BYTES + small)),  # a flight log upload
        (re.compile(r"^/api/v1/planner/"), bulk),  # grid files and whole plans
    ]


def _error(status: int, detail: str, field: str | None, headers: dict[str, str] | None = None
           ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    body = {"detail": detail} | ({"field": field} if field else {})
    raw = json.dumps(sanitize(body), ensure_ascii=False).encode("utf-8")
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    if status == 413:
        hdrs.append((b"connection", b"close"))
    return status, raw, hdrs


async def _respond(send: Send, answer: tuple[int, bytes, list[tuple[bytes, bytes]]]) -> None:
    status, raw, hdrs = answer
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


class _TooLarge(Exception):
    pass


class EdgeGuard:
    """The middleware (see the module doc). ``authenticate(scope) -> error | None`` checks
    a write's token from its headers (``dispatch.deps.authenticate_scope``)."""

    def __init__(self, app: ASGIApp, settings: Any,
                 authenticate: Callable[[Scope], Awaitable[tuple[int, str, str, dict[str, str] | None] | None]]
                 ) -> None:
        self.app = app
        self.limits = body_limits(settings)
        self.default_limit = int(settings.max_body_bytes)
        self.authenticate = authenticate

    def limit_for(self, path: str) -> int:
        for pattern, limit in self.limits:
            if pattern.match(path):
                return limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        bad = _nul_in_target(scope)
        if bad is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": f"{bad}: NUL character"})
                return
            await _respond(send, _error(422, f"{bad}: contains a NUL character", bad))
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.limit_for(path)
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _respond(send, _error(400, "content-length: not an integer", "header.content-length"))
                return
            if size > limit:
                await _respond(send, _error(413, f"body: {size} bytes, more than the {limit} this route accepts",
                                            "body"))
                return
        method = scope.get("method", "GET")
        if method in WRITE_METHODS and path not in PUBLIC_WRITES and (path.startswith(("/api/", "/open311/"))):
            refused = await self.authenticate(scope)
            if refused is not None:
                status, detail, field, extra = refused
                await _respond(send, _error(status, detail, field, extra))
                return
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        is_json = method in WRITE_METHODS and (ctype == b"application/json" or ctype.endswith(b"+json"))
        if is_json:
            await self._json(scope, receive, send, limit)
            return
        await self._streamed(scope, receive, send, limit)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Pass the body through, counting; past ``limit`` the app's answer becomes 413."""
        seen = 0
        over = False
        started = False

        async def counted() -> Message:
            nonlocal seen, over
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    over = True
                    raise _TooLarge()
            return msg

        async def guarded_send(msg: Message) -> None:
            nonlocal started
            if over:
                return  # the app's answer to a cut-off body is replaced by the 413 below
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counted, guarded_send)
        except _TooLarge:
            pass
        except Exception:
            if not over:
                raise
        if over and not started:
            await _respond(send, _error(413, f"body: more than the {limit} bytes this route accepts", "body"))

    async def _json(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Read the (bounded) JSON body, check it, then hand the same bytes to the app."""
        parts: list[bytes] = []
        seen = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                await _respond(send, _error(413, f"body: more than the {limit} bytes this route accepts", "body"))
                return
            parts.append(chunk)
            if not msg.get("more_body", False):
                break
        raw = b"".join(parts)
        del parts
        if raw:
            try:
                if len(raw) > THREAD_CHECK_BYTES:
                    await to_thread.run_sync(parse_json_strict, raw)
                else:
                    parse_json_strict(raw)
            except JsonRejected as e:
                await _respond(send, _error(422, str(e), e.field))
                return
            except json.JSONDecodeError:
                pass  # malformed: FastAPI answers it in its usual shape
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _nul_in_target(scope: Scope) -> str | None:
    """'path' or 'query.<name>' when the request target carries a NUL character."""
    if "\x00" in scope.get("path", ""):
        return "path"
    qs: bytes = scope.get("query_string", b"")
    if b"%00" in qs or b"\x00" in qs:
        for k, v in parse_qsl(qs.decode("latin-1"), keep_blank_values=True):
            if "\x00" in k or "\x00" in v:
                return f"query.{k.replace(chr(0), '')}"
        return "query"
    return None


# -- validation errors -----------------------------------------------------------------
def field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    """FastAPI's error ``loc`` -> the API's field name: ('body', 'items', 3, 'lat') ->
    'body.items[3].lat'."""
    if not loc:
        return "body"
    return str(loc[0]) + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])


async def validation_error_handler(_request: Any, exc: Any) -> Any:
    """FastAPI's 422 (``detail`` = the errors list, each with ``loc``) plus ``field``, with
    client input made encodable first: the stock handler failed (500) on NaN, Infinity and
    unpaired surrogates it tried to echo back."""
    from fastapi.encoders import jsonable_encoder
    from fastapi.responses import JSONResponse

    errors = exc.errors()
    try:
        detail = sanitize(jsonable_encoder(errors))
    except Exception:  # noqa: BLE001 - the answer must go out whatever the input was
        detail = [{"loc": sanitize(list(e.get("loc", ()))), "msg": sanitize(str(e.get("msg", ""))),
                   "type": str(e.get("type", ""))} for e in errors]
    body: dict[str, Any] = {"detail": detail}
    if errors:
        body["field"] = sanitize(field_of(errors[0].get("loc", ())))
    return JSONResponse(body, status_code=422)
