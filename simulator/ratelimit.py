"""Clever's per-token rate limit: 1200 requests a minute, reported on every API answer."""

from __future__ import annotations

import hashlib
import threading

KEY_MAX = 64  # longer keys (any Authorization header a client sends) are kept as a digest
KEYS_MAX = 50_000  # tokens counted in one minute; beyond it, new ones share one count
OVERFLOW = "(overflow)"


class RateLimiter:
    """Fixed one-minute windows per bearer token (Clever's ``X-RateLimit-*`` headers).

    Only the current minute's counts are kept: a new minute starts every token afresh, so
    the old ones are dropped whole. Keys are at most KEY_MAX characters and at most
    KEYS_MAX are counted a minute (more distinct tokens than that in one minute share one
    count), so memory stays under a few MB whatever clients send.
    """

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._window = 0
        self._used: dict[str, int] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, now: float) -> tuple[int, int, int]:
        """Count one request; return (limit, remaining, reset epoch seconds). Remaining < 0 = over."""
        window = int(now // 60)
        if len(key) > KEY_MAX:
            key = "#" + hashlib.blake2b(key.encode("utf-8", "surrogatepass"),
                                        digest_size=24).hexdigest()
        with self._lock:
            if window != self._window:
                self._window, self._used = window, {}
            if key not in self._used and len(self._used) >= KEYS_MAX:
                key = OVERFLOW
            used = self._used[key] = self._used.get(key, 0) + 1
        return self.per_minute, self.per_minute - used, (window + 1) * 60

    def clear(self) -> None:
        with self._lock:
            self._used = {}

    def __len__(self) -> int:
        return len(self._used)
