"""Incident reporting to dispatch over its HTTP API (``POST /api/v1/incidents``).

The detection loop only calls :meth:`DispatchClient.submit`, which puts the incident on a
queue and returns at once; one background thread posts. The incident id is the request's
``external_id`` (dispatch's idempotency key), so re-sending after a timeout, or sending an
update of the same incident, never makes a second ticket. If several updates of one
incident queue up while dispatch is slow, only the newest is sent.

Dispatch keeps the first version it stored: an update under the same key with a changed
payload answers 409 ``external_id_conflict`` (issue 13 item 7: a changed payload under a
stored key used to be answered 200 and dropped silently). For an incident this client has
already reported, that is expected and counted in ``updates_refused`` (the first answer
stays in ``results``); for one it has not, it is a failure (someone else's key).

Retries: connection errors, timeouts, 408/429 and 5xx are retried with exponential
backoff (``backoff_s`` doubling up to ``max_backoff_s``, with jitter) up to
``max_attempts``; other 4xx answers (bad token, invalid payload) are not retried and are
recorded in ``failures`` with the server's message.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import httpx

from vision.contracts import Incident

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def incident_payload(incident: Incident, source: str = "drone", observed_at: float | None = None) -> dict[str, Any]:
    """The JSON body of ``POST /api/v1/incidents`` for ``incident`` (see the HTTP contract).

    ``observed_at`` (UNIX s) defaults to the wall time of the incident's first sighting,
    or now if unknown.
    """
    t = observed_at if observed_at is not None else (incident.first_frame_wall_time or time.time())
    evidence = None
    if incident.evidence_jpeg:
        evidence = {"content_type": "image/jpeg", "data_b64": base64.b64encode(incident.evidence_jpeg).decode("ascii")}
        if incident.evidence_box is not None:  # lets the room's verdict become a labelled training frame
            evidence["box"] = [round(float(v), 1) for v in incident.evidence_box]
    return {
        "external_id": incident.id,
        "source": source,
        "class_name": incident.class_name,
        "lat": float(incident.lat),
        "lon": float(incident.lon),
        "error_m": float(incident.error_m),
        "confidence": float(incident.confidence),
        "observed_at": datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z"),
        "drone_id": incident.drone_id,
        "sortie_id": incident.sortie_id,
        "frames_seen": int(incident.frames_seen),
        "evidence": evidence,
    }


class DispatchError(RuntimeError):
    """A request dispatch refused for good (4xx other than 408/425/429)."""


class KeyConflict(DispatchError):
    """409 ``external_id_conflict``: dispatch stored another payload under this key."""


class DispatchClient:
    """Posts incidents to dispatch in the background; see the module docstring.

    ``base_url`` e.g. "http://127.0.0.1:8000"; ``token`` a bearer token of role operator
    or dispatcher. ``results`` maps external_id -> the last JSON answer
    (``incident_id``, ``ticket_id``, ``created``); ``failures`` maps external_id -> reason.
    """

    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0, max_attempts: int = 8,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0, queue_limit: int = 10000,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_attempts, self.backoff_s, self.max_backoff_s = max_attempts, backoff_s, max_backoff_s
        self.queue_limit = queue_limit
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport,
                                    headers={"Authorization": f"Bearer {token}"})
        self._pending: OrderedDict[str, Incident] = OrderedDict()
        self._cv = threading.Condition()
        self._busy = False
        self._closed = False
        self.results: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, str] = {}
        self.sent = 0
        self.retries = 0
        self.dropped = 0
        self.updates_refused = 0  # updates of already reported incidents dispatch kept the first of
        self._thread = threading.Thread(target=self._run, name="dispatch-client", daemon=True)
        self._thread.start()

    # ---- producer side (detection loop) ---------------------------------------------
    def submit(self, incident: Incident) -> None:
        """Queue ``incident`` for posting; never blocks. A queued older version is replaced."""
        with self._cv:
            if self._closed:
                raise RuntimeError("DispatchClient is closed")
            if incident.id in self._pending:
                self._pending[incident.id] = incident
            else:
                if len(self._pending) >= self.queue_limit:
                    old, _ = self._pending.popitem(last=False)
                    self.dropped += 1
                    log.error("dispatch queue full: dropped incident %s", old)
                self._pending[incident.id] = incident
            self._cv.notify()

    def flush(self, timeout_s: float = 60.0) -> bool:
        """Wait until everything queued has been sent (or given up); True when drained."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.2))
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush (up to ``timeout_s``), stop the thread and close the connection pool."""
        self.flush(timeout_s)
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout=timeout_s)
        self._client.close()

    def __enter__(self) -> DispatchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- synchronous post -----------------------------------------------------------
    def post_incident(self, incident: Incident) -> dict[str, Any]:
        """POST one incident with retries (blocking; the background thread uses it)."""
        body = incident_payload(incident)
        delay = self.backoff_s
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                r = self._client.post("/api/v1/incidents", json=body)
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if r.status_code in (200, 201):
                    return r.json()
                if r.status_code == 409:
                    raise KeyConflict(f"POST /api/v1/incidents {incident.id}: HTTP 409: {r.text[:300]}")
                if r.status_code not in RETRY_STATUS:
                    raise DispatchError(f"POST /api/v1/incidents {incident.id}: HTTP {r.status_code}: {r.text[:300]}")
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            if attempt == self.max_attempts or self._closed_now():
                break
            self.retries += 1
            log.warning("dispatch: incident %s attempt %d failed (%s); retry in %.1f s", incident.id, attempt, last, delay)
            self._sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 2, self.max_backoff_s)
        raise DispatchError(f"POST /api/v1/incidents {incident.id}: gave up after {attempt} attempts: {last}")

    def _closed_now(self) -> bool:
        with self._cv:
            return self._closed

    def _sleep(self, s: float) -> None:
        with self._cv:
            self._cv.wait_for(lambda: self._closed, timeout=s)

    # ---- background thread ----------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closed:
                    self._cv.wait()
                if not self._pending and self._closed:
                    return
                _, incident = self._pending.popitem(last=False)
                self._busy = True
            try:
                res = self.post_incident(incident)
                self.results[incident.id] = res
                self.failures.pop(incident.id, None)
                self.sent += 1
            except KeyConflict as e:
                if incident.id in self.results:  # an update of what dispatch already has
                    self.updates_refused += 1
                    log.info("dispatch kept the first version of incident %s", incident.id)
                else:
                    self.failures[incident.id] = str(e)
                    log.error("dispatch: %s", e)
            except DispatchError as e:
                self.failures[incident.id] = str(e)
                log.error("dispatch: %s", e)
            except Exception as e:  # never let the sender thread die
                self.failures[incident.id] = f"{type(e).__name__}: {e}"
                log.exception("dispatch: unexpected error posting %s", incident.id)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()
