"""A minimal stand-in for dispatch's flight endpoints (the HTTP contract only)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class FakeDispatch:
    """``POST /api/v1/telemetry`` stores batches; ``GET /api/v1/drones/commands`` serves
    ``self.commands`` (id > after). ``on_batch(server, body)`` may add commands.
    ``gate``: when given, each telemetry POST sets ``held`` and waits (up to 60 s) until the
    test sets the gate, so a test can hold the network open while it checks the client."""

    def __init__(self, port: int, token: str = "T", on_batch=None, gate: threading.Event | None = None) -> None:
        self.token = token
        self.gate = gate
        self.held = threading.Event()
        self.batches: list[dict] = []
        self.commands: list[dict] = []
        self.unauthorised = 0
        self.plans: list[dict] = []  # bodies of PUT /api/v1/plan
        self.on_batch = on_batch
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _auth(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    outer.unauthorised += 1
                    self.send_response(401)
                    self.end_headers()
                    return False
                return True

            def _json(self, code: int, obj) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                if not self._auth():
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if urlparse(self.path).path != "/api/v1/telemetry":
                    return self._json(404, {})
                if outer.gate is not None:
                    outer.held.set()
                    outer.gate.wait(60.0)
                outer.batches.append(body)
                if outer.on_batch:
                    outer.on_batch(outer, body)
                self._json(202, {"records": len(body["records"]), "events": len(body["events"])})

            def do_PUT(self):
                if not self._auth():
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if urlparse(self.path).path != "/api/v1/plan":
                    return self._json(404, {})
                outer.plans.append(body)
                self._json(200, {"grids": len(body.get("grids", [])), "sorties": len(body.get("sorties", []))})

            def do_GET(self):
                if not self._auth():
                    return
                u = urlparse(self.path)
                if u.path != "/api/v1/drones/commands":
                    return self._json(404, {})
                q = parse_qs(u.query)
                after, limit = int(q.get("after", ["0"])[0]), int(q.get("limit", ["200"])[0])  # as the real API
                self._json(200, {"commands": [c for c in list(outer.commands) if c["id"] > after][:limit]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def add_command(self, drone_id: str, action: str) -> None:
        self.commands.append({"id": len(self.commands) + 1, "drone_id": drone_id, "action": action,
                              "issued_by": "test", "issued_at": "2026-11-23T00:00:00Z"})

    def records(self) -> list[dict]:
        return [r for b in self.batches for r in b["records"]]

    def events(self) -> list[dict]:
        return [e for b in self.batches for e in b["events"]]

    def __enter__(self) -> FakeDispatch:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
