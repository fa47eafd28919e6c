"""Per-client throttling of failed authentications (guessing tokens, codes or tickets).

Each process keeps, per client IP, the times of its recent failures; once an IP has
``limit`` failures within ``window_s`` seconds, every further attempt from it answers 429
until the oldest failure ages out. A success does not reset the count (a guesser holding
one valid token must not get unlimited guesses). Per process, in memory: behind a load
balancer each replica throttles on its own, so the effective limit is ``limit`` times the
replica count; good enough to turn thousands of guesses per second into a trickle.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class FailureThrottle:
    """Counts failures per key (client IP) in a sliding window; thread-safe."""

    def __init__(self, limit: int = 20, window_s: float = 60.0, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> deque[float] | None:
        q = self._fails.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._fails[key]
            return None
        return q

    def retry_after(self, key: str, now: float | None = None) -> float:
        """Seconds until ``key`` may try again (0.0: it may now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._trim(key, now)
            if q is None or len(q) < self.limit:
                return 0.0
            return max(0.0, q[0] + self.window_s - now)

    def fail(self, key: str, now: float | None = None) -> None:
        """Record one failure of ``key``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._fails) >= self.max_keys:  # bounded memory under a spray of source addresses
                for k in list(self._fails)[: self.max_keys // 10]:
                    self._trim(k, now)
                if len(self._fails) >= self.max_keys:
                    self._fails.pop(next(iter(self._fails)))
            self._fails.setdefault(key, deque()).append(now)


def client_key(scope_client: tuple[str, int] | None) -> str:
    """The throttling key of a connection: its peer IP (uvicorn's ``--proxy-headers``
    already rewrites it from X-Forwarded-For for trusted proxies)."""
    return scope_client[0] if scope_client else "?"
